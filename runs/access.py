"""Who sees and does what. Users see the projects they are members of (staff see all);
everything of a project (runs, events, model calls, governance requests, issues, usage)
follows. Owners manage a project and its members, members run builds, viewers read.

Every view asks here: querysets come filtered, so an object outside them is a 404 and
never appears in a list.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from runs.models import Project, ProjectMember, Role, Run
from runs.states import RunState

RUNNERS = (Role.OWNER, Role.MEMBER)


def projects(user: AbstractBaseUser) -> QuerySet[Project]:
    if user.is_staff:
        return Project.objects.all()
    return Project.objects.filter(members__user=user).distinct()


def runs(user: AbstractBaseUser) -> QuerySet[Run]:
    if user.is_staff:
        return Run.objects.all()
    return Run.objects.filter(project__members__user=user).distinct()


def role(user: AbstractBaseUser, project: Project) -> str | None:
    membership = ProjectMember.objects.filter(project=project, user=user).first()
    return membership.role if membership else None


def can_run(user: AbstractBaseUser, project: Project) -> bool:
    return user.is_staff or role(user, project) in RUNNERS


def can_own(user: AbstractBaseUser, project: Project) -> bool:
    return user.is_staff or role(user, project) == Role.OWNER


def can_create_projects(user: AbstractBaseUser) -> bool:
    return user.is_staff or user.has_perm("runs.add_project")


def may_manage(user: AbstractBaseUser, run: Run) -> bool:
    """Cancel or resume a run: its creator while still a runner of the project, the
    project's owners, staff, and holders of runs.change_run who are members."""
    if user.is_staff:
        return True
    member_role = role(user, run.project)
    if member_role == Role.OWNER:
        return True
    return member_role in RUNNERS and (
        run.created_by_id == user.pk or user.has_perm("runs.change_run")
    )


def can_cancel(user: AbstractBaseUser, run: Run) -> bool:
    return not run.is_final and may_manage(user, run)


def can_resume(user: AbstractBaseUser, run: Run) -> bool:
    return run.state in RunState.RESUMABLE and may_manage(user, run)


def can_decide(user: AbstractBaseUser, project: Project) -> bool:
    """Approving protected changes: the approval permission and membership."""
    from governance.models import APPROVE_PERMISSION

    member = user.is_staff or role(user, project) is not None
    return member and user.has_perm(APPROVE_PERMISSION)


def repository_allowed(user: AbstractBaseUser | None, repository: str, is_url: bool) -> str:
    """Why `user` may not create a project for this repository, or "" when they may.
    The command line (no user) and staff may use any; others a URL, or a path under
    AUTOPACK_REPO_ROOTS."""
    if user is None or user.is_staff:
        return ""
    if is_url and not repository.lower().startswith("file:"):
        return ""
    path = Path(repository.removeprefix("file://")).resolve()
    roots = [Path(root).resolve() for root in settings.AUTOPACK_REPO_ROOTS]
    if any(path.is_relative_to(root) for root in roots):
        return ""
    allowed = ", ".join(map(str, roots)) or "none are configured"
    return (
        f"{repository} is not under the folders projects may use (AUTOPACK_REPO_ROOTS: "
        f"{allowed}); use a git URL, or ask an administrator to create the project"
    )
