"""SEARCH/REPLACE blocks: a file path on its own line, then a fenced block holding
<<<<<<< SEARCH, the exact existing lines, =======, the new lines, >>>>>>> REPLACE."""

from __future__ import annotations

import re

from runs.engine.outcomes import FormatError
from runs.engine.protocols import Edit

# Markers are recognised by their exact form at the start of a line: a reStructuredText
# underline of `=` in a docstring is text, not a divider.
HEAD = re.compile(r"^<<<<<<< SEARCH\s*$")
DIVIDER = re.compile(r"^=======\s*$")
TAIL = re.compile(r"^>>>>>>> REPLACE\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")

INSTRUCTIONS = """\
Reply with SEARCH/REPLACE blocks, one per change. Each block is the file path on its own
line, then a fenced block like this:

path/to/file.py
```python
<<<<<<< SEARCH
the exact lines currently in the file, including indentation
=======
the lines that replace them
>>>>>>> REPLACE
```

Rules:
- SEARCH must match the current file exactly and be unique in it; include enough
  surrounding lines to make it unique. Keep blocks small.
- To create a new file, use an empty SEARCH part and put the whole file in REPLACE.
- To delete lines, leave the REPLACE part empty.
- Only edit files inside the allowed paths. Text outside the blocks is ignored.
"""


def path_from_line(line: str) -> str | None:
    candidate = line.strip().strip("*`").strip()
    candidate = re.sub(r"^#+\s*", "", candidate).rstrip(":").strip("`").strip()
    if not candidate or any(ch.isspace() for ch in candidate):
        return None
    if HEAD.match(candidate) or DIVIDER.match(candidate) or TAIL.match(candidate):
        return None
    return candidate


def _path_before(lines: list[str], index: int) -> str | None:
    i = index - 1
    while i >= 0 and not lines[i].strip():
        i -= 1
    if i >= 0 and FENCE.match(lines[i]):
        i -= 1
        while i >= 0 and not lines[i].strip():
            i -= 1
    if i < 0 or FENCE.match(lines[i]) or TAIL.match(lines[i]):
        return None
    return path_from_line(lines[i])


class SearchReplaceFormat:
    name = "search_replace"

    def instructions(self) -> str:
        return INSTRUCTIONS

    def parse(self, text: str) -> list[Edit]:
        lines = text.splitlines(keepends=True)
        for number, line in enumerate(lines, 1):
            if (HEAD.match(line.strip()) and not HEAD.match(line)) or (
                TAIL.match(line.strip()) and not TAIL.match(line)
            ):
                raise FormatError(
                    f"Line {number} of the reply, {line.strip()!r}, is indented: the markers "
                    "<<<<<<< SEARCH, ======= and >>>>>>> REPLACE must start their lines."
                )
        edits: list[Edit] = []
        path: str | None = None
        i = 0
        while i < len(lines):
            if not HEAD.match(lines[i]):
                i += 1
                continue
            number = len(edits) + 1
            path = _path_before(lines, i) or path
            if path is None:
                raise FormatError(
                    f"Block {number}: no file path before '<<<<<<< SEARCH'. Put the file's "
                    "path on its own line just before the fenced block."
                )
            search, i = self._part(lines, i + 1, DIVIDER, number, path, "=======")
            replace, i = self._part(lines, i + 1, TAIL, number, path, ">>>>>>> REPLACE")
            edits.append(Edit(path=path, search=search, replace=replace, block=number))
            i += 1
        if not edits:
            raise FormatError(
                "No SEARCH/REPLACE blocks found in the reply. Every change must be a block: "
                "the file path on its own line, then a fenced block with <<<<<<< SEARCH, "
                "=======, >>>>>>> REPLACE."
            )
        return edits

    @staticmethod
    def _part(
        lines: list[str], start: int, end: re.Pattern, number: int, path: str, marker: str
    ) -> tuple[str, int]:
        i = start
        while i < len(lines) and not end.match(lines[i]):
            if HEAD.match(lines[i]) or (end is TAIL and DIVIDER.match(lines[i])):
                break
            i += 1
        if i >= len(lines) or not end.match(lines[i]):
            raise FormatError(
                f"Block {number} ({path}): expected a '{marker}' line before "
                f"{'the reply ended' if i >= len(lines) else repr(lines[i].strip())}."
            )
        return "".join(lines[start:i]), i
