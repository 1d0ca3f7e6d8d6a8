"""Unified diffs (`--- a/path`, `+++ b/path`, `@@` hunks), applied with `git apply` first
and with the shared hunk matcher when git refuses."""

from __future__ import annotations

import re

from runs.engine.outcomes import FormatError
from runs.engine.protocols import Edit

HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@")

INSTRUCTIONS = """\
Reply with a unified diff inside a ```diff fenced block, as `git diff` prints it:

```diff
--- a/path/to/file.py
+++ b/path/to/file.py
@@ -10,3 +10,4 @@
 unchanged line
-removed line
+added line
 unchanged line
```

Use `--- /dev/null` to create a file and `+++ /dev/null` to delete one. Include at least
two unchanged lines of context around each change. Only touch files inside the allowed
paths. Text outside the diff is ignored.
"""


def _strip_prefix(name: str) -> str | None:
    name = name.split("\t")[0].strip()
    if name == "/dev/null":
        return None
    return name[2:] if name[:2] in ("a/", "b/") else name


class UnifiedDiffFormat:
    name = "unified_diff"

    def instructions(self) -> str:
        return INSTRUCTIONS

    def parse(self, text: str) -> list[Edit]:
        lines = text.splitlines(keepends=True)
        edits: list[Edit] = []
        i = 0
        while i < len(lines):
            if not (
                lines[i].startswith("--- ")
                and i + 1 < len(lines)
                and lines[i + 1].startswith("+++ ")
            ):
                i += 1
                continue
            start = i
            old, new = _strip_prefix(lines[i][4:]), _strip_prefix(lines[i + 1][4:])
            i += 2
            hunks: list[tuple[str, str]] = []
            while i < len(lines) and HUNK.match(lines[i]):
                search, replace, i = self._hunk(lines, i + 1, old or new or "?", len(edits) + 1)
                hunks.append((search, replace))
            if not hunks:
                raise FormatError(f"Diff for {new or old}: no '@@' hunk after the file headers.")
            if old and new and old != new:
                raise FormatError(
                    f"Diff renames {old} to {new}; renames are not supported. "
                    "Delete the old file and create the new one instead."
                )
            path = new or old
            patch = (
                f"diff --git a/{path} b/{path}\n"
                + "".join(self._header_lines(lines, start))
                + "".join(lines[start:i])
            )
            edits.extend(self._edits(old, new, hunks, patch, len(edits)))
        if not edits:
            raise FormatError(
                "No unified diff found in the reply: expected '--- a/path' and "
                "'+++ b/path' headers followed by '@@' hunks."
            )
        return edits

    @staticmethod
    def _header_lines(lines: list[str], start: int) -> list[str]:
        # Keep blob ids ("index") so `git apply --3way` can use them, and file modes. The
        # "diff --git" line is rebuilt from the checked path; rename and copy headers name
        # paths the policy never saw, so they are dropped.
        header: list[str] = []
        j = start - 1
        while j >= 0 and lines[j].startswith(("index ", "new file mode", "deleted file mode")):
            header.insert(0, lines[j])
            j -= 1
        return header

    @staticmethod
    def _hunk(lines: list[str], i: int, path: str, number: int) -> tuple[str, str, int]:
        search: list[str] = []
        replace: list[str] = []
        while i < len(lines) and not HUNK.match(lines[i]) and not lines[i].startswith("--- "):
            line = lines[i]
            if line.startswith("```") or line.startswith("diff --git") or line.startswith("index "):
                break
            body = line[1:] if line[:1] in (" ", "-", "+") else line
            if line.startswith("\\"):
                pass  # "\ No newline at end of file"
            elif line.startswith("-"):
                search.append(body)
            elif line.startswith("+"):
                replace.append(body)
            elif line.startswith(" ") or line.strip() == "":
                search.append(body if line.strip() else "\n")
                replace.append(body if line.strip() else "\n")
            else:
                raise FormatError(
                    f"Hunk {number} ({path}): line {line.rstrip()!r} does not "
                    "start with ' ', '-' or '+'."
                )
            i += 1
        return "".join(search), "".join(replace), i

    @staticmethod
    def _edits(
        old: str | None, new: str | None, hunks: list[tuple[str, str]], patch: str, count: int
    ) -> list[Edit]:
        if new is None and old is not None:
            return [
                Edit(path=old, search=None, replace="", block=count + 1, delete=True, patch=patch)
            ]
        assert new is not None
        if old is None:
            content = "".join(replace for _, replace in hunks)
            return [Edit(path=new, search="", replace=content, block=count + 1, patch=patch)]
        return [
            Edit(path=new, search=search, replace=replace, block=count + n + 1, patch=patch)
            for n, (search, replace) in enumerate(hunks)
        ]
