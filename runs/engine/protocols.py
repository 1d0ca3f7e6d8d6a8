"""The engine's view of the outside world: small protocols and the values they exchange.

Nothing under runs/engine imports Django; the Django side implements `Recorder` and
hands the engine plain values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class LLMRequest:
    role: str  # "builder" | "auditor"
    model: str  # the provider's model name, without the "anthropic/" prefix
    system: str
    messages: list[dict[str, str]]
    max_tokens: int


@dataclass(frozen=True)
class LLMResponse:
    text: str
    stop_reason: str
    truncated: bool
    # Exactly as the provider reported them; None where it gave no figure.
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None

    def __post_init__(self) -> None:
        """A reply of another shape (a provider's bug, a hostile server) is refused here,
        before anything counts or stores it."""
        if not isinstance(self.text, str) or not isinstance(self.stop_reason, str):
            raise TypeError("the reply's text and stop reason must be strings")
        for name in (
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
        ):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value < 0):
                raise TypeError(f"{name} must be a count, not {value!r}")


class LLMProvider(Protocol):
    """Optional capabilities, as attributes: `bills_tokens` (default True) and a
    `count_tokens(request) -> int | None` method for exact prompt sizes."""

    name: str

    def complete(self, request: LLMRequest) -> LLMResponse: ...


@dataclass(frozen=True)
class Edit:
    """One change a Builder asked for. `search` None means whole-file content in `replace`."""

    path: str
    search: str | None
    replace: str
    block: int  # 1-based position in the reply, for feedback
    delete: bool = False
    patch: str = ""  # unified diff of the whole file, when the reply was a diff
    source: str | None = None  # a rename: start from this file's content


class EditFormat(Protocol):
    name: str

    def instructions(self) -> str: ...

    def parse(self, text: str) -> list[Edit]: ...


@dataclass
class GateResult:
    name: str
    passed: bool
    summary: str
    output: str = ""
    feedback: str = ""  # what the Builder needs to hear when the gate fails
    details: dict[str, Any] = field(default_factory=dict)
    duration: float = 0.0
    record: dict[str, Any] | None = None  # per-test results, kept as the next reference


class Workspace(Protocol):
    root: Path

    def read_text(self, path: str) -> str | None: ...

    def write(self, changes: dict[str, str | None]) -> None: ...

    def diff(self, paths: list[str]) -> str: ...

    def changed_lines(self) -> dict[str, set[int] | None]:
        """Changed line numbers per path since the last savepoint; None for new files."""

    def rollback(self) -> None: ...

    def savepoint(self, message: str, paths: list[str]) -> str: ...


class Gate(Protocol):
    name: str

    def check(self, workspace: Workspace) -> GateResult: ...


@dataclass(frozen=True)
class ProposedChange:
    """What an attempt wants to write, before anything is written."""

    diff: str
    paths: list[str]
    lines_added: int
    lines_removed: int
    reason: str  # the Builder's own words around its edits
    base_commit: str


class Governance(Protocol):
    def review(self, change: ProposedChange) -> None:
        """Return to let the change through; raise AwaitingApproval to hold it."""


class Recorder(Protocol):
    def event(self, kind: str, **payload: Any) -> None: ...

    def llm_call(self, record: Any) -> None:
        """Store a `runs.engine.llm.CallRecord`; must not raise when storing fails."""

    def cancelled(self) -> bool: ...
