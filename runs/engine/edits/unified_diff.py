"""Unified diffs (`--- a/path`, `+++ b/path`, `@@` hunks, with or without git's headers),
applied with `git apply` first and with the shared hunk matcher when git refuses.

Every file section of a reply becomes edits or an error that names it: changes, new
files (empty ones too), deletions and renames; binary patches, copies and mode changes are
refused, never skipped."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from runs.engine.outcomes import FormatError
from runs.engine.protocols import Edit

HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@")
GIT_HEADER = re.compile(r"^diff --git (?P<old>\S+) (?P<new>\S+)\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")

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


@dataclass
class _Section:
    """One file's part of a diff."""

    old: str | None = None
    new: str | None = None
    headers: list[str] = field(default_factory=list)  # git's extended header lines
    body: list[str] = field(default_factory=list)  # the hunks, as written
    hunks: list[tuple[str, str]] = field(default_factory=list)
    created: bool = False
    deleted: bool = False
    rename_from: str | None = None
    rename_to: str | None = None
    refused: str = ""  # why this section cannot be applied

    @property
    def name(self) -> str:
        return self.new or self.old or "?"


class UnifiedDiffFormat:
    name = "unified_diff"

    def instructions(self) -> str:
        return INSTRUCTIONS

    def parse(self, text: str) -> list[Edit]:
        lines = text.splitlines(keepends=True)
        sections: list[_Section] = []
        i = 0
        while i < len(lines):
            if match := GIT_HEADER.match(lines[i]):
                section = _Section(
                    old=_strip_prefix(match.group("old")), new=_strip_prefix(match.group("new"))
                )
                i = self._git_headers(lines, i + 1, section)
            elif _files_header(lines, i):
                section = _Section()
            else:
                i += 1
                continue
            if _files_header(lines, i) and _belongs(lines, i, section):
                old, new = _strip_prefix(lines[i][4:]), _strip_prefix(lines[i + 1][4:])
                section.created = section.created or old is None
                section.deleted = section.deleted or new is None
                section.old = old if old is not None else section.old
                section.new = new if new is not None else section.new
                if old is not None and new is not None and old != new:
                    section.rename_from, section.rename_to = old, new
                i += 2
                while i < len(lines) and HUNK.match(lines[i]):
                    start = i
                    search, replace, i = self._hunk(lines, i + 1, section.name, len(sections) + 1)
                    section.hunks.append((search, replace))
                    section.body += lines[start:i]
                if not section.hunks:
                    raise FormatError(
                        f"Diff for {section.name}: no '@@' hunk after the file headers."
                    )
            sections.append(section)
        if not sections:
            raise FormatError(
                "No unified diff found in the reply: expected '--- a/path' and "
                "'+++ b/path' headers followed by '@@' hunks."
            )
        edits: list[Edit] = []
        for section in sections:
            if section.refused:
                raise FormatError(f"Diff for {section.name}: {section.refused}")
            edits.extend(self._edits(section, len(edits)))
        return edits

    @staticmethod
    def _git_headers(lines: list[str], i: int, section: _Section) -> int:
        """git's extended header lines after `diff --git`: modes, blob ids, renames."""
        while i < len(lines):
            line = lines[i].rstrip("\r\n")
            if line.startswith(("new file mode ", "deleted file mode ", "index ")):
                section.created |= line.startswith("new file mode ")
                section.deleted |= line.startswith("deleted file mode ")
                section.headers.append(lines[i])
            elif line.startswith(("similarity index ", "dissimilarity index ")):
                pass
            elif line.startswith("rename from "):
                section.rename_from = section.old = line.removeprefix("rename from ")
            elif line.startswith("rename to "):
                section.rename_to = section.new = line.removeprefix("rename to ")
            elif line.startswith(("copy from ", "copy to ")):
                section.refused = "copies are not supported; create the new file instead"
            elif line.startswith(("old mode ", "new mode ")):
                section.refused = "changing a file's mode is not supported; change only its content"
            elif line.startswith(("Binary files ", "GIT binary patch")):
                section.refused = (
                    "binary patches cannot be applied; Autopack changes text files only"
                )
                i += 1
                while i < len(lines) and lines[i].strip() and not FENCE.match(lines[i]):
                    i += 1  # the patch's base85 lines
                continue
            else:
                break
            i += 1
        return i

    @staticmethod
    def _hunk(lines: list[str], i: int, path: str, number: int) -> tuple[str, str, int]:
        search: list[str] = []
        replace: list[str] = []
        last = ""
        while i < len(lines) and not HUNK.match(lines[i]) and not _files_header(lines, i):
            line = lines[i]
            if FENCE.match(line) or GIT_HEADER.match(line) or line.startswith("index "):
                break
            body = line[1:] if line[:1] in (" ", "-", "+") else line
            if line.startswith("\\"):  # "\ No newline at end of file"
                if last in ("+", " ") and replace:
                    replace[-1] = replace[-1].rstrip("\r\n")
            elif line.startswith("-"):
                search.append(body)
            elif line.startswith("+"):
                replace.append(body)
            elif line.startswith(" ") or not line.strip():
                # A context line; a line with nothing at all is an empty context line
                # whose leading space was lost.
                search.append(body if line.startswith(" ") else "\n")
                replace.append(body if line.startswith(" ") else "\n")
            else:
                raise FormatError(
                    f"Hunk {number} ({path}): line {line.rstrip()!r} does not "
                    "start with ' ', '-' or '+'."
                )
            last = line[:1]
            i += 1
        return "".join(search), "".join(replace), i

    @staticmethod
    def _edits(section: _Section, count: int) -> list[Edit]:
        number = count + 1
        if section.rename_from and section.rename_to:
            old, new = section.rename_from, section.rename_to
            moved = [
                Edit(path=new, search=search, replace=replace, block=number + n, source=old)
                for n, (search, replace) in enumerate(section.hunks)
            ] or [Edit(path=new, search=None, replace="", block=number, source=old)]
            return [*moved, Edit(path=old, search=None, replace="", block=number, delete=True)]
        path = section.name
        patch = _patch(section, path)
        if section.deleted:
            return [
                Edit(path=path, search=None, replace="", block=number, delete=True, patch=patch)
            ]
        if section.created:
            content = "".join(replace for _, replace in section.hunks)
            return [Edit(path=path, search="", replace=content, block=number, patch=patch)]
        if not section.hunks:
            raise FormatError(f"Diff for {path}: a section with no change in it.")
        return [
            Edit(path=path, search=search, replace=replace, block=number + n, patch=patch)
            for n, (search, replace) in enumerate(section.hunks)
        ]


def _belongs(lines: list[str], i: int, section: _Section) -> bool:
    """Whether the ---/+++ lines at `i` are this section's: after git's header they must
    name its files (a section of git's headers alone, such as an empty new file, is
    followed by the next file's)."""
    if not section.headers and section.old is None and section.new is None:
        return True
    names = {_strip_prefix(lines[i][4:]), _strip_prefix(lines[i + 1][4:])} - {None}
    return names <= {section.old, section.new}


def _files_header(lines: list[str], i: int) -> bool:
    return lines[i].startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ ")


def _patch(section: _Section, path: str) -> str:
    """The section as git applies it, under the path the policy checks. Kept: blob ids (for
    `git apply --3way`) and modes; added: the mode line of a file created or deleted
    without git's headers."""
    headers = list(section.headers)
    if section.created and not any(h.startswith("new file mode") for h in headers):
        headers.insert(0, "new file mode 100644\n")
    if section.deleted and not any(h.startswith("deleted file mode") for h in headers):
        headers.insert(0, "deleted file mode 100644\n")
    if not section.body:  # an empty new file, or a deletion, with git's headers only
        return ""
    old = "/dev/null" if section.created else f"a/{path}"
    new = "/dev/null" if section.deleted else f"b/{path}"
    return (
        f"diff --git a/{path} b/{path}\n"
        + "".join(headers)
        + f"--- {old}\n+++ {new}\n"
        + "".join(section.body)
    )
