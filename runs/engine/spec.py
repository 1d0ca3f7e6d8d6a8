"""What the engine is told about a phase: plain values, no database rows."""

from __future__ import annotations

from dataclasses import dataclass, field

TITLE_CHARS = 100


def title(text: str, limit: int = TITLE_CHARS) -> str:
    """A task's first line, shortened to `limit` characters: for lists, headers, commits."""
    first = text.strip().splitlines()[0].strip() if text.strip() else ""
    return first if len(first) <= limit else first[: limit - 1].rstrip() + "…"


@dataclass(frozen=True)
class PhaseSpec:
    run_id: str
    phase_id: str
    goal: str
    task_name: str
    description: str
    category: str
    complexity: str
    scope_paths: tuple[str, ...]
    read_only_context: tuple[tuple[str, str], ...] = ()  # (path, reason)
    deliverables: tuple[str, ...] = ()
    acceptance_criteria: tuple[str, ...] = ()
    allow_binary: bool = False
    approach: str = ""  # how to go about it (a replan's revision)
    # Files matching these patterns are not sent to the model (they look like secrets).
    withheld: tuple[str, ...] = ()


@dataclass(frozen=True)
class AttemptPlan:
    spec: PhaseSpec
    number: int
    builder_model: str
    auditor_model: str | None
    feedback: str = ""
    hints: tuple[str, ...] = field(default=())  # learned rules of the project
    recovery_hint: str = ""  # the Doctor's or a known fix's hint for this attempt
    history: tuple[str, ...] = ()  # one line per earlier failed attempt of the phase
    executables: tuple[str, ...] = ()  # files to mark executable after the edits
    previous_diff: str = ""  # the last failed attempt's change (its files come first)
    memories: tuple[str, ...] = ()  # matches from the project's memory, with their source
    anchor: str = ""  # the run's intention: its goal and plan in at most 2 KB
