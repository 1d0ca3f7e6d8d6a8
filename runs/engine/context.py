"""What the Builder sees: the files in its scope and its read-only context, within a
character budget. Files that do not fit are named, so the model knows they exist; so are
files that look like secrets, whose content is never sent."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from governance.policy import matches
from runs.engine.policy import _normalise_scope, _within
from runs.engine.spec import PhaseSpec
from runs.engine.workspace import list_files

MAX_FILE_CHARS = 60_000


@dataclass
class Context:
    files: list[tuple[str, str, str]] = field(default_factory=list)  # path, note, content
    omitted: list[str] = field(default_factory=list)
    withheld: list[str] = field(default_factory=list)  # secrets by the project's policy

    @property
    def included(self) -> list[str]:
        return [path for path, _, _ in self.files]


def _repository_files(root: Path) -> list[str]:
    return sorted(set(list_files(root)))


def _readable(root: Path, path: str) -> str | None:
    file = root / path
    if not file.is_file() or file.is_symlink():
        return None
    data = file.read_bytes()
    if b"\0" in data[:8192]:
        return None  # binary
    return data.decode("utf-8", errors="replace")


def build_context(root: Path, spec: PhaseSpec, budget_chars: int) -> Context:
    context = Context()
    files = _repository_files(root)
    wanted: list[tuple[str, str]] = []
    for entry in spec.scope_paths:
        prefix = _normalise_scope(entry)
        wanted += [(path, "editable") for path in files if _within(path, prefix)]
    for path, reason in spec.read_only_context:
        prefix = _normalise_scope(path)
        note = "read-only" + (f": {reason}" if reason else "")
        wanted += [(found, note) for found in files if _within(found, prefix)]
    seen: set[str] = set()
    remaining = budget_chars
    for path, note in wanted:
        if path in seen:
            continue
        seen.add(path)
        if any(matches(path, pattern) for pattern in spec.withheld):
            context.withheld.append(path)
            continue
        text = _readable(root, path)
        if text is None:
            continue
        if len(text) > MAX_FILE_CHARS or len(text) > remaining:
            context.omitted.append(path)
            continue
        remaining -= len(text)
        context.files.append((path, note, text))
    return context
