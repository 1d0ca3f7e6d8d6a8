"""Executes runs one step at a time: claim the run, do one unit of work through the
engine, store what happened, release. Safe to call twice for the same step."""

from __future__ import annotations

import logging
import threading
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from autopack_site import configuration
from governance.notifications import notify
from runs import environments, services
from runs.config import is_git_url
from runs.engine.gates.results import TestResults
from runs.engine.outcomes import (
    BudgetExhausted,
    Cancelled,
    ConfigurationError,
    FailureCode,
    Outcome,
    RunStopped,
)
from runs.engine.sandbox import sandbox_problem
from runs.engine.toolchains import SetupFailed
from runs.engine.workspace import GitWorkspace
from runs.models import Phase, Run
from runs.phase_runner import attempt_phase, require_providers
from runs.recorder import DjangoRecorder
from runs.states import AttemptState, PhaseState, RunState

logger = logging.getLogger(__name__)

ACTIVE = (RunState.QUEUED, RunState.RUNNING)


def claim(run_id: str, step: int, owner: str) -> Run | None:
    """Take the run's lease for `step`; None if another worker holds it or the step is
    already done (a duplicate delivery)."""
    now = timezone.now()
    claimed = Run.objects.filter(
        Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now),
        run_id=run_id,
        step=step,
        state__in=ACTIVE,
    ).update(lease_owner=owner, lease_expires_at=now + _lease())
    return Run.objects.get(run_id=run_id) if claimed == 1 else None


def _lease() -> timedelta:
    return timedelta(seconds=settings.AUTOPACK_LEASE_SECONDS)


@contextmanager
def _heartbeat(run: Run, owner: str) -> Iterator[None]:
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(settings.AUTOPACK_LEASE_SECONDS / 3):
                Run.objects.filter(pk=run.pk, lease_owner=owner).update(
                    lease_expires_at=timezone.now() + _lease()
                )
        finally:
            connection.close()

    thread = threading.Thread(target=beat, name=f"lease-{run.run_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def execute_step(run_id: str, step: int) -> bool:
    """Do one step of the run if this caller can claim it. Returns True when a step was
    executed and the run still has work to do."""
    owner = uuid.uuid4().hex
    run = claim(run_id, step, owner)
    if run is None:
        return False
    try:
        with _heartbeat(run, owner):
            _step(run)
    except Exception as exc:
        # A bug must stop the run with its traceback on record, not crash the worker
        # and have the stalled-run sweep retry the same failure forever.
        logger.exception("step %s of run %s failed", step, run_id)
        _fail_on_internal_error(run, exc)
    finally:
        Run.objects.filter(pk=run.pk, lease_owner=owner).update(
            step=step + 1, lease_owner="", lease_expires_at=None
        )
    run.refresh_from_db()
    return run.state in ACTIVE


def _step(run: Run) -> None:
    if run.cancel_requested:
        _finish(run, RunState.CANCELLED, "", "cancelled on request")
        return
    if run.state == RunState.QUEUED:
        services.transition_run(run, RunState.RUNNING)
    try:
        if _over_time(run):
            raise BudgetExhausted(f"maximum duration of {run.max_duration_seconds:,} s reached")
        config = configuration.models()
        _check_sandbox(run)
        workspace = _workspace(run)
        _abandon_interrupted_attempts(run)
        phase = _next_phase(run)
        if phase is None:
            _finish(run, RunState.DONE_SUCCESS, "", "")
            return
        require_providers(run, phase, config)
        environment = environments.prepare_for(run, phase, workspace, DjangoRecorder(run, phase))
        references = _references(run, phase, workspace, environment)
        attempt_phase(run, phase, workspace, config, environment, references)
    except Cancelled:
        _finish(run, RunState.CANCELLED, "", "cancelled on request")
    except SetupFailed as exc:
        services.record_event(run, "setup_failed", message=str(exc), output=exc.output[-8000:])
        _finish(run, RunState.DONE_FAILED, exc.outcome, exc.report())
    except RunStopped as exc:
        # A user error (budget, configuration, repository, tests that cannot run): its
        # code says which, its message what to change.
        _finish(run, RunState.DONE_FAILED, exc.outcome, exc.report())


def _fail_on_internal_error(run: Run, exc: Exception) -> None:
    run.refresh_from_db()
    for attempt in run.attempts.filter(state=AttemptState.RUNNING):
        services.finish_attempt(
            attempt, AttemptState.FAILED, outcome=Outcome.INTERNAL_ERROR, error=repr(exc)
        )
    services.record_event(run, "internal_error", error=repr(exc), traceback=traceback.format_exc())
    if not run.is_final:
        _finish(
            run,
            RunState.DONE_FAILED,
            FailureCode.INTERNAL_ERROR,
            f"Autopack failed: {exc!r} (please report it; the traceback is in the run's event log)",
        )


def _finish(run: Run, state: str, code: str, reason: str) -> None:
    services.transition_run(run, state, code=code, reason=reason)
    spent = Run.objects.get(pk=run.pk)
    services.record_event(
        run,
        "run_finished",
        state=state,
        code=code,
        reason=reason,
        tokens_used=spent.tokens_used,
        cost_usd=str(spent.cost_usd),
    )
    if state in (RunState.DONE_SUCCESS, RunState.DONE_FAILED):
        outcome = "succeeded" if state == RunState.DONE_SUCCESS else f"failed: {reason[:300]}"
        notify("run_finished", run, f"run {outcome}", outcome=state, code=code)


def _over_time(run: Run) -> bool:
    if not run.max_duration_seconds or run.active_since is None:
        return False
    return (timezone.now() - run.active_since).total_seconds() > run.max_duration_seconds


def _workspace(run: Run) -> GitWorkspace:
    project = run.project
    workspace = GitWorkspace.prepare(
        project.repository,
        run.base_branch or project.base_branch,
        run.run_id,
        settings.AUTOPACK_HOME,
        is_url=is_git_url(project.repository),
    )
    # Whatever an interrupted step left behind goes: work resumes from the last savepoint.
    workspace.rollback()
    if not run.base_commit:
        Run.objects.filter(pk=run.pk).update(base_commit=workspace.head())
        run.base_commit = workspace.head()
    if not run.worktree_path:
        Run.objects.filter(pk=run.pk).update(worktree_path=str(workspace.root))
        services.record_event(
            run,
            "workspace",
            path=str(workspace.root),
            branch=run.integration_branch,
            base=workspace.head(),
        )
    return workspace


def _abandon_interrupted_attempts(run: Run) -> None:
    # Only RUNNING attempts were cut off; one awaiting approval or approved is waiting on
    # purpose and continues at its next step.
    for attempt in run.attempts.filter(state=AttemptState.RUNNING):
        services.finish_attempt(
            attempt,
            AttemptState.ABANDONED,
            outcome=Outcome.INTERRUPTED,
            error="the worker executing this attempt stopped; the "
            "workspace was reset to the last savepoint",
        )
        services.record_event(
            run, "attempt_abandoned", phase_id=attempt.phase.phase_id, attempt=attempt.number
        )


def _references(
    run: Run, phase: Phase, workspace: GitWorkspace, environment
) -> dict[str, TestResults]:
    """The results each of the phase's test commands is compared with. They must run,
    or nothing could be verified, except that a phase's own command may name test files
    the phase is to write."""
    return {
        gate.command: environments.reference(
            run,
            gate.command,
            workspace,
            environment,
            may_create=tuple(phase.scope_paths) if gate.own else None,
        )
        for gate in environments.gate_commands(run, phase, environment)
    }


def _check_sandbox(run: Run) -> None:
    """Decide once per run whether gate commands run under bubblewrap."""
    if run.sandboxed is not None:
        return
    problem = sandbox_problem()
    if problem and settings.AUTOPACK_REQUIRE_SANDBOX:
        raise ConfigurationError(
            f"Test and install commands must run in a sandbox, but {problem}. Install the "
            "bubblewrap package (and allow user namespaces), or set "
            "AUTOPACK_REQUIRE_SANDBOX=false to run them unsandboxed."
        )
    Run.objects.filter(pk=run.pk).update(sandboxed=not problem)
    run.sandboxed = not problem
    if problem:
        services.record_event(
            run,
            "warning",
            message=f"{problem}: gate and install commands run without a sandbox (network "
            "and filesystem open)",
        )


def _next_phase(run: Run) -> Phase | None:
    return (
        run.phases.exclude(state__in=PhaseState.FINAL)
        .select_related("tier")
        .order_by("tier__index", "index")
        .first()
    )
