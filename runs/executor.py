"""Executes runs one step at a time: claim the run, do one unit of work through the
engine, store what happened, release. Safe to call twice for the same step."""

from __future__ import annotations

import logging
import os
import threading
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from runs import services
from runs.config import is_git_url
from runs.engine.attempt import AttemptDeps, Limits, run_attempt
from runs.engine.edits import edit_format
from runs.engine.escalation import choose
from runs.engine.gates.deliverables import DeliverablesGate
from runs.engine.gates.tests import TestGate, run_tests
from runs.engine.llm import LLMCaller
from runs.engine.outcomes import (
    BudgetExhausted,
    Cancelled,
    EnvironmentProblem,
    RunStopped,
)
from runs.engine.routing import ModelConfigError, ModelsConfig, load_models_config
from runs.engine.signature import signature
from runs.engine.spec import AttemptPlan, PhaseSpec
from runs.engine.toolchains import detect_test_command
from runs.engine.workspace import GitWorkspace
from runs.models import Attempt, Phase, Run
from runs.providers import configured_providers, override_for
from runs.recorder import DjangoRecorder
from runs.states import AttemptState, FailureCode, PhaseState, RunState
from telemetry.budgets import budget_for, check_health

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
    return not run.is_final


def _step(run: Run) -> None:
    if run.cancel_requested:
        _finish(run, RunState.CANCELLED, "", "cancelled on request")
        return
    if run.state == RunState.QUEUED:
        services.transition_run(run, RunState.RUNNING)
    try:
        if _over_time(run):
            raise BudgetExhausted(f"maximum duration of {run.max_duration_seconds:,} s reached")
        config = _models_config()
        workspace = _workspace(run)
        _abandon_interrupted_attempts(run)
        if run.baseline is None:
            _take_baseline(run, workspace)
        phase = _next_phase(run)
        if phase is None:
            _finish(run, RunState.DONE_SUCCESS, "", "")
            return
        _attempt_phase(run, phase, workspace, config)
    except Cancelled:
        _finish(run, RunState.CANCELLED, "", "cancelled on request")
    except BudgetExhausted as exc:
        _finish(run, RunState.DONE_FAILED, FailureCode.BUDGET_EXHAUSTED, str(exc))
    except EnvironmentProblem as exc:
        _finish(run, RunState.DONE_FAILED, FailureCode.ENVIRONMENT, str(exc))


def _fail_on_internal_error(run: Run, exc: Exception) -> None:
    run.refresh_from_db()
    for attempt in run.attempts.filter(state=AttemptState.RUNNING):
        services.finish_attempt(
            attempt, AttemptState.FAILED, outcome="internal_error", error=repr(exc)
        )
    services.record_event(run, "internal_error", error=repr(exc), traceback=traceback.format_exc())
    if not run.is_final:
        _finish(
            run,
            RunState.DONE_FAILED,
            FailureCode.ENVIRONMENT,
            f"internal error: {exc!r} (traceback in the run's event log)",
        )


def _finish(run: Run, state: str, code: str, reason: str) -> None:
    services.transition_run(run, state, code=code, reason=reason)
    services.record_event(
        run,
        "run_finished",
        state=state,
        code=code,
        reason=reason,
        tokens_used=Run.objects.get(pk=run.pk).tokens_used,
        cost_usd=str(Run.objects.get(pk=run.pk).cost_usd),
    )


def _over_time(run: Run) -> bool:
    if not run.max_duration_seconds or run.active_since is None:
        return False
    return (timezone.now() - run.active_since).total_seconds() > run.max_duration_seconds


def _models_config() -> ModelsConfig:
    try:
        return load_models_config(Path(settings.AUTOPACK_MODELS))
    except ModelConfigError as exc:
        raise EnvironmentProblem(str(exc)) from None


def _workspace(run: Run) -> GitWorkspace:
    project = run.project
    workspace = GitWorkspace.prepare(
        project.repository,
        project.base_branch,
        run.run_id,
        settings.AUTOPACK_HOME,
        is_url=is_git_url(project.repository),
    )
    # Whatever an interrupted step left behind goes: work resumes from the last savepoint.
    workspace.rollback()
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
    for attempt in run.attempts.filter(state=AttemptState.RUNNING):
        services.finish_attempt(
            attempt,
            AttemptState.ABANDONED,
            outcome="interrupted",
            error="the worker executing this attempt stopped; the "
            "workspace was reset to the last savepoint",
        )
        services.record_event(
            run, "attempt_abandoned", phase_id=attempt.phase.phase_id, attempt=attempt.number
        )


def _test_command(run: Run, phase: Phase, root: Path) -> str | None:
    return phase.test_command or run.project.test_command or detect_test_command(root)


def _take_baseline(run: Run, workspace: GitWorkspace) -> None:
    """Run each test command the plan will use once, on the base commit."""
    baseline: dict[str, dict] = {}
    for phase in run.phases.all():
        command = _test_command(run, phase, workspace.root)
        if command and command not in baseline:
            result = run_tests(
                command, workspace.root, settings.AUTOPACK_GATE_TIMEOUT, _command_env()
            )
            baseline[command] = result.baseline()
            services.record_event(
                run,
                "baseline",
                command=command,
                exit_code=result.exit_code,
                failing=len(result.failing),
                passed=len(result.passed),
                duration=round(result.duration, 3),
            )
    Run.objects.filter(pk=run.pk).update(baseline=baseline)
    run.baseline = baseline


def _command_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _next_phase(run: Run) -> Phase | None:
    return (
        run.phases.exclude(state__in=PhaseState.FINAL)
        .select_related("tier")
        .order_by("tier__index", "index")
        .first()
    )


def _spec(run: Run, phase: Phase) -> PhaseSpec:
    return PhaseSpec(
        run_id=run.run_id,
        phase_id=phase.phase_id,
        goal=run.goal,
        task_name=phase.name,
        description=phase.description,
        category=phase.category,
        complexity=phase.complexity,
        scope_paths=tuple(phase.scope_paths),
        read_only_context=tuple((c["path"], c.get("reason", "")) for c in phase.read_only_context),
        deliverables=tuple(phase.deliverables),
        acceptance_criteria=tuple(phase.acceptance_criteria),
    )


def _attempt_phase(run: Run, phase: Phase, workspace: GitWorkspace, config: ModelsConfig) -> None:
    if phase.state == PhaseState.QUEUED:
        services.transition_phase(phase, PhaseState.EXECUTING)
        services.sync_tier_state(phase.tier)
    check_health(run)
    failed = list(phase.attempts.filter(state=AttemptState.FAILED).order_by("number"))
    choice = choose(config, phase.complexity, len(failed))
    recorder = DjangoRecorder(run, phase)
    llm = LLMCaller(
        configured_providers(), budget_for(run, phase), recorder, override=override_for(run)
    )
    llm.provider_for(choice.builder)  # no attempt without a provider to make it
    if choice.auditor:
        llm.provider_for(choice.auditor)
    number = phase.attempts.count() + 1
    attempt = Attempt.objects.create(
        run=run,
        phase=phase,
        number=number,
        model=choice.builder,
        auditor_model=choice.auditor or "",
        model_reason=choice.reason,
    )
    Phase.objects.filter(pk=phase.pk).update(attempt_count=number)
    recorder.attempt = attempt
    services.record_event(
        run,
        "attempt_started",
        phase_id=phase.phase_id,
        attempt=number,
        model=choice.builder,
        auditor=choice.auditor,
        reason=choice.reason,
    )
    plan = AttemptPlan(
        spec=_spec(run, phase),
        number=number,
        builder_model=choice.builder,
        auditor_model=choice.auditor,
        feedback=failed[-1].feedback if failed else "",
    )
    deps = AttemptDeps(
        llm=llm,
        workspace=workspace,
        edit_format=edit_format(config.builder.edit_format),
        gates=_gates(run, phase, workspace.root),
        recorder=recorder,
        limits=_limits(config),
    )
    try:
        result = run_attempt(plan, deps)
    except RunStopped as stop:
        services.finish_attempt(attempt, AttemptState.FAILED, outcome=stop.outcome, error=str(stop))
        raise
    services.finish_attempt(
        attempt,
        AttemptState.PASSED if result.passed else AttemptState.FAILED,
        outcome=result.outcome,
        error=result.message,
        feedback=result.feedback,
        diff=result.diff,
        changed_files=result.changed_files,
        gate_results=result.gates,
        auditor_verdict=result.auditor,
        savepoint=result.savepoint,
        failure_signature="" if result.passed else signature(result.outcome, result.message),
        context_files=result.context_files,
        omitted_files=result.omitted_files,
        truncations=result.truncations,
    )
    _after_attempt(run, phase, attempt, len(failed) + (0 if result.passed else 1))


def _after_attempt(run: Run, phase: Phase, attempt: Attempt, failures: int) -> None:
    if attempt.state == AttemptState.PASSED:
        services.transition_phase(phase, PhaseState.COMPLETE)
        Run.objects.filter(pk=run.pk).update(last_savepoint=attempt.savepoint)
    elif failures >= phase.max_attempts:
        reason = f"phase {phase.phase_id} failed after {failures} attempt(s); last: {attempt.error}"
        services.transition_phase(phase, PhaseState.FAILED, reason=attempt.error)
        _finish(run, RunState.DONE_FAILED, FailureCode.PHASE_FAILED, reason)
    else:
        Phase.objects.filter(pk=phase.pk).update(last_failure_reason=attempt.error)
    services.sync_tier_state(phase.tier)


def _gates(run: Run, phase: Phase, root: Path) -> list:
    gates: list = [DeliverablesGate(list(phase.deliverables))]
    command = _test_command(run, phase, root)
    if command:
        gates.append(
            TestGate(
                command,
                (run.baseline or {}).get(command, {}),
                list(phase.acceptance_criteria),
                settings.AUTOPACK_GATE_TIMEOUT,
                _command_env(),
            )
        )
    return gates


def _limits(config: ModelsConfig) -> Limits:
    return Limits(
        max_output_tokens=config.builder.max_output_tokens,
        max_output_tokens_limit=max(
            config.builder.max_output_tokens, config.builder.max_output_tokens_limit
        ),
        context_chars=config.builder.context_chars,
        fuzzy_threshold=config.builder.fuzzy_match_threshold,
        auditor_max_tokens=config.auditor.max_output_tokens,
    )
