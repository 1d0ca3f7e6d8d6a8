"""Whole-file output: the file path on its own line, then a fenced block with the full
new content of that file. Suited to new or small files."""

from __future__ import annotations

import re

from runs.engine.edits.search_replace import path_from_line
from runs.engine.outcomes import FormatError
from runs.engine.protocols import Edit

OPEN = re.compile(r"^(```+|~~~+)[\w+-]*\s*$")

INSTRUCTIONS = """\
Reply with the complete new content of every file you change or create: the file path on
its own line, then a fenced block holding the whole file, for example

path/to/file.py
```python
...the entire file...
```

Give every file in full; a file you leave out is not changed. Text outside the blocks is
ignored. Only write files inside the allowed paths.
"""


class WholeFileFormat:
    name = "whole_file"

    def instructions(self) -> str:
        return INSTRUCTIONS

    def parse(self, text: str) -> list[Edit]:
        lines = text.splitlines(keepends=True)
        edits: list[Edit] = []
        i = 0
        while i < len(lines):
            opened = OPEN.match(lines[i].strip())
            path = path_from_line(lines[i - 1]) if opened and i > 0 else None
            if not path:
                i += 1
                continue
            fence = opened.group(1)
            end = i + 1
            while end < len(lines) and lines[end].strip() != fence:
                end += 1
            if end >= len(lines):
                raise FormatError(
                    f"File {len(edits) + 1} ({path}): the fenced block is never "
                    f"closed with {fence}."
                )
            content = "".join(lines[i + 1 : end])
            edits.append(Edit(path=path, search=None, replace=content, block=len(edits) + 1))
            i = end + 1
        if not edits:
            raise FormatError(
                "No files found in the reply. Give each file as its path on its "
                "own line followed by a fenced block with the whole content."
            )
        return edits
