"""Unified diffs in git's format for changes computed in memory, so a change can be
shown, counted and approved before anything is written."""

from __future__ import annotations

import difflib


def _lines(text: str | None) -> list[str]:
    return text.splitlines(keepends=True) if text else []


def file_diff(path: str, old: str | None, new: str | None) -> str:
    header = f"diff --git a/{path} b/{path}\n"
    if old is None:
        header += "new file mode 100644\n"
    elif new is None:
        header += "deleted file mode 100644\n"
    body = []
    for line in difflib.unified_diff(
        _lines(old),
        _lines(new),
        "/dev/null" if old is None else f"a/{path}",
        "/dev/null" if new is None else f"b/{path}",
    ):
        body.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return header + "".join(body) if body else ""


def changes_diff(changes: dict[str, str | None], originals: dict[str, str | None]) -> str:
    return "".join(
        file_diff(path, originals.get(path), new) for path, new in sorted(changes.items())
    )


def count_lines(diff: str) -> tuple[int, int]:
    """Lines added and removed by a unified diff."""
    added = removed = 0
    for line in diff.splitlines():
        if line.startswith("+") and not line.startswith("+++"):
            added += 1
        elif line.startswith("-") and not line.startswith("---"):
            removed += 1
    return added, removed
