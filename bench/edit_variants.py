"""Real patches as Builder replies, and the slips models make when they write them.

A commit's change to a file is a list of hunks (`git diff` of parent and commit). Each
hunk renders as one SEARCH/REPLACE block (SEARCH = context and removed lines, REPLACE =
context and added lines) or as a unified-diff hunk. A slip changes how the reply is
written, never what it means, so the intended result stays the commit's post-image;
the one exception, a one-line SEARCH that occurs several times, has no intended place
and is marked undetermined.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

HUNK_HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)$")
GIT_HEADER = ("diff --git ", "index ", "new file mode ", "deleted file mode ")

Line = tuple[str, str]  # tag (" " context, "-" removed, "+" added), text without newline


@dataclass(frozen=True)
class Hunk:
    old_start: int
    new_start: int
    lines: tuple[Line, ...]
    heading: str = ""
    # Counts to print in the @@ line when they must not match the lines (a slip).
    old_count: int | None = None
    new_count: int | None = None

    @property
    def search(self) -> list[str]:
        return [text for tag, text in self.lines if tag != "+"]

    @property
    def replace(self) -> list[str]:
        return [text for tag, text in self.lines if tag != "-"]

    def header(self) -> str:
        old = len(self.search) if self.old_count is None else self.old_count
        new = len(self.replace) if self.new_count is None else self.new_count
        return f"@@ -{_range(self.old_start, old)} +{_range(self.new_start, new)} @@{self.heading}"


def _range(start: int, count: int) -> str:
    return str(start) if count == 1 else f"{start},{count}"


@dataclass(frozen=True)
class FileChange:
    path: str
    before: str | None  # None: the commit creates the file
    after: str | None  # None: the commit deletes it
    hunks: tuple[Hunk, ...]
    git_header: tuple[str, ...]  # "diff --git", "new file mode", "index" as git printed them

    @property
    def status(self) -> str:
        return "A" if self.before is None else "D" if self.after is None else "M"


@dataclass(frozen=True)
class Variant:
    slip: str
    files: tuple[FileChange, ...]
    git_headers: bool = True
    prefixes: bool = True  # a/ and b/ on the ---/+++ lines
    determined: bool = True  # False: any applied result other than the post-image is wrong


def split_lines(text: str | None) -> list[str]:
    """Lines of a text that ends with a newline; only "\\n" separates lines."""
    return text.split("\n")[:-1] if text else []


def join_lines(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


def parse_file_diff(path: str, diff: str, before: str | None, after: str | None) -> FileChange:
    """One file's section of `git diff` output. Raises ValueError for what the bench does
    not model (mode changes, a missing final newline)."""
    lines = diff.split("\n")
    i = 0
    while i < len(lines) and lines[i] and not lines[i].startswith(("--- ", "@@")):
        if not lines[i].startswith(GIT_HEADER):
            raise ValueError(f"{path}: unsupported header {lines[i]!r}")
        i += 1
    header = tuple(lines[:i])
    while i < len(lines) and lines[i].startswith(("--- ", "+++ ")):
        i += 1
    hunks = []
    while i < len(lines) and lines[i]:
        match = HUNK_HEADER.match(lines[i])
        if match is None:
            raise ValueError(f"{path}: unexpected line {lines[i]!r}")
        old, new = int(match[2] or 1), int(match[4] or 1)
        body: list[Line] = []
        i += 1
        while old > 0 or new > 0:
            tag, text = lines[i][:1], lines[i][1:]
            if tag not in (" ", "-", "+"):
                raise ValueError(f"{path}: unexpected hunk line {lines[i]!r}")
            old -= tag != "+"
            new -= tag != "-"
            body.append((tag, text))
            i += 1
        if i < len(lines) and lines[i].startswith("\\"):
            raise ValueError(f"{path}: no newline at end of file")
        hunks.append(Hunk(int(match[1]), int(match[3]), tuple(body), match[5]))
    return FileChange(path, before, after, tuple(hunks), header)


def apply_exactly(before: str | None, hunks: tuple[Hunk, ...]) -> str | None:
    """The file after the hunks' SEARCH/REPLACE blocks, each SEARCH found exactly once,
    in order; None when one is missing, ambiguous or blank."""
    lines = split_lines(before)
    for hunk in hunks:
        search = hunk.search
        if not any(line.strip() for line in search):
            return None
        hits = occurrences(lines, search)
        if len(hits) != 1:
            return None
        lines[hits[0] : hits[0] + len(search)] = hunk.replace
    return join_lines(lines)


def occurrences(lines: list[str], search: list[str]) -> list[int]:
    n = len(search)
    return [
        i for i in range(len(lines) - n + 1) if lines[i] == search[0] and lines[i : i + n] == search
    ]


def search_replace_reply(variant: Variant) -> str:
    parts = ["Here is the change.\n"]
    for change in variant.files:
        blocks = [(hunk.search, hunk.replace) for hunk in change.hunks] or [([], [])]
        for search, replacement in blocks:
            parts.append(
                f"\n{change.path}\n```python\n<<<<<<< SEARCH\n{join_lines(search)}=======\n"
                f"{join_lines(replacement)}>>>>>>> REPLACE\n```\n"
            )
    return "".join(parts)


def unified_diff_reply(variant: Variant) -> str:
    parts = ["Here is the change.\n\n```diff\n"]
    for change in variant.files:
        if variant.git_headers:
            parts += [line + "\n" for line in change.git_header]
        if not change.hunks:
            continue  # an empty new file: git prints only its headers
        old, new = ("a/", "b/") if variant.prefixes else ("", "")
        parts.append("--- /dev/null\n" if change.before is None else f"--- {old}{change.path}\n")
        parts.append("+++ /dev/null\n" if change.after is None else f"+++ {new}{change.path}\n")
        for hunk in change.hunks:
            parts.append(hunk.header() + "\n")
            parts += [tag + text + "\n" for tag, text in hunk.lines]
    parts.append("```\n")
    return "".join(parts)


# Slips ---------------------------------------------------------------------------------


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _least_indent(hunk: Hunk) -> int:
    return min((_indent(text) for _, text in hunk.lines if text.strip()), default=0)


def _shift(hunk: Hunk, delta: int) -> Hunk | None:
    """Every non-blank line moved `delta` columns; None when a line has too little
    indentation (or a tab) to move left that far."""
    lines = []
    for tag, text in hunk.lines:
        if not text.strip():
            lines.append((tag, text))
        elif delta >= 0:
            lines.append((tag, " " * delta + text))
        elif text.startswith(" " * -delta):
            lines.append((tag, text[-delta:]))
        else:
            return None
    return replace(hunk, lines=tuple(lines))


def _with_line(hunk: Hunk, index: int, text: str) -> Hunk:
    lines = list(hunk.lines)
    lines[index] = (lines[index][0], text)
    return replace(hunk, lines=tuple(lines))


def context_typo(hunk: Hunk, rng: random.Random) -> Hunk | None:
    """One letter of one unchanged line mistyped (in SEARCH and REPLACE alike)."""
    options = [
        (k, p)
        for k, (tag, text) in enumerate(hunk.lines)
        if tag == " "
        for p in range(_indent(text), len(text))
        if text[p].isascii() and text[p].isalpha()
    ]
    if not options:
        return None
    k, p = rng.choice(options)
    text = hunk.lines[k][1]
    letters = string.ascii_lowercase if text[p].islower() else string.ascii_uppercase
    typo = rng.choice([c for c in letters if c != text[p]])
    return _with_line(hunk, k, text[:p] + typo + text[p + 1 :])


def tab_for_spaces(hunk: Hunk, rng: random.Random) -> Hunk | None:
    """One unchanged line indented with a tab per level instead of four spaces."""
    options = [
        k
        for k, (tag, text) in enumerate(hunk.lines)
        if tag == " " and text.strip() and _indent(text) and _indent(text) % 4 == 0
    ]
    if not options:
        return None
    k = rng.choice(options)
    text = hunk.lines[k][1]
    return _with_line(hunk, k, "\t" * (_indent(text) // 4) + text.lstrip(" "))


def indented(hunk: Hunk, rng: random.Random) -> Hunk | None:
    """The whole block four columns deeper than in the file."""
    return _shift(hunk, 4)


def dedented(hunk: Hunk, rng: random.Random) -> Hunk | None:
    """The whole block moved left to its least indentation (as if quoted at top level)."""
    least = _least_indent(hunk)
    return _shift(hunk, -least) if least else None


def _starting_deeper(hunk: Hunk, before: list[str]) -> Hunk | None:
    """The hunk, with leading context dropped if need be, so that its first SEARCH line
    is deeper than its least indented line (the block starts inside a nested statement);
    None when no such start keeps the SEARCH unique."""
    leading = next((k for k, (tag, _) in enumerate(hunk.lines) if tag != " "), 0)
    for drop in range(leading + 1):
        trimmed = replace(
            hunk,
            lines=hunk.lines[drop:],
            old_start=hunk.old_start + drop,
            new_start=hunk.new_start + drop,
        )
        search = [line for line in trimmed.search if line.strip()]
        if (
            search
            and _indent(search[0]) > _least_indent(trimmed)
            and len(occurrences(before, trimmed.search)) == 1
        ):
            return trimmed
    return None


def first_line_overindented(hunk: Hunk, rng: random.Random) -> Hunk | None:
    """Only the block's first line (unchanged) four columns deeper than in the file."""
    tag, text = hunk.lines[0]
    return _with_line(hunk, 0, "    " + text) if tag == " " and text.strip() else None


HunkSlip = Callable[[Hunk, random.Random], Hunk | None]


def _hunk_variant(
    name: str, files: tuple[FileChange, ...], rng: random.Random, slip: HunkSlip, deeper: bool
) -> Variant | None:
    """The slip made in one hunk, chosen at random among those it applies to. A slipped
    SEARCH that occurs in the file as written would be another edit, not a slip."""
    options = []
    for f, change in enumerate(files):
        before = split_lines(change.before)
        for h, hunk in enumerate(change.hunks):
            start = _starting_deeper(hunk, before) if deeper else hunk
            slipped = slip(start, rng) if start is not None else None
            if slipped is not None and slipped != hunk and not occurrences(before, slipped.search):
                options.append((f, h, slipped))
    if not options:
        return None
    f, h, slipped = rng.choice(options)
    hunks = files[f].hunks[:h] + (slipped,) + files[f].hunks[h + 1 :]
    return Variant(name, files[:f] + (replace(files[f], hunks=hunks),) + files[f + 1 :])


def _each_hunk(files: tuple[FileChange, ...], change: Callable[[Hunk], Hunk]) -> tuple:
    return tuple(replace(f, hunks=tuple(change(h) for h in f.hunks)) for f in files)


def stale_numbers(files: tuple[FileChange, ...], shift: int) -> tuple[FileChange, ...]:
    return _each_hunk(
        files,
        lambda h: replace(
            h, old_start=max(1, h.old_start + shift), new_start=max(1, h.new_start + shift)
        ),
    )


def wrong_counts(files: tuple[FileChange, ...], rng: random.Random) -> tuple[FileChange, ...]:
    def miscount(hunk: Hunk) -> Hunk:
        old = max(0, len(hunk.search) + rng.choice([-2, -1, 1, 2]))
        new = max(0, len(hunk.replace) + rng.choice([-2, -1, 0, 1, 2]))
        return replace(hunk, old_count=old, new_count=new)

    return _each_hunk(files, miscount)


def reordered(files: tuple[FileChange, ...]) -> tuple[FileChange, ...] | None:
    """Each file's hunks in reverse order, where the reversed blocks still each match one
    place (otherwise the intended result of the reordered reply is not determined)."""
    changed = []
    for change in files:
        backwards = change.hunks[::-1]
        if len(backwards) > 1 and apply_exactly(change.before, backwards) == change.after:
            change = replace(change, hunks=backwards)
        changed.append(change)
    return tuple(changed) if tuple(changed) != files else None


def _one_line_options(hunk: Hunk, before: list[str]) -> list[Hunk]:
    """The hunk's single change written with a one-line SEARCH that occurs more than once
    in the file: the removed line, or the unchanged line next to an insertion."""
    changed = [k for k, (tag, _) in enumerate(hunk.lines) if tag != " "]
    if not changed or changed[-1] - changed[0] + 1 != len(changed):
        return []  # several separate changes in the hunk
    first, last = changed[0], changed[-1]
    group = hunk.lines[first : last + 1]
    removed = [text for tag, text in group if tag == "-"]
    candidates: list[tuple[Line, ...]] = []
    if len(removed) == 1:
        candidates.append(group)
    elif not removed:
        if first > 0:
            candidates.append(hunk.lines[first - 1 : last + 1])
        if last + 1 < len(hunk.lines):
            candidates.append(hunk.lines[first : last + 2])
    return [
        replace(hunk, lines=lines)
        for lines in candidates
        if (line := next(text for tag, text in lines if tag != "+")).strip()
        and len(occurrences(before, [line])) > 1
    ]


def ambiguous_one_line(files: tuple[FileChange, ...], rng: random.Random) -> Variant | None:
    options = [
        (f, h, option)
        for f, change in enumerate(files)
        for h, hunk in enumerate(change.hunks)
        for option in _one_line_options(hunk, split_lines(change.before))
    ]
    if not options:
        return None
    f, h, option = rng.choice(options)
    hunks = files[f].hunks[:h] + (option,) + files[f].hunks[h + 1 :]
    changed = files[:f] + (replace(files[f], hunks=hunks),) + files[f + 1 :]
    return Variant("ambiguous one-line SEARCH", changed, determined=False)


BOTH = ("search_replace", "unified_diff")
DIFF = ("unified_diff",)
HUNK_SLIPS: list[tuple[str, HunkSlip, bool]] = [
    ("context typo", context_typo, False),
    ("tab for spaces", tab_for_spaces, False),
    ("indented +4", indented, False),
    ("dedented to least indent", dedented, False),
    ("first line deeper, +4", indented, True),
    ("first line deeper, dedented", dedented, True),
    ("first line over-indented", first_line_overindented, False),
]
SLIPS: dict[str, tuple[str, ...]] = {
    "clean": BOTH,
    **{name: BOTH for name, _, _ in HUNK_SLIPS},
    "stale line numbers +7": DIFF,
    "stale line numbers -7": DIFF,
    "wrong hunk counts": DIFF,
    "no diff --git/index lines": DIFF,
    "no a/ b/ prefixes": DIFF,
    "reordered hunks": BOTH,
    "ambiguous one-line SEARCH": ("search_replace",),
    "new file": ("search_replace",),
    "new file (git headers)": DIFF,
    "new file (no git headers)": DIFF,
    "delete file (git headers)": DIFF,
    "delete file (no git headers)": DIFF,
}


def variants(files: tuple[FileChange, ...], fmt: str, seed: str) -> Iterator[Variant]:
    """Every slip that applies to this commit's change, in the order of SLIPS. Commits
    that create or delete files are used for those cases only."""
    kinds = {change.status for change in files}
    kind = "delete file" if "D" in kinds else "new file" if "A" in kinds else None
    if kind is not None:
        yield from _file_variants(files, fmt, kind)
        return
    yield Variant("clean", files)
    for name, slip, deeper in HUNK_SLIPS:
        rng = random.Random(f"{seed}:{name}")
        if variant := _hunk_variant(name, files, rng, slip, deeper):
            yield variant
    if fmt == "unified_diff":
        rng = random.Random(f"{seed}:counts")
        yield Variant("stale line numbers +7", stale_numbers(files, 7))
        yield Variant("stale line numbers -7", stale_numbers(files, -7))
        yield Variant("wrong hunk counts", wrong_counts(files, rng))
        yield Variant("no diff --git/index lines", files, git_headers=False)
        yield Variant("no a/ b/ prefixes", files, git_headers=False, prefixes=False)
    if backwards := reordered(files):
        yield Variant("reordered hunks", backwards)
    if fmt == "search_replace":
        if variant := ambiguous_one_line(files, random.Random(f"{seed}:one-line")):
            yield variant


def _file_variants(files: tuple[FileChange, ...], fmt: str, kind: str) -> Iterator[Variant]:
    if fmt == "search_replace":
        if kind == "new file":  # SEARCH/REPLACE has no way to delete a file
            yield Variant(kind, files)
        return
    yield Variant(f"{kind} (git headers)", files)
    if all(change.hunks for change in files):  # an empty new file is only its headers
        yield Variant(f"{kind} (no git headers)", files, git_headers=False)
