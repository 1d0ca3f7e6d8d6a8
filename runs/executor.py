"""Executes runs one step at a time: claim the run, do one unit of work through the
engine, store what happened, release. Safe to call twice for the same step."""

from __future__ import annotations

import fcntl
import logging
import socket
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.utils import timezone
from git import GitCommandError

from autopack_site import configuration
from governance import maintenance, proposals
from governance.models import GovernanceRequest
from governance.notifications import notify
from runs import environments, remembering, services
from runs.engine.failures import signature
from runs.engine.gates.results import TestResults
from runs.engine.outcomes import (
    BudgetExhausted,
    Cancelled,
    ConfigurationError,
    FailureCode,
    Outcome,
    RepositoryError,
    RunStopped,
)
from runs.engine.sandbox import sandbox_problem
from runs.engine.toolchains import SetupFailed
from runs.engine.workspace import GitWorkspace
from runs.lease import Lease, LeaseLost
from runs.models import Phase, Run
from runs.phase_runner import attempt_phase, require_providers
from runs.recorder import DjangoRecorder
from runs.states import AttemptState, PhaseState, RunState

logger = logging.getLogger(__name__)


def execute_step(run_id: str, step: int) -> bool:
    """Do one step of the run if this caller can claim it. Returns True when a step was
    executed and the run still has work to do."""
    claimed = Lease.claim(run_id, step)
    if claimed is None:
        return False
    lease, run, stalled = claimed
    if stalled is not None:
        # The previous worker died (or stalled) mid-step without releasing the run.
        services.record_event(
            run,
            "taken_over",
            step=step,
            host=socket.gethostname(),
            lease_expired_at=stalled.isoformat(),
            seconds_after_expiry=round((timezone.now() - stalled).total_seconds(), 1),
        )
    try:
        with lease.kept(), _in_use(run_id):
            _step(run, lease)
    except LeaseLost:
        logger.warning("run %s step %s: lease lost, nothing recorded", run_id, step)
        return False
    except Exception as exc:
        # A bug must stop the run with its traceback on record, not crash the worker
        # and have the stalled-run sweep retry the same failure forever.
        logger.exception("step %s of run %s failed", step, run_id)
        try:
            _fail_on_internal_error(run, exc, lease)
        except LeaseLost:
            return False
    if not lease.release(step + 1):
        return False
    run.refresh_from_db()
    return run.state in RunState.ACTIVE


def _step(run: Run, lease: Lease) -> None:
    if run.cancel_requested:
        _finish(run, lease, RunState.CANCELLED, "", "cancelled on request")
        return
    if run.state == RunState.QUEUED:
        with lease.fence():
            services.transition_run(run, RunState.RUNNING)
    try:
        if _over_time(run):
            raise BudgetExhausted(f"maximum duration of {run.max_duration_seconds:,} s reached")
        config = configuration.models()
        _check_sandbox(run)
        workspace = _workspace(run, lease)
        _abandon_interrupted_attempts(run, lease)
        phase = _next_phase(run)
        if phase is None:
            _settle(run, workspace, lease)
            return
        require_providers(run, phase, config)
        recorder = DjangoRecorder(run, phase, lease=lease)
        environment = environments.prepare_for(run, phase, workspace, recorder)
        references = _references(run, phase, workspace, environment)
        attempt_phase(run, phase, workspace, config, environment, references, lease)
    except Cancelled:
        _finish(run, lease, RunState.CANCELLED, "", "cancelled on request")
    except SetupFailed as exc:
        services.record_event(run, "setup_failed", message=str(exc), output=exc.output[-8000:])
        _finish(run, lease, RunState.DONE_FAILED, exc.outcome, exc.report())
    except RunStopped as exc:
        # A user error (budget, configuration, repository, tests that cannot run): its
        # code says which, its message what to change.
        _finish(run, lease, RunState.DONE_FAILED, exc.outcome, exc.report())


def _settle(run: Run, workspace: GitWorkspace, lease: Lease) -> None:
    """Every phase is done: the run is, unless it proposes its change first."""
    settled = proposals.settle(run, workspace, lease)
    if settled is None:
        _finish(run, lease, RunState.DONE_SUCCESS, "", "")
    elif settled.state == RunState.AWAITING_APPROVAL:
        with lease.fence():
            services.transition_run(run, RunState.AWAITING_APPROVAL, reason=settled.reason)
        maintenance.after_run(run)
    else:
        _finish(run, lease, settled.state, settled.code, settled.reason)


def _fail_on_internal_error(run: Run, exc: Exception, lease: Lease) -> None:
    run.refresh_from_db()
    with lease.fence():
        for attempt in run.attempts.filter(state=AttemptState.RUNNING):
            services.finish_attempt(
                attempt, AttemptState.FAILED, outcome=Outcome.INTERNAL_ERROR, error=repr(exc)
            )
        services.record_event(
            run, "internal_error", error=repr(exc), traceback=traceback.format_exc()
        )
    if not run.is_final:
        _finish(
            run,
            lease,
            RunState.DONE_FAILED,
            FailureCode.INTERNAL_ERROR,
            f"Autopack failed: {exc!r} (please report it; the traceback is in the run's event log)",
        )


def _finish(run: Run, lease: Lease, state: str, code: str, reason: str) -> None:
    with lease.fence():
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
    if remembering.enabled(run):
        run.refresh_from_db()
        remembering.after_run(run)
    if state in (RunState.DONE_SUCCESS, RunState.DONE_FAILED):
        outcome = "succeeded" if state == RunState.DONE_SUCCESS else f"failed: {reason[:300]}"
        notify("run_finished", run, f"run {outcome}", outcome=state, code=code)
    maintenance.after_run(run)


def _over_time(run: Run) -> bool:
    if not run.max_duration_seconds or run.active_since is None:
        return False
    return (timezone.now() - run.active_since).total_seconds() > run.max_duration_seconds


def _workspace(run: Run, lease: Lease) -> GitWorkspace:
    """The run's worktree on this machine, made exactly the commit the database records
    as the truth (the last savepoint, or the base commit), whatever `HEAD` is."""
    project = run.project
    workspace = GitWorkspace.prepare(
        project.repository,
        run.base_branch or project.base_branch,
        run.run_id,
        settings.AUTOPACK_HOME,
        start=run.last_savepoint or run.base_commit,
        branches=project.integration_remote,
    )
    changes = {}
    if not run.base_commit:
        changes["base_commit"] = workspace.head()
    if run.worktree_path != str(workspace.root):
        changes["worktree_path"] = str(workspace.root)
    if changes:
        with lease.fence():
            if "base_commit" in changes and project.integration_remote:
                # The branch is visible on the remote from the start, at the base commit.
                workspace.publish(changes["base_commit"], project.integration_remote)
            Run.objects.filter(pk=run.pk).update(**changes)
            services.record_event(
                run,
                "workspace",
                path=str(workspace.root),
                host=socket.gethostname(),
                branch=run.integration_branch,
                commit=workspace.head(),
                remote=project.integration_remote,
            )
        for field, value in changes.items():
            setattr(run, field, value)
    return workspace


@contextmanager
def _in_use(run_id: str, wait: bool = True) -> Iterator[bool]:
    """Hold the lock that says a step on this machine is using the run's worktree. With
    `wait` False, yields False at once when another process holds it."""
    root = Path(settings.AUTOPACK_HOME) / "workspaces"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{run_id}.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def tidy_workspaces() -> int:
    """Reset every worktree on this machine that no step is using to its run's recorded
    savepoint (or, when this clone lacks it, to its own last commit): what a killed
    worker left half-written goes. Run when a worker starts and by its sweep. Returns
    how many were reset."""
    root = Path(settings.AUTOPACK_HOME) / "workspaces"
    names = [e.name for e in root.iterdir() if e.is_dir()] if root.is_dir() else []
    tidied = 0
    for run in Run.objects.filter(run_id__in=names):
        with _in_use(run.run_id, wait=False) as free:
            if not free:
                continue
            target = run.last_savepoint or run.base_commit
            try:
                workspace = GitWorkspace(root / run.run_id)
                if target and workspace.has_commit(target):
                    workspace.reset_to(target)
                else:
                    workspace.rollback()
                tidied += 1
            except (RepositoryError, GitCommandError) as exc:
                logger.warning("left worktree %s alone: %s", root / run.run_id, exc)
    return tidied


def _abandon_interrupted_attempts(run: Run, lease: Lease) -> None:
    # Only RUNNING attempts were cut off; one awaiting approval or approved is waiting on
    # purpose and continues at its next step. They count against the phase's attempts.
    interrupted = list(run.attempts.filter(state=AttemptState.RUNNING))
    if not interrupted:
        return
    error = (
        "worker lost: the worker executing this attempt died or lost the run's lease; "
        "the work continues from the last savepoint"
    )
    with lease.fence():
        for attempt in interrupted:
            services.finish_attempt(
                attempt,
                AttemptState.ABANDONED,
                outcome=Outcome.WORKER_LOST,
                error=error,
                failure_signature=signature(Outcome.WORKER_LOST, error),
            )
            services.record_event(
                run, "attempt_abandoned", phase_id=attempt.phase.phase_id, attempt=attempt.number
            )
        # A change the dead worker put up for approval goes with its attempt.
        GovernanceRequest.objects.filter(
            attempt__in=interrupted, state=GovernanceRequest.State.PENDING
        ).update(
            state=GovernanceRequest.State.EXPIRED,
            decided_at=timezone.now(),
            decision_reason="its attempt was abandoned (worker lost)",
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
