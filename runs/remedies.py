"""What recovery does to a run's repository and phases (the decisions are made in
runs/engine/recovery.py and carried out from runs/recovery.py): a known fix's effect,
the Doctor's allowlisted command, a skipped phase, a rollback to an earlier savepoint."""

from __future__ import annotations

from runs import environments, services
from runs.engine.fixes import FixRefused, parse_fix, run_fix
from runs.engine.policy import PathPolicy
from runs.engine.recovery import Advice
from runs.engine.workspace import GitWorkspace
from runs.lease import Lease
from runs.models import Phase, Run
from runs.recorder import DjangoRecorder
from runs.states import PhaseState


def ordered_phases(run: Run) -> list[Phase]:
    return list(run.phases.select_related("tier").order_by("tier__index", "index"))


def apply_fix(run: Run, phase: Phase, workspace: GitWorkspace, mitigation) -> dict:
    """A known fix's effect. Its hint goes to the next attempt with the decision."""
    detail = dict(mitigation.detail)
    if mitigation.action == "rebuild_environment":
        key = (run.environment or {}).get("key", "")
        removed = bool(key) and environments.discard(key)
        recorder = DjangoRecorder(run, phase)
        environment = environments.prepare_for(run, phase, workspace, recorder)
        detail.update(discarded=removed, environment=environment.key if environment else "")
    elif mitigation.action == "set_test_directory":
        command = f"cd {detail['directory']} && {detail['command']}"
        Phase.objects.filter(pk=phase.pk).update(test_command=command)
        phase.test_command = command
        detail["test_command"] = command
    elif mitigation.action == "make_executable":
        executables = sorted({*phase.executables, detail["path"]})
        Phase.objects.filter(pk=phase.pk).update(executables=executables)
        phase.executables = executables
    services.record_event(
        run,
        "fix_applied",
        phase_id=phase.phase_id,
        pattern=mitigation.pattern,
        action=mitigation.action,
        detail=detail,
    )
    return {"pattern": mitigation.pattern, "action": mitigation.action, "detail": detail}


def execute_fix(run: Run, phase: Phase, workspace: GitWorkspace, advice: Advice) -> dict:
    policy = PathPolicy(
        workspace.root,
        tuple(phase.scope_paths),
        tuple(c["path"] for c in phase.read_only_context),
    )
    try:
        fix = parse_fix(advice.fix or {}, policy)
    except FixRefused as exc:
        services.record_event(run, "fix_refused", phase_id=phase.phase_id, reason=str(exc))
        return {"refused": str(exc), "fix": advice.fix}
    result = run_fix(fix, workspace.root, sandbox=bool(run.sandboxed))
    services.record_event(
        run,
        "fix_executed",
        phase_id=phase.phase_id,
        command=str(fix),
        exit_code=result.exit_code,
        output=result.output[-2000:],
    )
    return {"command": str(fix), "exit_code": result.exit_code, "output": result.output[-4000:]}


def skip(run: Run, phase: Phase, lease: Lease, reason: str) -> None:
    with lease.fence():
        services.transition_phase(phase, PhaseState.SKIPPED, reason=reason)
        services.sync_tier_state(phase.tier)


def rollback(run: Run, workspace: GitWorkspace, lease: Lease, target: str, reason: str) -> dict:
    """Reset the integration branch to the savepoint of phase `target` (or the base
    commit) and queue every phase after it again."""
    phases = ordered_phases(run)
    if target == "base":
        commit, after = run.base_commit, phases
    else:
        chosen = next(p for p in phases if p.phase_id == target)
        commit, after = chosen.savepoint, phases[phases.index(chosen) + 1 :]
    remote = run.project.integration_remote
    with lease.fence():
        if remote:
            workspace.publish(commit, remote)
        requeued = []
        for other in after:
            if other.state in (PhaseState.COMPLETE, PhaseState.EXECUTING):
                services.transition_phase(other, PhaseState.QUEUED, reason=reason)
                Phase.objects.filter(pk=other.pk).update(savepoint="")
                requeued.append(other.phase_id)
        for tier in {p.tier for p in after}:
            services.sync_tier_state(tier)
        Run.objects.filter(pk=run.pk).update(last_savepoint=commit)
        run.last_savepoint = commit
        services.record_event(
            run,
            "rolled_back",
            target=target,
            commit=commit,
            requeued=requeued,
            pushed_to=remote,
        )
    workspace.reset_to(commit)
    return {"target": target, "commit": commit, "requeued": requeued}
