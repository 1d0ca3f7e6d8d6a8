"""What a run takes from the project's memory and gives back to it (the `memory` app).

Before an attempt: the project's code is indexed by symbol (only chunks whose content
changed are embedded again), the files' similarity to the task feeds context selection,
and the best matches from earlier runs and phases go into the Builder's prompt with their
source. Before a change is applied: its similarity to the run's intention anchor (goal
drift). After a phase: its summary and the errors it met with how they were fixed; after
recovery decisions: the Doctor's hints and plan changes; after a run: its summary.

Memory helps; it never stops a run. A failure to read or write memory is logged and
recorded as a `memory_error` event, and the run goes on without it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from django.conf import settings
from django.db import transaction

from memory import services as memory
from memory.embeddings import embedder
from memory.models import Memory
from runs.engine import context as choosing
from runs.engine import repomap
from runs.engine.drift import Drift
from runs.engine.spec import title
from runs.models import Attempt, Phase, Run
from runs.services import record_event

logger = logging.getLogger("autopack.memory")
ENTRY_CHARS = 1000  # of one memory in the Builder's prompt
MAX_INDEXED_FILES = 5000


def enabled(run: Run) -> bool:
    """Whether the run reads and writes the project's memory (its history: summaries,
    errors, decisions, anchors, learned rules). The code index that context selection
    uses is about the current code, not history, and is on whenever memory is."""
    return bool(settings.AUTOPACK_MEMORY_ENABLED and run.config.get("memory", True))


def tag_index() -> repomap.TagIndex:
    """The machine's tag cache: one parse per file content, across runs and workers."""
    return _tag_index(str(settings.AUTOPACK_HOME))


@cache
def _tag_index(home: str) -> repomap.TagIndex:
    return repomap.TagIndex(Path(home) / "cache" / "tags")


@contextmanager
def _helping(run: Run, what: str) -> Iterator[None]:
    """Memory helps, it never stops a run: a failure is logged and recorded, and its
    writes roll back alone (a savepoint), whatever transaction the caller is in."""
    try:
        with transaction.atomic():
            yield
    except Exception as exc:  # noqa: BLE001
        logger.warning("memory: %s failed for run %s: %s", what, run.run_id, exc)
        record_event(run, "memory_error", action=what, error=str(exc)[:500])


def semantic(run: Run) -> choosing.Similar:
    """Context selection's semantic signal: the files' similarity to the task from the
    project's code chunks in memory (indexed here first: only changed chunks are
    embedded again)."""

    def similar(query: str, pieces: dict[str, list[choosing.Chunk]]) -> Mapping[str, float]:
        scores: Mapping[str, float] = {}
        paths = list(pieces)[:MAX_INDEXED_FILES]
        with _helping(run, "semantic context"):
            found = [memory.Chunk(*piece) for path in paths for piece in pieces[path]]
            memory.index_code(run.project, found, paths=paths)
            scores = memory.code_scores(run.project, query, paths=paths)
        return scores

    return similar


def _source(entry: Memory) -> str:
    run = entry.run.run_id if entry.run_id else "a deleted run"
    phase = f", phase {entry.phase_id}" if entry.phase_id else ""
    return f"{entry.get_kind_display()} from run {run}{phase}"


def memories_for(run: Run, phase: Phase, failure: str = "") -> tuple[str, ...]:
    """The best matches for the phase from the project's memory, with their source."""
    query = "\n".join([phase.name, phase.description, *phase.acceptance_criteria, failure[-2000:]])
    hits: list[memory.Hit] = []
    kinds = [k for k in Memory.Kind.values if k not in (Memory.Kind.CODE, Memory.Kind.ANCHOR)]
    with _helping(run, "recall"):
        hits = memory.recall(run.project, query, kinds=kinds)
    lines = []
    for hit in hits:
        text = " ".join(hit.memory.text.split())
        if len(text) > ENTRY_CHARS:
            text = text[: ENTRY_CHARS - 1] + "…"
        lines.append(f"[{_source(hit.memory)}] {hit.memory.title}: {text}")
    return tuple(lines)


def drift_check(run: Run) -> Callable[[str], Drift | None] | None:
    """Compares a change's summary with the run's intention anchor; None when off."""
    mode = settings.AUTOPACK_GOAL_DRIFT
    if mode == "off" or not run.intention_anchor:
        return None
    threshold = settings.AUTOPACK_GOAL_DRIFT_THRESHOLD

    def check(summary: str) -> Drift | None:
        drift = None
        with _helping(run, "goal drift check"):
            anchor, change = embedder().embed([run.intention_anchor, summary])
            similarity = sum(a * b for a, b in zip(anchor, change, strict=True))  # normalised
            drift = Drift(similarity, threshold, blocking=mode == "blocking")
        return drift

    return check


def remember_anchor(run: Run) -> None:
    if not run.intention_anchor:
        return
    with _helping(run, "remember the intention anchor"):
        title_ = f"Intention of run {run.run_id}"
        memory.remember(run.project, Memory.Kind.ANCHOR, title_, run.intention_anchor, run=run)


def after_phase(run: Run, phase: Phase) -> None:
    """The phase's summary, and each error it met with how it was fixed."""
    attempts = list(phase.attempts.order_by("number"))
    passed = next((a for a in attempts if a.state == "PASSED"), None)
    failed = [a for a in attempts if a.state == "FAILED" and a.error]
    with _helping(run, "remember the phase"):
        outcome = "completed" if passed else f"ended {phase.state.lower()}"
        changed = ", ".join(passed.changed_files[:10]) if passed else "nothing"
        summary = (
            f"Phase {phase.phase_id} ({title(phase.name)}) {outcome} after {len(attempts)} "
            f"attempt(s); it changed {changed}."
        )
        if not passed and failed:
            summary += f" Last error: {failed[-1].error[:300]}"
        memory.remember(
            run.project,
            Memory.Kind.PHASE_SUMMARY,
            f"Phase {phase.phase_id}: {title(phase.name)}",
            summary,
            run=run,
            phase_id=phase.phase_id,
            meta={"state": phase.state},
        )
        if passed is None:
            return
        for attempt in failed:
            memory.remember(
                run.project,
                Memory.Kind.ERROR_FIX,
                title(attempt.error, 200),
                _fix_text(attempt, passed),
                run=run,
                phase_id=phase.phase_id,
                meta={"kind": attempt.failure_kind, "attempt": attempt.number},
            )


def _fix_text(failed: Attempt, passed: Attempt) -> str:
    """The fix first (what a later Builder can use), then the failure's details."""
    diff = "\n".join(
        line
        for line in passed.diff.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    )[:400]
    told = failed.feedback.strip()[-400:] if failed.feedback != failed.error else ""
    return (
        f"{failed.failure_kind or failed.outcome}, fixed by attempt {passed.number}, which "
        f"changed {', '.join(passed.changed_files[:8])}:\n{diff}\n"
        f"The failure: {failed.error[:300]}" + (f"\n{told}" if told else "")
    )


def remember_decision(run: Run, phase: Phase, action: str, reason: str, hint: str = "") -> None:
    """A recovery decision: the Doctor's hint or a plan change (replan)."""
    kind = {
        "replan": Memory.Kind.PLAN_CHANGE,
        "ask_doctor": Memory.Kind.DOCTOR,
        "retry_with_hint": Memory.Kind.DOCTOR,
    }.get(action, Memory.Kind.DECISION)
    text = reason + (f"\nHint: {hint}" if hint else "")
    with _helping(run, "remember a decision"):
        memory.remember(
            run.project,
            kind,
            f"{action} for phase {phase.phase_id}",
            text,
            run=run,
            phase_id=phase.phase_id,
        )


def after_run(run: Run) -> None:
    phases = list(run.phases.order_by("tier__index", "index"))
    lines = [f"Run {run.run_id} ended {run.state}: {title(run.goal, 200)}"]
    lines += [f"- {p.phase_id}: {p.state.lower()}" for p in phases]
    if run.failure_reason:
        lines.append(f"Reason: {run.failure_reason[:400]}")
    with _helping(run, "remember the run"):
        memory.remember(
            run.project, Memory.Kind.RUN_SUMMARY, f"Run {run.run_id}", "\n".join(lines), run=run
        )
