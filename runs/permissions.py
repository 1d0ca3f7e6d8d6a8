"""Who may change a run: its creator, staff, and holders of runs.change_run."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from runs.models import Run
from runs.states import RunState


def may_manage(user: AbstractBaseUser, run: Run) -> bool:
    return user.is_staff or run.created_by_id == user.pk or user.has_perm("runs.change_run")


def can_cancel(user: AbstractBaseUser, run: Run) -> bool:
    return not run.is_final and may_manage(user, run)


def can_resume(user: AbstractBaseUser, run: Run) -> bool:
    return run.state in RunState.RESUMABLE and may_manage(user, run)
