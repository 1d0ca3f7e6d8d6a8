"""One attempt at a phase: context -> Builder -> parse -> path policy -> apply -> gates ->
Auditor -> verdict. A pass ends in a savepoint commit; a failure rolls the worktree back
to the last savepoint and says what the next attempt must fix."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from runs.engine import context as choosing
from runs.engine.auditor import VerdictError, parse_verdict
from runs.engine.drift import Drift, change_summary
from runs.engine.edits.apply import compute_changes
from runs.engine.edits.diffs import changes_diff, count_lines
from runs.engine.edits.search_replace import path_from_line
from runs.engine.failures import Failure, failure_of
from runs.engine.gates.deliverables import free_text
from runs.engine.llm import LLMCaller
from runs.engine.outcomes import (
    ApplyError,
    AttemptFailure,
    AttemptResult,
    AuditorRejection,
    AuditorUnreadable,
    FormatError,
    GateFailure,
    GoalDrift,
    Outcome,
    PolicyViolation,
    RunStopped,
    TruncatedOutput,
)
from runs.engine.policy import PathPolicy
from runs.engine.prompts import AUDITOR_SYSTEM, BUILDER_SYSTEM, auditor_messages, builder_messages
from runs.engine.protocols import (
    Edit,
    EditFormat,
    Gate,
    Governance,
    ProposedChange,
    Recorder,
)
from runs.engine.repomap import TagIndex
from runs.engine.spec import AttemptPlan, title
from runs.engine.workspace import GitWorkspace

_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Limits:
    max_output_tokens: int = 8192
    max_output_tokens_limit: int = 32000
    context_budget_tokens: int = 30_000
    fuzzy_threshold: float | None = 0.95
    auditor_max_tokens: int = 2048
    max_file_bytes: int = 1_000_000
    max_change_bytes: int = 2_000_000


@dataclass
class AttemptDeps:
    llm: LLMCaller
    workspace: GitWorkspace
    edit_format: EditFormat
    gates: list[Gate]
    recorder: Recorder
    limits: Limits = Limits()
    governance: Governance | None = None
    # Read-only probes of a failed attempt, run before it is rolled back (diagnostics.py).
    diagnose: Callable[[Failure], list[dict]] | None = None
    # Context: the tag cache, and similarity of files to a text from the memory store.
    tags: TagIndex | None = None
    semantic: choosing.Similar | None = None
    # The change's similarity to the run's intention anchor, checked before it is applied.
    drift: Callable[[str], Drift | None] | None = None  # None: it could not be checked


def run_attempt(plan: AttemptPlan, deps: AttemptDeps) -> AttemptResult:
    """A new attempt: ask the Builder, apply its edits, then verify."""
    return _guarded(plan, deps, lambda result: _build(plan, deps, result))


def continue_approved(
    plan: AttemptPlan, deps: AttemptDeps, diff: str, paths: list[str], base_commit: str
) -> AttemptResult:
    """An attempt whose change a person approved: apply exactly that diff, then verify."""
    return _guarded(
        plan, deps, lambda result: _apply_approved(plan, deps, result, diff, paths, base_commit)
    )


def _guarded(
    plan: AttemptPlan, deps: AttemptDeps, change: Callable[[AttemptResult], None]
) -> AttemptResult:
    result = AttemptResult(outcome=Outcome.PASSED)
    try:
        change(result)
        _verify(plan, deps, result)
        return result
    except AttemptFailure as failure:
        result.outcome, result.message, result.feedback = (
            failure.outcome,
            str(failure),
            failure.feedback,
        )
        seen = failure_of(
            plan.number,
            result.outcome,
            result.message,
            gates=result.gates,
            model=plan.builder_model,
            feedback=result.feedback,
            changed_files=result.changed_files,
            diff=result.diff,
        )
        result.kind = seen.kind
        if deps.diagnose is not None:
            result.diagnostics = deps.diagnose(seen)
        deps.workspace.rollback()
        deps.recorder.event(
            "rollback",
            phase_id=plan.spec.phase_id,
            attempt=plan.number,
            outcome=failure.outcome,
            reason=str(failure),
        )
        return result
    except RunStopped:
        deps.workspace.rollback()
        raise


def _policy(plan: AttemptPlan, deps: AttemptDeps) -> PathPolicy:
    spec = plan.spec
    return PathPolicy(
        deps.workspace.root, spec.scope_paths, tuple(path for path, _ in spec.read_only_context)
    )


def _build(plan: AttemptPlan, deps: AttemptDeps, result: AttemptResult) -> None:
    reply = _builder_reply(plan, deps, result)
    if bad := _SURROGATE.search(reply):
        line = reply.count("\n", 0, bad.start()) + 1
        raise FormatError(
            f"the Builder's reply is not valid Unicode (lone surrogate "
            f"U+{ord(bad.group()):04X} on line {line}); nothing from it was applied",
            "Your previous reply contained characters that are not valid Unicode, so none of "
            "it was applied. Send the edits again as plain UTF-8 text.",
        )
    edits = _edits_or_request(plan, deps, reply)
    policy = _policy(plan, deps)
    checked = [policy.check_edit(edit) for edit in edits]
    proposal = _propose(checked, deps, reply)
    result.diff = proposal.diff
    _check_drift(plan, deps, result, reply)
    if deps.governance is not None:
        deps.governance.review(proposal)
    result.changed_files, method = _write(checked, deps)
    result.changed_files = _mark_executable(plan, policy, result.changed_files)
    _applied(plan, deps, result, method, blocks=len(edits))


_NEED_FILES = re.compile(r"^\s*NEED FILES:\s*(.+)$", re.M)


def _edits_or_request(plan: AttemptPlan, deps: AttemptDeps, reply: str) -> list:
    """The reply's edits; a reply with none that asks for files (`NEED FILES: a, b`)
    ends the attempt so the next one shows them whole (its feedback names them)."""
    asked = [p.strip(" `'\"") for m in _NEED_FILES.findall(reply) for p in m.split(",")]
    asked = [p for p in asked if p]
    try:
        edits = deps.edit_format.parse(reply)
    except FormatError:
        if not asked:
            raise
        edits = []
    if edits or not asked:
        return edits
    deps.recorder.event(
        "files_requested", phase_id=plan.spec.phase_id, attempt=plan.number, paths=asked
    )
    raise FormatError(
        f"the Builder asked to see files before editing: {', '.join(asked)}",
        "You asked to see these files; they are shown whole below: " + ", ".join(asked),
    )


def _check_drift(plan: AttemptPlan, deps: AttemptDeps, result: AttemptResult, reply: str) -> None:
    if deps.drift is None or not plan.anchor or not result.diff:
        return
    drift = deps.drift(change_summary(reply, result.diff))
    if drift is None:
        return
    result.drift = drift.record()
    deps.recorder.event(
        "goal_drift", phase_id=plan.spec.phase_id, attempt=plan.number, **result.drift
    )
    if drift.flagged and drift.blocking:
        raise GoalDrift(
            f"the change is too far from the run's intention (similarity "
            f"{drift.similarity:.2f}, below {drift.threshold}); it was not applied",
            "Your previous change was refused: it does not look like part of this run's goal "
            '(see "Intention of the run"). Change only what the task needs.',
        )


def _mark_executable(plan: AttemptPlan, policy: PathPolicy, changed: list[str]) -> list[str]:
    """Set the executable bit on the files a known fix named (a script the tests run
    that was refused with "Permission denied"); edits cannot carry file modes."""
    marked = []
    for raw in plan.executables:
        path = policy.check(raw)
        file = policy.root / path
        if file.is_file() and not file.is_symlink():
            file.chmod(file.stat().st_mode | 0o111)
            marked.append(path)
    return sorted({*changed, *marked})


def _apply_approved(
    plan: AttemptPlan,
    deps: AttemptDeps,
    result: AttemptResult,
    diff: str,
    paths: list[str],
    base_commit: str,
) -> None:
    head = deps.workspace.head()
    if head != base_commit:
        raise ApplyError(
            f"the worktree moved since approval was requested (HEAD was "
            f"{base_commit[:10]}, now {head[:10]}); the approved change was not "
            "applied"
        )
    if not deps.workspace.git_apply(diff):
        raise ApplyError(
            "the approved change no longer applies to the worktree; it was not applied"
        )
    result.changed_files = paths
    _applied(plan, deps, result, "approved diff", blocks=0)


def _applied(
    plan: AttemptPlan, deps: AttemptDeps, result: AttemptResult, method: str, blocks: int
) -> None:
    result.diff = deps.workspace.diff(result.changed_files)
    _check_written(plan, deps, result)
    deps.recorder.event(
        "apply_result",
        phase_id=plan.spec.phase_id,
        attempt=plan.number,
        files=result.changed_files,
        blocks=blocks,
        method=method,
    )


def _check_written(plan: AttemptPlan, deps: AttemptDeps, result: AttemptResult) -> None:
    """What reached the worktree, within the limits: no symlink out of it or into git
    metadata, no file grown beyond `max_file_bytes`, no binary content unless the phase
    allows it, no more than `max_change_bytes` added in all."""
    _policy(plan, deps).check_links(result.changed_files)
    limits, root = deps.limits, deps.workspace.root
    before = deps.workspace.sizes_at_head(result.changed_files)
    for path in result.changed_files:
        file = root / path
        if file.is_symlink() or not file.is_file():
            continue
        size = file.stat().st_size
        if size > limits.max_file_bytes and size > before.get(path, 0):
            raise PolicyViolation(
                path,
                f"would be {size} bytes, over the limit of {limits.max_file_bytes} bytes for "
                "one file (builder.max_file_bytes in the model config)",
            )
        if not plan.spec.allow_binary and _is_binary(file):
            raise PolicyViolation(
                path,
                "has binary content (NUL bytes), and this phase does not allow binary files "
                "(allow_binary in the phase config)",
            )
    # Each added line's bytes, its "+" standing for its newline.
    added = sum(
        len(line.encode())
        for line in result.diff.split("\n")
        if line.startswith("+") and not line.startswith("+++ ")
    )
    if added > limits.max_change_bytes:
        raise PolicyViolation(
            ", ".join(result.changed_files[:5]),
            f"the change adds {added} bytes, over the limit of {limits.max_change_bytes} "
            "bytes for one attempt (builder.max_change_bytes in the model config)",
        )


def _is_binary(file: Path) -> bool:
    with file.open("rb") as handle:
        while chunk := handle.read(1 << 16):
            if b"\0" in chunk:
                return True
    return False


def _verify(plan: AttemptPlan, deps: AttemptDeps, result: AttemptResult) -> None:
    _gates(deps, result)
    if plan.auditor_model:
        _review(plan, deps, result)
    # Committed here, on this machine; the caller publishes and records it.
    result.savepoint = deps.workspace.savepoint(_commit_message(plan), result.changed_files)


def _builder_reply(plan: AttemptPlan, deps: AttemptDeps, result: AttemptResult) -> str:
    limits = deps.limits
    context = _context(plan, deps)
    result.context_files, result.omitted_files = context.included, context.omitted
    result.context = context.record()
    deps.recorder.event(
        "context",
        phase_id=plan.spec.phase_id,
        attempt=plan.number,
        included=context.included,
        mapped=[path for path, _, _ in context.maps],
        left_out=[path for path, _ in context.left_out],
        withheld=context.withheld,
        budget_tokens=context.budget_tokens,
        used_tokens=context.used_tokens,
    )
    system = BUILDER_SYSTEM.format(format_instructions=deps.edit_format.instructions())
    messages = builder_messages(plan, context)
    max_tokens = limits.max_output_tokens
    while True:
        response = deps.llm.call("builder", plan.builder_model, system, messages, max_tokens)
        if not response.truncated:
            return response.text
        if max_tokens >= limits.max_output_tokens_limit:
            raise TruncatedOutput(
                f"the Builder's reply was cut off at {max_tokens} output tokens (the limit); "
                "nothing from it was applied",
                "Your previous reply was cut off before it ended, so none of it was applied. "
                "Make fewer, smaller edits: SEARCH/REPLACE blocks with only the lines that change.",
            )
        result.truncations += 1
        deps.recorder.event(
            "truncated", phase_id=plan.spec.phase_id, attempt=plan.number, max_tokens=max_tokens
        )
        max_tokens = min(limits.max_output_tokens_limit, max_tokens * 2)


def _context(plan: AttemptPlan, deps: AttemptDeps) -> choosing.Context:
    count = deps.llm.counter(plan.builder_model)
    return choosing.select(
        deps.workspace.root,
        plan.spec,
        deps.limits.context_budget_tokens,
        choosing.Signals(failure=plan.feedback, diff=plan.previous_diff),
        index=deps.tags,
        count=count,
        counter_name=deps.llm.provider_for(plan.builder_model).name if count else "",
        similar=deps.semantic,
    )


def _propose(checked: list[Edit], deps: AttemptDeps, reply: str) -> ProposedChange:
    """The change as a diff, computed without writing anything."""
    if all(edit.patch for edit in checked):
        diff = "".join(dict.fromkeys(edit.patch for edit in checked))
    else:
        originals = {edit.path: deps.workspace.read_text(edit.path) for edit in checked}
        changes = compute_changes(checked, deps.workspace.read_text, deps.limits.fuzzy_threshold)
        diff = changes_diff(changes, originals)
    added, removed = count_lines(diff)
    return ProposedChange(
        diff=diff,
        paths=sorted({edit.path for edit in checked}),
        lines_added=added,
        lines_removed=removed,
        reason=stated_reason(reply),
        base_commit=deps.workspace.head(),
    )


def _write(checked: list[Edit], deps: AttemptDeps) -> tuple[list[str], str]:
    """Write edits the path policy has passed; returns the changed paths and the method."""
    patches = list(dict.fromkeys(edit.patch for edit in checked))
    if all(edit.patch for edit in checked) and deps.workspace.git_apply("".join(patches)):
        return sorted({edit.path for edit in checked}), "git apply"
    changes = compute_changes(checked, deps.workspace.read_text, deps.limits.fuzzy_threshold)
    deps.workspace.write(changes)
    return sorted(changes), "matcher"


def stated_reason(reply: str, limit: int = 1000) -> str:
    """The Builder's prose before its first edit: why it is making the change."""
    prose = []
    for line in reply.splitlines():
        if line.lstrip().startswith(("```", "<<<<<<<", "--- ", "diff --git")):
            break
        prose.append(line)
    while prose and path_from_line(prose[-1]):
        prose.pop()  # the file path that introduces the first block
    return "\n".join(prose).strip()[:limit]


def _gates(deps: AttemptDeps, result: AttemptResult) -> None:
    outcomes = []
    for gate in deps.gates:
        outcome = gate.check(deps.workspace)
        outcomes.append(outcome)
        result.gates.append(
            {
                "name": outcome.name,
                "passed": outcome.passed,
                "summary": outcome.summary,
                "output": outcome.output,
                "duration": outcome.duration,
                "details": outcome.details,
            }
        )
        deps.recorder.event(
            "gate_result",
            gate=outcome.name,
            passed=outcome.passed,
            summary=outcome.summary,
            duration=round(outcome.duration, 3),
        )
    failed = [outcome for outcome in outcomes if not outcome.passed]
    if failed:
        raise GateFailure(
            "; ".join(f"{g.name}: {g.summary}" for g in failed),
            "\n\n".join(g.feedback or g.summary for g in failed),
        )
    result.gate_outcomes = outcomes


def _review(plan: AttemptPlan, deps: AttemptDeps, result: AttemptResult) -> None:
    messages = auditor_messages(
        plan, free_text(list(plan.spec.deliverables)), result.diff, result.gate_outcomes
    )
    for _ in range(2):
        response = deps.llm.call(
            "auditor", plan.auditor_model, AUDITOR_SYSTEM, messages, deps.limits.auditor_max_tokens
        )
        try:
            verdict = parse_verdict(response.text)
            break
        except VerdictError as exc:
            problem = str(exc)
            deps.recorder.event(
                "auditor_unreadable",
                phase_id=plan.spec.phase_id,
                attempt=plan.number,
                problem=problem,
            )
            messages = [
                *messages,
                {"role": "assistant", "content": response.text},
                {
                    "role": "user",
                    "content": f"That was not the JSON asked for "
                    f"({problem}). Reply with only the JSON object.",
                },
            ]
    else:
        raise AuditorUnreadable(
            f"the Auditor's reply could not be read: {problem}",
            "The Auditor could not review your change; make it again.",
        )
    result.auditor = verdict.as_dict()
    deps.recorder.event(
        "verdict", phase_id=plan.spec.phase_id, attempt=plan.number, **result.auditor
    )
    if not verdict.approved:
        raise AuditorRejection(verdict.reasons)


def _commit_message(plan: AttemptPlan) -> str:
    spec = plan.spec
    return (
        f"autopack: {spec.phase_id}: {title(spec.task_name, 72)}\n\n"
        f"Run: {spec.run_id}\nPhase: {spec.phase_id}\nAttempt: {plan.number}\n"
        f"Builder: {plan.builder_model}\n"
    )
