"""Carrying out recovery after a failed attempt: the policy is `runs.engine.recovery`;
this module gathers its inputs from the database, asks it, records every decision (a
Decision row and a `decision` event) and does what it says: ask the Doctor, replan,
end the phase, or (runs/remedies.py) apply a known fix, run the Doctor's command, skip
the phase or roll the run back. Each step is recorded before the next is decided, so a
worker that dies halfway leaves the next one to go on from the rows."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from autopack_site import configuration
from governance.notifications import notify
from governance.secrets import scrub, scrub_data
from runs import environments, remedies, remembering, services
from runs.engine import mitigations
from runs.engine.diagnostics import summarise
from runs.engine.doctor import (
    PLANNER_SYSTEM,
    ReplyError,
    doctor_messages,
    doctor_system,
    parse_advice,
    parse_revision,
    planner_messages,
)
from runs.engine.failures import Failure, failure_of
from runs.engine.llm import LLMCaller
from runs.engine.outcomes import AttemptFailure, ConfigurationError, RunStopped
from runs.engine.policy import in_scope
from runs.engine.recovery import Action, Advice, Situation, decide
from runs.engine.recovery import Decision as Decided
from runs.engine.routing import ModelsConfig
from runs.engine.spec import PhaseSpec
from runs.engine.workspace import GitWorkspace
from runs.lease import Lease
from runs.models import Attempt, Decision, Phase, PhasePlan, Run
from runs.providers import configured_providers, override_for
from runs.recorder import DjangoRecorder
from runs.states import AttemptState, FailureCode, PhaseState
from telemetry.budgets import budget_for, check_health, health_used
from telemetry.models import LlmCall

# The attempts that count against a phase's limit.
COUNTED = (AttemptState.FAILED, AttemptState.ABANDONED)
# Decisions written to the project's memory (with any decision that carries a hint).
REMEMBERED = (Action.REPLAN, Action.SKIP_PHASE, Action.ROLLBACK_RUN, Action.APPLY_FIX, Action.FAIL)
RETRIES = (Action.RETRY, Action.RETRY_WITH_HINT, Action.NEXT_MODEL, Action.NEXT_COMPLEXITY)
# Known fixes after which the step ends (see after_failure).
RESTARTS = ("rebuild_environment", "set_test_directory")


class PhaseFailed(RunStopped):
    """The phase ran out of attempts (or cannot be recovered); the run ends DONE_FAILED
    with phase_failed."""

    outcome = FailureCode.PHASE_FAILED


@dataclass(frozen=True)
class Next:
    """What the phase's next attempt is given, and whether this step is over (`done`):
    the attempt, if any, is made by the next step."""

    hint: str = ""
    done: bool = False


def failures(phase: Phase) -> tuple[Failure, ...]:
    return tuple(_failure(a) for a in phase.attempts.filter(state__in=COUNTED).order_by("number"))


def _failure(attempt: Attempt) -> Failure:
    return failure_of(
        attempt.number,
        attempt.outcome,
        attempt.error,
        gates=attempt.gate_results,
        model=attempt.model,
        feedback=attempt.feedback,
        changed_files=attempt.changed_files,
        diff=attempt.diff,
    )


def history_lines(history: tuple[Failure, ...]) -> tuple[str, ...]:
    """One line per failed attempt, for the Builder: the whole history, not only the last."""
    return tuple(
        f"attempt {f.attempt} ({f.model}): {f.kind.replace('_', ' ')}: "
        f"{f.message.strip().splitlines()[0][:300] if f.message.strip() else '(no message)'}"
        for f in history
    )


def after_failure(
    run: Run,
    phase: Phase,
    history: tuple[Failure, ...],
    config: ModelsConfig,
    workspace: GitWorkspace,
    lease: Lease,
) -> Next:
    """Decide and carry out what follows the phase's last failure, step by step, until
    the decision is a retry (returned with its hint), a skip or a rollback (`done`), or
    the end of the phase (PhaseFailed)."""
    last = phase.attempts.get(number=history[-1].attempt)
    # A fix that changed the environment or the test command ends the step: the next
    # one prepares the environment and takes the baselines its gates compare with.
    restart = False
    while True:
        earlier = _decisions(run, last)
        final = next((d for d in earlier if d.action not in Action.INTERIM), None)
        if final is not None and final.action in RETRIES:
            return Next(hint=final.hint)
        if final is not None and final.action == Action.ROLLBACK_RUN:
            return Next()  # the phase was queued again after a rollback: a plain retry
        situation = _situation(run, phase, history, earlier, config, workspace)
        decision = decide(situation, config)
        if decision.action in (Action.ASK_DOCTOR, Action.REPLAN):
            check_health(run)  # no diagnosis for a run that must stop anyway
        with lease.fence():
            row = _record(run, phase, last, decision)
        if decision.action in RETRIES:
            return Next(hint=decision.hint, done=restart)
        if decision.action == Action.FAIL:
            fail_phase(run, phase, last, lease, decision.reason)
        if decision.action == Action.SKIP_PHASE:
            remedies.skip(run, phase, lease, decision.reason)
            return Next(done=True)
        if decision.action == Action.ROLLBACK_RUN:
            advice = situation.advice[-1]
            target = advice.rollback_to or situation.rollback_targets[0]
            result = remedies.rollback(run, workspace, lease, target, decision.reason)
            with lease.fence():
                Decision.objects.filter(pk=row.pk).update(result=result)
            return Next(done=True)
        result = _carry_out(run, phase, last, history, config, workspace, situation, decision)
        restart = restart or result.get("action") in RESTARTS
        with lease.fence():
            Decision.objects.filter(pk=row.pk).update(result=scrub_data(result))


def record_diagnostics(run: Run, phase: Phase, attempt: Attempt, result) -> None:
    """The probes a failed attempt got before its rollback, as a decision of its own."""
    names = [probe["name"] for probe in result.diagnostics if not probe.get("skipped")]
    decision = Decided(
        Action.RUN_DIAGNOSTICS,
        f"{result.kind.replace('_', ' ')} failures get read-only probes before the "
        f"rollback (config/diagnostics.yaml): {', '.join(names) or 'none ran'}",
        result.kind,
        inputs={"probes": [probe["name"] for probe in result.diagnostics]},
    )
    _record(run, phase, attempt, decision)


def _decisions(run: Run, attempt: Attempt) -> list[Decision]:
    """The decisions about `attempt` since the run's last (re)start: a resumed run
    decides afresh."""
    rows = attempt.decisions.order_by("id")
    if run.active_since is not None:
        rows = rows.filter(created_at__gte=run.active_since)
    return list(rows)


def _situation(
    run: Run,
    phase: Phase,
    history: tuple[Failure, ...],
    earlier: list[Decision],
    config: ModelsConfig,
    workspace: GitWorkspace,
) -> Situation:
    doctor_calls = LlmCall.objects.filter(run=run, role="doctor")
    decisions = Decision.objects.filter(run=run)
    mitigation = None
    if config.failure_hardening.enabled:
        commands = tuple(g.command for g in environments.gate_commands(run, phase, None))
        mitigation = mitigations.match(
            history[-1], workspace.root, tuple(phase.scope_paths), commands
        )
    return Situation(
        failures=history,
        max_attempts=phase.max_attempts,
        complexity=phase.complexity,
        category=phase.category,
        policy=config.policy_for(phase.category, phase.escalation_policy),
        doctor_calls_phase=doctor_calls.filter(phase=phase).count(),
        doctor_calls_run=doctor_calls.count(),
        replans=decisions.filter(phase=phase, action=Action.REPLAN).count(),
        fixes=decisions.filter(phase=phase, action=Action.EXECUTE_FIX).count(),
        rollbacks=decisions.filter(action=Action.ROLLBACK_RUN).count(),
        health_ratio=health_used(run),
        dependants=_dependants(run, phase),
        rollback_targets=_rollback_targets(run, phase),
        mitigation=mitigation,
        mitigated=any(d.action == Action.APPLY_FIX for d in earlier),
        advice=tuple(
            Advice(**d.result["advice"])
            for d in earlier
            if d.action == Action.ASK_DOCTOR and d.result.get("advice")
        ),
        replanned=any(d.action == Action.REPLAN and d.result.get("version") for d in earlier),
        fix_ran=any(d.action == Action.EXECUTE_FIX for d in earlier),
        doctor_unavailable=any(d.result.get("unavailable") for d in earlier),
    )


def _dependants(run: Run, phase: Phase) -> tuple[str, ...]:
    """Later phases that build on this one: their scope or read-only context overlaps
    its scope (see the skip rule in runs/engine/recovery.py)."""
    phases = remedies.ordered_phases(run)
    later = phases[[p.pk for p in phases].index(phase.pk) + 1 :]
    mine = list(phase.scope_paths)
    found = []
    for other in later:
        theirs = [*other.scope_paths, *(c["path"] for c in other.read_only_context)]
        if any(in_scope(p, mine) for p in theirs) or any(in_scope(p, theirs) for p in mine):
            found.append(other.phase_id)
    return tuple(found)


def _rollback_targets(run: Run, phase: Phase) -> tuple[str, ...]:
    """Completed phases before this one with a savepoint, the latest first, then the
    base commit."""
    phases = remedies.ordered_phases(run)
    before = phases[: [p.pk for p in phases].index(phase.pk)]
    done = [p.phase_id for p in reversed(before) if p.state == PhaseState.COMPLETE and p.savepoint]
    return (*done, "base") if done else ()


def _record(run: Run, phase: Phase, attempt: Attempt, decision: Decided) -> Decision:
    """A Decision row and its event."""
    row = Decision.objects.create(
        run=run,
        phase=phase,
        attempt=attempt,
        action=decision.action,
        reason=scrub(decision.reason),
        failure_kind=decision.kind,
        hint=scrub(decision.hint),
        model=decision.model,
        inputs=scrub_data(decision.inputs),
    )
    services.record_event(
        run,
        "decision",
        phase_id=phase.phase_id,
        attempt=attempt.number,
        action=decision.action,
        failure=decision.kind,
        reason=decision.reason,
        model=decision.model,
        hint=decision.hint[:500],
    )
    if remembering.enabled(run) and (decision.hint or decision.action in REMEMBERED):
        remembering.remember_decision(run, phase, decision.action, decision.reason, decision.hint)
    return row


def _carry_out(
    run: Run,
    phase: Phase,
    last: Attempt,
    history: tuple[Failure, ...],
    config: ModelsConfig,
    workspace: GitWorkspace,
    situation: Situation,
    decision,
) -> dict:
    if decision.action == Action.APPLY_FIX:
        return remedies.apply_fix(run, phase, workspace, situation.mitigation)
    if decision.action == Action.ASK_DOCTOR:
        return _ask_doctor(run, phase, last, history, config, decision.model)
    if decision.action == Action.REPLAN:
        return _replan(run, phase, last, history, config, decision.reason, situation.advice)
    if decision.action == Action.EXECUTE_FIX:
        return remedies.execute_fix(run, phase, workspace, situation.advice[-1])
    raise ValueError(f"no step carries out {decision.action}")


def _llm(run: Run, phase: Phase, attempt: Attempt) -> LLMCaller:
    recorder = DjangoRecorder(run, phase, attempt)
    return LLMCaller(
        configured_providers(), budget_for(run, phase), recorder, override=override_for(run)
    )


def spec_of(run: Run, phase: Phase) -> PhaseSpec:
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
        allow_binary=phase.allow_binary,
        approach=phase.approach,
        withheld=()
        if run.project.send_secret_files
        else tuple(configuration.governance().secret_files),
    )


def _ask_doctor(
    run: Run,
    phase: Phase,
    last: Attempt,
    history: tuple[Failure, ...],
    config: ModelsConfig,
    model: str,
) -> dict:
    completed = [
        f"{p.phase_id}: {p.title} (savepoint {p.savepoint[:10]})"
        for p in remedies.ordered_phases(run)
        if p.state == PhaseState.COMPLETE and p.savepoint
    ]
    messages = doctor_messages(
        spec_of(run, phase),
        history,
        summarise(last.diagnostics),
        completed,
        anchor=run.intention_anchor,
    )
    system = doctor_system(config.doctor.allow_execute_fix_global)
    try:
        response = _llm(run, phase, last).call(
            "doctor", model, system, messages, config.doctor.max_output_tokens
        )
        advice = parse_advice(response.text, model, model == config.doctor_models.strong)
    except ConfigurationError as exc:  # no provider for the Doctor: go on without it
        return {"error": f"no diagnosis from {model}: {exc}", "unavailable": True}
    except (ReplyError, AttemptFailure) as exc:
        return {"error": f"no diagnosis from {model}: {exc}"}
    services.record_event(
        run,
        "doctor",
        phase_id=phase.phase_id,
        attempt=last.number,
        model=model,
        action=advice.action,
        confidence=advice.confidence,
        reasoning=advice.reasoning[:1000],
    )
    return {"advice": advice.__dict__}


def _replan(
    run: Run,
    phase: Phase,
    last: Attempt,
    history: tuple[Failure, ...],
    config: ModelsConfig,
    reason: str,
    advice: tuple[Advice, ...],
) -> dict:
    spec = spec_of(run, phase)
    diagnosis = advice[-1].reasoning if advice else ""
    messages = planner_messages(spec, history, reason, diagnosis)
    model = config.planner_model
    try:
        response = _llm(run, phase, last).call(
            "planner", model, PLANNER_SYSTEM, messages, config.replan.max_output_tokens
        )
        revision = parse_revision(response.text, spec)
    except (ReplyError, AttemptFailure, ConfigurationError) as exc:
        return {"error": f"no revision from {model}: {exc}"}
    with transaction.atomic():
        if not phase.plans.exists():
            PhasePlan.objects.create(
                phase=phase,
                version=1,
                description=phase.description,
                acceptance_criteria=phase.acceptance_criteria,
                approach=phase.approach,
                scope_paths=phase.scope_paths,
                reason="as configured",
            )
        version = phase.plan_version + 1
        PhasePlan.objects.create(
            phase=phase,
            version=version,
            description=revision.description,
            acceptance_criteria=list(revision.acceptance_criteria),
            approach=revision.approach,
            scope_paths=list(revision.scope_paths),
            refused_paths=list(revision.refused_paths),
            reason=reason,
        )
        changes = {
            "description": revision.description,
            "acceptance_criteria": list(revision.acceptance_criteria),
            "approach": revision.approach,
            "scope_paths": list(revision.scope_paths),
            "plan_version": version,
        }
        Phase.objects.filter(pk=phase.pk).update(**changes)
        for field, value in changes.items():
            setattr(phase, field, value)
    services.record_event(
        run,
        "replanned",
        phase_id=phase.phase_id,
        version=version,
        model=model,
        refused_paths=list(revision.refused_paths),
    )
    return {"version": version, "refused_paths": list(revision.refused_paths)}


def fail_phase(run: Run, phase: Phase, last: Attempt, lease: Lease, why: str = "") -> None:
    with lease.fence():
        services.transition_phase(phase, PhaseState.FAILED, reason=last.error)
        services.sync_tier_state(phase.tier)
    if remembering.enabled(run):
        remembering.after_phase(run, phase)
    notify(
        "phase_failed",
        run,
        f"phase {phase.phase_id} failed: {last.error[:300]}",
        phase_id=phase.phase_id,
    )
    because = f" ({why})" if why else ""
    raise PhaseFailed(
        f"phase {phase.phase_id} failed after {last.number} attempt(s){because}; last: {last.error}"
    )
