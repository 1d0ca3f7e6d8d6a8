"""Markdown plans read for a user of the API or the dashboard: the repository a plan is
checked against comes from the request (never from the plan's own front matter, which the
user wrote), and only a user who may create runs for that repository may read it, since
the answer names its files. The reading itself is runs.engine.plans."""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser

from runs import access
from runs.config import is_git_url
from runs.engine.plans import PlanResult, read_plan
from runs.models import Project

# The words a run config gets for the same refusal, whether the project exists or not.
from runs.services import not_yours


class PlanRefused(Exception):
    """The user may not create runs for this repository or project."""


class PlanInputError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def read_for_user(
    user: AbstractBaseUser,
    markdown: str,
    *,
    repo: str = "",
    project: str = "",
    run_id: str = "",
    goal: str = "",
    base_dir: Path | None = None,
) -> PlanResult:
    """The plan read against `repo` (a directory, relative to `base_dir`, or a git URL) or
    the repository of `project`; `run_id` and `goal`, when given, win over the plan's."""
    base_dir = base_dir or Path.cwd()
    overrides = overrides_for(user, repo, project, run_id, goal, base_dir)
    return read_plan(markdown, base_dir=base_dir, overrides=overrides)


def overrides_for(
    user: AbstractBaseUser, repo: str, project: str, run_id: str, goal: str, base_dir: Path
) -> dict[str, str]:
    """The run fields a plan read for `user` takes from the request instead of its own:
    the repository (`workspace` or `repo`, and `project` when one was named), once the user
    may create runs for it; `run_id` and `goal` when given."""
    overrides = _repository(user, repo, project, base_dir)
    return overrides | {key: value for key, value in (("run_id", run_id), ("goal", goal)) if value}


def _repository(user: AbstractBaseUser, repo: str, project: str, base_dir: Path) -> dict:
    location = repo if not repo or is_git_url(repo) else str((base_dir / repo).resolve())
    if project:
        found = access.projects(user).filter(name=project).first()
        if found is None or not access.can_run(user, found):
            raise PlanRefused(not_yours(project))
        if location and location != found.repository:
            raise PlanInputError(
                "repo",
                f"project {project!r} uses repository {found.repository}, not {location}; "
                "give only one of them",
            )
        return {"project": project, _key(found.repository): found.repository}
    if not location:
        raise PlanInputError(
            "repo", "give the repository: a directory or git URL (`repo`) or a project (`project`)"
        )
    existing = Project.objects.filter(repository=location).order_by("pk").first()
    if existing is not None:
        if not access.can_run(user, existing):
            raise PlanRefused(not_yours(location))
    elif not access.can_create_projects(user):
        raise PlanRefused(not_yours(location))
    elif problem := access.repository_allowed(user, location, is_git_url(location)):
        raise PlanRefused(problem)
    return {_key(location): location}


def _key(repository: str) -> str:
    return "repo" if is_git_url(repository) else "workspace"
