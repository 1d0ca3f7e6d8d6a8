"""Propose first: a run whose config sets `propose_into` does not end when its phases
are done. Its whole change (base commit to last savepoint) becomes a proposal in the
governance queue, with the test results and the Auditor's verdicts of its passed
attempts. Approved (by a person, or by the auto-approve policy when it is low risk), it
is merged into that branch; denied or expired, the run fails with the reason. The base
branch is never written.

A worker carries this out in the run's step after its last phase (`settle`), under the
run's lease, like every other change of state."""

from __future__ import annotations

from dataclasses import dataclass

from autopack_site import configuration
from governance.gatekeeper import protected_patterns
from governance.models import GovernanceRequest
from governance.notifications import notify
from governance.policy import proposal_risk, protected
from governance.services import auto_approve
from runs import services
from runs.engine.outcomes import FailureCode
from runs.engine.workspace import GitWorkspace
from runs.lease import Lease
from runs.models import Attempt, Run
from runs.states import AttemptState, RunState

State = GovernanceRequest.State


@dataclass(frozen=True)
class Settled:
    """What the step after the last phase decided: the run's new state and why."""

    state: str
    code: str = ""
    reason: str = ""


def settle(run: Run, workspace: GitWorkspace, lease: Lease) -> Settled | None:
    """For a propose-first run whose phases are done: propose its change, or act on the
    decision. None when the run is not propose-first (it is simply done)."""
    branch = (run.config or {}).get("propose_into")
    if not branch:
        return None
    request = _current(run) or _propose(run, workspace, branch, lease)
    if request.is_pending:
        return Settled(RunState.AWAITING_APPROVAL, reason=_waiting(request))
    if request.state != State.APPROVED:
        who = request.decided_by.get_username() if request.decided_by else "expiry"
        verb = "expired" if request.state == State.EXPIRED else f"denied by {who}"
        return Settled(
            RunState.DONE_FAILED,
            FailureCode.PROPOSAL_REJECTED,
            f"proposal #{request.pk} {verb}: {request.decision_reason}",
        )
    return _merge(run, workspace, request, lease)


def _current(run: Run) -> GovernanceRequest | None:
    """The run's proposal, unless it was refused before the run was resumed (then the
    resumed run proposes its change again)."""
    request = (
        GovernanceRequest.objects.filter(run=run, kind=GovernanceRequest.Kind.PROPOSAL)
        .select_related("decided_by")
        .order_by("-pk")
        .first()
    )
    refused = request is not None and request.state in (State.DENIED, State.EXPIRED)
    if refused and run.active_since and request.decided_at < run.active_since:
        return None
    return request


def _waiting(request: GovernanceRequest) -> str:
    return (
        f"proposal #{request.pk} waits for approval (risk {request.risk}): merged into "
        f"{request.evidence.get('branch')} when approved"
    )


def _propose(run: Run, workspace: GitWorkspace, branch: str, lease: Lease) -> GovernanceRequest:
    config = configuration.governance()
    head = run.last_savepoint or run.base_commit
    diff = workspace.git.diff(run.base_commit, head)
    paths, added, removed = _numstat(workspace, run.base_commit, head)
    touched = protected(paths, protected_patterns(run, config))
    attempts = list(
        Attempt.objects.filter(run=run, state=AttemptState.PASSED)
        .select_related("phase")
        .order_by("phase__tier__index", "phase__index", "number")
    )
    tests = [
        {"phase": a.phase.phase_id, **_gate(g)}
        for a in attempts
        for g in a.gate_results
        if str(g.get("name", "")).startswith("tests")
    ]
    verdicts = [{"phase": a.phase.phase_id, **(a.auditor_verdict or {})} for a in attempts]
    tests_passed = bool(tests) and all(t["passed"] for t in tests)
    approved = bool(attempts) and all(v.get("verdict") == "approve" for v in verdicts)
    risk, reasons = proposal_risk(paths, touched, added + removed, tests_passed, approved, config)
    last_phase = (
        attempts[-1].phase if attempts else run.phases.order_by("-tier__index", "-index")[0]
    )
    with lease.fence():
        request = GovernanceRequest.objects.create(
            run=run,
            phase=last_phase,
            attempt=None,
            kind=GovernanceRequest.Kind.PROPOSAL,
            risk=risk,
            risk_reasons=reasons,
            diff=diff,
            paths=paths,
            protected_paths=touched,
            lines_added=added,
            lines_removed=removed,
            reason=run.goal,
            base_commit=head,
            evidence={
                "branch": branch,
                "base_commit": run.base_commit,
                "commit": head,
                "tests": tests,
                "auditor": verdicts,
            },
        )
        services.record_event(
            run,
            "proposal",
            request=request.pk,
            risk=risk,
            branch=branch,
            paths=paths,
            lines_added=added,
            lines_removed=removed,
        )
        if risk in config.auto_approve:
            auto_approve(request, policy=f"auto_approve: {risk} risk ({'; '.join(reasons)})")
            return request
        services.record_event(
            run, "approval_needed", request=request.pk, request_kind=request.kind, risk=risk
        )
    notify(
        "approval_needed",
        run,
        f"run {run.run_id} proposes a change for {branch} (risk {risk})",
        request=request.pk,
    )
    return request


def _gate(result: dict) -> dict:
    details = result.get("details") or {}
    return {
        "name": result.get("name", ""),
        "passed": bool(result.get("passed")),
        "summary": result.get("summary", ""),
        "counts": details.get("counts") or {},
    }


def _numstat(workspace: GitWorkspace, base: str, head: str) -> tuple[list[str], int, int]:
    paths, added, removed = [], 0, 0
    for line in workspace.git.diff("--numstat", "--no-renames", base, head).splitlines():
        plus, minus, path = line.split("\t", 2)
        paths.append(path)
        # Binary files show "-": they count as no lines.
        added += int(plus) if plus.isdigit() else 0
        removed += int(minus) if minus.isdigit() else 0
    return paths, added, removed


def _merge(run: Run, workspace: GitWorkspace, request: GovernanceRequest, lease: Lease) -> Settled:
    """Merge the proposal's commit into its branch (made at the run's base commit when it
    does not exist yet) without touching any worktree: `git merge-tree` computes the
    merge. Where the project publishes branches, the branch there is the one merged into
    and pushed to (never forced); here it moves only if nobody moved it meanwhile."""
    branch = request.evidence["branch"]
    git = workspace.git
    ref = f"refs/heads/{branch}"
    remote = run.project.integration_remote
    if remote:
        # A branch the remote does not have yet is simply not fetched: it is made here.
        _status(git.fetch, "--quiet", remote, f"+{ref}:{ref}")
    tip = _status(git.rev_parse, "--verify", "--quiet", f"{ref}^{{commit}}")[1].strip()
    merged = _merged_commit(run, workspace, request, tip or run.base_commit)
    if isinstance(merged, Settled):
        return merged
    if remote:
        status, _, error = _status(git.push, "--quiet", remote, f"{merged}:{ref}")
        if status != 0:
            return Settled(
                RunState.DONE_FAILED,
                FailureCode.REPOSITORY,
                f"could not push the merge of proposal #{request.pk} to {branch} in {remote}: "
                f"{_first_lines(error)}; resume the run to merge it again",
            )
    status, _, error = _status(
        git.update_ref, "-m", f"autopack: merge proposal #{request.pk}", ref, merged, tip
    )
    if status != 0:
        return Settled(
            RunState.DONE_FAILED,
            FailureCode.REPOSITORY,
            f"could not move {branch} to the merge of proposal #{request.pk}: "
            f"{_first_lines(error)} (moved meanwhile?); resume the run to merge it again",
        )
    with lease.fence():
        services.record_event(
            run, "proposal_merged", request=request.pk, branch=branch, commit=merged, tip=tip
        )
        evidence = {**request.evidence, "merged": merged}
        GovernanceRequest.objects.filter(pk=request.pk).update(evidence=evidence)
    return Settled(RunState.DONE_SUCCESS, reason=f"merged into {branch} as {merged[:12]}")


def _first_lines(error: str) -> str:
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    return " / ".join(line for line in lines if not line.startswith("hint:"))[:500]


def _merged_commit(
    run: Run, workspace: GitWorkspace, request: GovernanceRequest, tip: str
) -> str | Settled:
    git = workspace.git
    commit = request.evidence["commit"]
    if _status(git.merge_base, "--is-ancestor", commit, tip)[0] == 0:
        return tip  # already in the branch
    status, out, _ = _status(
        git.merge_tree, "--write-tree", "--name-only", "--no-messages", tip, commit
    )
    lines = out.splitlines()
    if status != 0:
        conflicted = ", ".join(line for line in lines[1:] if line) or "unknown files"
        return Settled(
            RunState.DONE_FAILED,
            FailureCode.PROPOSAL_REJECTED,
            f"proposal #{request.pk} was approved but conflicts with "
            f"{request.evidence['branch']} in {conflicted}; nothing was merged",
        )
    by = request.decided_by.get_username() if request.decided_by else request.auto_policy
    message = f"Merge proposal #{request.pk} of run {run.run_id}\n\n{run.goal}\n\nApproved: {by}"
    return git.commit_tree(lines[0], "-p", tip, "-p", commit, "-m", message)


def _status(command, *args: str) -> tuple[int, str, str]:
    """A git command's exit status, output and error output, without raising."""
    return command(*args, with_extended_output=True, with_exceptions=False)
