"""One attempt at a phase, from the Django side: have recovery decide what follows the
last failure, choose the models, build the engine's dependencies, run the attempt (or
continue an approved one), and store what happened."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings

from autopack_site import configuration
from governance import backlog
from governance.gatekeeper import Gatekeeper
from governance.notifications import notify
from governance.secrets import scrub, scrub_data
from memory import rules
from runs import environments, recovery, remembering, services
from runs.engine.attempt import AttemptDeps, Limits, continue_approved, run_attempt
from runs.engine.diagnostics import run_probes, wants
from runs.engine.edits import edit_format
from runs.engine.escalation import choose
from runs.engine.failures import Failure, signature
from runs.engine.gates.deliverables import DeliverablesGate
from runs.engine.gates.results import TestResults
from runs.engine.gates.tests import DiscoveredTestGate, Runtime, TestGate
from runs.engine.llm import LLMCaller, provider_for
from runs.engine.outcomes import AttemptResult, AwaitingApproval, RunStopped
from runs.engine.routing import ModelsConfig
from runs.engine.spec import AttemptPlan
from runs.engine.toolchains import Environment
from runs.engine.workspace import GitWorkspace
from runs.lease import Lease
from runs.models import Attempt, Phase, Run
from runs.providers import configured_providers, override_for
from runs.recorder import DjangoRecorder
from runs.states import AttemptState, Outcome, PhaseState, RunState
from telemetry.budgets import budget_for, check_health


def attempt_phase(
    run: Run,
    phase: Phase,
    workspace: GitWorkspace,
    config: ModelsConfig,
    environment: Environment | None,
    references: dict[str, TestResults],
    lease: Lease,
) -> None:
    """One attempt at the phase, after recovery has decided what follows its last
    failure (runs.recovery). Every state change is recorded under the run's lease
    (`lease.fence()`); a passed attempt's savepoint is pushed first, so what the database
    records is on the remote."""
    if phase.state == PhaseState.QUEUED:
        with lease.fence():
            services.transition_phase(phase, PhaseState.EXECUTING)
            services.sync_tier_state(phase.tier)
    approved = phase.attempts.filter(state=AttemptState.APPROVED).first()
    # Attempts a dying worker abandoned count: a phase that kills its worker must end.
    history = recovery.failures(phase)
    decided = recovery.Next()
    if approved is None and history:
        decided = recovery.after_failure(run, phase, history, config, workspace, lease)
        if decided.done:
            return
    check_health(run)
    recorder = DjangoRecorder(run, phase, lease=lease)
    llm = LLMCaller(
        configured_providers(), budget_for(run, phase), recorder, override=override_for(run)
    )
    choice = None if approved else _choice(phase, config, len(history))
    require_providers(run, phase, config)
    with lease.fence():
        attempt = approved or _new_attempt(run, phase, choice)
    recorder.attempt = attempt
    told = [f.feedback for f in history if f.attempt < attempt.number and f.feedback]
    changed = [f.diff for f in history if f.attempt < attempt.number and f.diff]
    spec = recovery.spec_of(run, phase)
    remember = remembering.enabled(run)
    if remember:
        remembering.remember_anchor(run)
    plan = AttemptPlan(
        spec=spec,
        number=attempt.number,
        builder_model=attempt.model,
        auditor_model=attempt.auditor_model or None,
        feedback=told[-1] if told else "",
        hints=tuple(rules.hints_for(run, phase)) if remember else (),
        recovery_hint=decided.hint,
        history=recovery.history_lines(history),
        executables=tuple(phase.executables),
        previous_diff=changed[-1] if changed else "",
        memories=remembering.memories_for(run, phase, told[-1] if told else "") if remember else (),
        anchor=run.intention_anchor,
    )
    deps = AttemptDeps(
        llm=llm,
        workspace=workspace,
        edit_format=edit_format(config.builder.edit_format),
        gates=_gates(run, phase, workspace, recorder, environment, references),
        recorder=recorder,
        limits=_limits(config),
        governance=_gatekeeper(run, phase, attempt),
        diagnose=_diagnose(run, phase, workspace, environment),
        tags=remembering.tag_index(),
        semantic=remembering.semantic(run) if settings.AUTOPACK_MEMORY_ENABLED else None,
        drift=remembering.drift_check(run) if settings.AUTOPACK_MEMORY_ENABLED else None,
    )
    try:
        if approved:
            request = approved.governance_request
            result = continue_approved(plan, deps, request.diff, request.paths, request.base_commit)
        else:
            result = run_attempt(plan, deps)
    except AwaitingApproval as held:
        _hold(run, phase, attempt, held, lease)
        return
    except RunStopped as stop:
        with lease.fence():
            services.finish_attempt(
                attempt, AttemptState.FAILED, outcome=stop.outcome, error=scrub(str(stop))
            )
        raise
    remote = run.project.integration_remote
    with lease.fence():
        if result.passed and remote:
            workspace.publish(result.savepoint, remote)
        _store(attempt, result)
        _after_attempt(run, phase, attempt, remote)
        if result.diagnostics:
            recovery.record_diagnostics(run, phase, attempt, result)
    if result.passed:
        _remember_tests(run, result, attempt.savepoint)
        if remember:
            remembering.after_phase(run, phase)


def _choice(phase: Phase, config: ModelsConfig, failures: int):
    policy = config.policy_for(phase.category, phase.escalation_policy)
    return choose(config, phase.complexity, failures, policy)


def require_providers(run: Run, phase: Phase, config: ModelsConfig) -> None:
    """The models the phase's next attempt needs must have a provider: checked before
    anything slow (an environment, a baseline) and again before the attempt."""
    providers, override = configured_providers(), override_for(run)
    approved = phase.attempts.filter(state=AttemptState.APPROVED).first()
    if approved is not None:  # an approved attempt continues with its own models
        models = [approved.model, approved.auditor_model]
    else:
        failed = phase.attempts.filter(state__in=recovery.COUNTED).count()
        choice = _choice(phase, config, failed)
        models = [choice.builder, choice.auditor]
    for model in filter(None, models):
        provider_for(providers, model, override)


def _new_attempt(run: Run, phase: Phase, choice) -> Attempt:
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
    services.record_event(
        run,
        "attempt_started",
        phase_id=phase.phase_id,
        attempt=number,
        model=choice.builder,
        auditor=choice.auditor,
        reason=choice.reason,
    )
    return attempt


def _gatekeeper(run: Run, phase: Phase, attempt: Attempt) -> Gatekeeper:
    return Gatekeeper(run, phase, attempt, configuration.governance())


def _hold(run: Run, phase: Phase, attempt: Attempt, held: AwaitingApproval, lease: Lease) -> None:
    with lease.fence():
        services.move_attempt(
            attempt,
            AttemptState.AWAITING_APPROVAL,
            outcome=Outcome.AWAITING_APPROVAL,
            diff=scrub(held.diff),
        )
        services.transition_phase(phase, PhaseState.AWAITING_APPROVAL)
        services.transition_run(run, RunState.AWAITING_APPROVAL, reason=str(held))
    notify(
        "approval_needed",
        run,
        f"phase {phase.phase_id} waits for approval: {held}",
        phase_id=phase.phase_id,
        request=held.request_id,
    )


def _store(attempt: Attempt, result: AttemptResult) -> None:
    services.finish_attempt(
        attempt,
        AttemptState.PASSED if result.passed else AttemptState.FAILED,
        outcome=result.outcome,
        error=scrub(result.message),
        feedback=scrub(result.feedback),
        diff=scrub(result.diff),
        changed_files=result.changed_files,
        gate_results=scrub_data(result.gates),
        auditor_verdict=scrub_data(result.auditor),
        savepoint=result.savepoint,
        failure_signature="" if result.passed else signature(result.outcome, result.message),
        failure_kind=result.kind,
        diagnostics=scrub_data(result.diagnostics),
        context_files=result.context_files or attempt.context_files,
        omitted_files=result.omitted_files or attempt.omitted_files,
        context=result.context or attempt.context,
        drift=result.drift,
        truncations=result.truncations,
    )


def _after_attempt(run: Run, phase: Phase, attempt: Attempt, remote: str) -> None:
    if attempt.state == AttemptState.PASSED:
        services.transition_phase(phase, PhaseState.COMPLETE)
        Phase.objects.filter(pk=phase.pk).update(savepoint=attempt.savepoint)
        Run.objects.filter(pk=run.pk).update(last_savepoint=attempt.savepoint)
        run.last_savepoint = attempt.savepoint
        services.record_event(
            run,
            "savepoint",
            phase_id=phase.phase_id,
            attempt=attempt.number,
            commit=attempt.savepoint,
            branch=run.integration_branch,
            pushed_to=remote,
        )
        if remembering.enabled(run):
            rules.learn(run, phase, attempt)
    else:
        backlog.record_failure(attempt)
        Phase.objects.filter(pk=phase.pk).update(last_failure_reason=attempt.error)
    services.sync_tier_state(phase.tier)


def _gates(
    run: Run,
    phase: Phase,
    workspace: GitWorkspace,
    recorder: DjangoRecorder,
    environment: Environment | None,
    references: dict[str, TestResults],
) -> list:
    gates: list = [DeliverablesGate(list(phase.deliverables))] if phase.deliverables else []

    def runtime() -> Runtime:
        # Prepared again before each gate: a changed manifest rebuilds the environment.
        current = environments.prepare_for(run, phase, workspace, recorder)
        return current.runtime if current else Runtime()

    commands = environments.gate_commands(run, phase, environment)
    if not commands:

        def discover() -> tuple[str | None, Runtime]:
            current = environments.prepare_for(run, phase, workspace, recorder)
            command = environments.suite_command(run, current)
            return command, current.runtime if current else Runtime()

        gates.append(
            DiscoveredTestGate(
                discover,
                list(phase.acceptance_criteria),
                settings.AUTOPACK_GATE_TIMEOUT,
                sandbox=bool(run.sandboxed),
            )
        )
    for gate in commands:
        gates.append(
            TestGate(
                gate.command,
                references.get(gate.command),
                list(phase.acceptance_criteria) if gate.criteria else [],
                runtime,
                settings.AUTOPACK_GATE_TIMEOUT,
                sandbox=bool(run.sandboxed),
                own_command=gate.own,
                name="phase tests" if gate.own and len(commands) > 1 else "tests",
            )
        )
    return gates


def _diagnose(
    run: Run, phase: Phase, workspace: GitWorkspace, environment: Environment | None
) -> Callable[[Failure], list[dict]] | None:
    """The probes a failed attempt gets before it is rolled back (config/diagnostics.yaml)."""
    config = configuration.diagnostics()
    commands = environments.gate_commands(run, phase, environment)

    def diagnose(failure: Failure) -> list[dict]:
        if not wants(config, failure.kind):
            return []
        results = run_probes(
            workspace.root,
            failure,
            config,
            environment.runtime if environment else Runtime(),
            sandbox=bool(run.sandboxed),
            test_command=commands[0].command if commands else "",
        )
        return [probe.as_dict() for probe in results]

    return diagnose


def _remember_tests(run: Run, result: AttemptResult, savepoint: str) -> None:
    """A passing gate's results are the reference of the phase that starts from its
    savepoint: the next phase need not run the tests again before it begins."""
    # The environment the gates ran in: rebuilt during the attempt if it changed a manifest.
    current = Run.objects.get(pk=run.pk)
    key = environments.baseline_key(current, (current.environment or {}).get("key"))
    for gate in result.gate_outcomes:
        if gate.record is not None:
            environments.remember(
                run, gate.details["command"], savepoint, key, TestResults.from_record(gate.record)
            )


def _limits(config: ModelsConfig) -> Limits:
    return Limits(
        max_output_tokens=config.builder.max_output_tokens,
        max_output_tokens_limit=max(
            config.builder.max_output_tokens, config.builder.max_output_tokens_limit
        ),
        context_budget_tokens=config.builder.context_budget_tokens,
        fuzzy_threshold=config.builder.fuzzy_match_threshold,
        max_file_bytes=config.builder.max_file_bytes,
        max_change_bytes=config.builder.max_change_bytes,
        auditor_max_tokens=config.auditor.max_output_tokens,
    )
