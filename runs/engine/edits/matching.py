"""Find where a SEARCH text sits in a file, and build the lines that replace it.

Where: exactly, then ignoring trailing whitespace, then ignoring indentation, then one
close match. Several places that match equally well are an error, never a guess.

What: whatever stage matched, a line the edit does not change keeps the file's bytes.
SEARCH and REPLACE are compared line by line; lines they share are the file's lines, and
only the lines the edit adds or changes come from the reply, shifted by the one
indentation difference between the reply and the file over the matched region and written
with the file's indentation characters. An edit that cannot be placed that way (its
indentation disagrees with the file's from line to line, or a changed line sits where the
reply and the file do not line up) is refused.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from difflib import SequenceMatcher

DEFAULT_FUZZY_THRESHOLD = 0.95
# A close match must beat the next distinct region by this much; otherwise it is ambiguous.
CLOSE_MARGIN = 0.02


@dataclass(frozen=True)
class Match:
    """File lines [start, end) become `replacement`: each item is a line from the reply,
    or the index of a file line kept as it is (with its own bytes and line ending)."""

    start: int
    end: int
    replacement: list[str | int]
    method: str


class NoMatch(Exception):
    pass


class Ambiguous(Exception):
    """Several regions (start, end) match as well as each other."""

    def __init__(self, method: str, regions: list[tuple[int, int]]) -> None:
        self.method = method
        self.regions = regions
        spans = ", ".join(span(start, end) for start, end in regions[:5])
        super().__init__(f"matches {len(regions)} places ({method}), at lines {spans}")


class Unplaceable(Exception):
    """The region was found, but the edit cannot be laid onto it without guessing."""


def span(start: int, end: int) -> str:
    return f"{start + 1}" if end - start <= 1 else f"{start + 1}-{end}"


# --- where ---------------------------------------------------------------------------


def _windows(lines: list[str], search: list[str], same: Callable[[str, str], bool]) -> list[int]:
    n = len(search)
    return [
        i for i in range(len(lines) - n + 1) if all(same(lines[i + k], search[k]) for k in range(n))
    ]


def _close(lines: list[str], search: list[str], threshold: float) -> list[tuple[float, int, int]]:
    """Every window, of the SEARCH's length or one line shorter or longer, at least
    `threshold` similar to it: (score, start, end)."""
    target = "\n".join(search)
    n = len(search)
    hits = []
    for size in sorted({max(1, n - 1), n, n + 1}):
        for i in range(len(lines) - size + 1):
            matcher = SequenceMatcher(None, "\n".join(lines[i : i + size]), target, autojunk=False)
            if (
                matcher.real_quick_ratio() >= threshold
                and matcher.quick_ratio() >= threshold
                and (score := matcher.ratio()) >= threshold
            ):
                hits.append((score, i, i + size))
    return hits


def _best_region(hits: list[tuple[float, int, int]]) -> tuple[int, int]:
    """The best-scoring window, when it beats every window that does not overlap it by
    CLOSE_MARGIN. Overlapping windows are the same place seen a line apart."""
    hits = sorted(hits, key=lambda hit: (-hit[0], hit[2] - hit[1], hit[1]))
    score, start, end = hits[0]
    rivals: list[tuple[int, int]] = []
    for other, s, e in hits[1:]:
        if score - other >= CLOSE_MARGIN:
            break
        overlaps = s < end and start < e
        if not overlaps and not any(s < re and rs < e for rs, re in rivals):
            rivals.append((s, e))
    if rivals:
        raise Ambiguous("close match", [(start, end), *rivals])
    return start, end


def _regroup(hits: list[int], size: int) -> list[tuple[int, int]]:
    return [(start, start + size) for start in hits]


def locate(
    lines: list[str],
    search: list[str],
    replace: list[str],
    fuzzy_threshold: float | None = DEFAULT_FUZZY_THRESHOLD,
) -> Match:
    steps: list[tuple[str, Callable[[str, str], bool]]] = [
        ("exact", lambda a, b: a == b),
        ("ignoring trailing whitespace", lambda a, b: a.rstrip() == b.rstrip()),
        ("ignoring indentation", lambda a, b: a.strip() == b.strip()),
    ]
    n = len(search)
    for method, same in steps:
        hits = _windows(lines, search, same)
        if len(hits) > 1:
            raise Ambiguous(method, _regroup(hits, n))
        if hits:
            start = hits[0]
            replacement = build(
                search, replace, lines[start : start + n], dict(enumerate(range(n)))
            )
            return Match(start, start + n, _absolute(replacement, start), method)
    if fuzzy_threshold is not None and (hits := _close(lines, search, fuzzy_threshold)):
        start, end = _best_region(hits)
        start, end, pairs = trim(start, lines[start:end], align(search, lines[start:end]))
        replacement = build(search, replace, lines[start:end], pairs)
        return Match(start, end, _absolute(replacement, start), "close match")
    raise NoMatch()


def _absolute(replacement: list[str | int], start: int) -> list[str | int]:
    return [item + start if isinstance(item, int) else item for item in replacement]


def closest(lines: list[str], search: list[str]) -> tuple[int, list[str]] | None:
    """The window most like `search`, for a "did you mean" hint."""
    n = max(1, len(search))
    target = "\n".join(search)
    best: tuple[float, int] | None = None
    for i in range(max(1, len(lines) - n + 1)):
        ratio = SequenceMatcher(None, "\n".join(lines[i : i + n]), target).ratio()
        if best is None or ratio > best[0]:
            best = (ratio, i)
    if best is None or best[0] < 0.4:
        return None
    return best[1], lines[best[1] : best[1] + n]


# --- what ----------------------------------------------------------------------------


def align(search: list[str], found: list[str]) -> dict[int, int]:
    """Which file line each SEARCH line stands for: lines equal but for whitespace, and
    lines of runs of differing lines of the same length (a line with a slip), in order.
    SEARCH lines the file does not have, and file lines SEARCH left out, stand for
    nothing."""
    pairs: dict[int, int] = {}
    matcher = SequenceMatcher(
        None, [line.strip() for line in search], [line.strip() for line in found], autojunk=False
    )
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal" or (tag == "replace" and i2 - i1 == j2 - j1):
            pairs.update(zip(range(i1, i2), range(j1, j2), strict=True))
    return pairs


def build(
    search: list[str], replace: list[str], found: list[str], pairs: dict[int, int]
) -> list[str | int]:
    """What replaces `found`: its own lines (by index), with each change the edit makes
    (SEARCH to REPLACE) laid onto the file lines it stands for."""
    edits = SequenceMatcher(None, search, replace, autojunk=False).get_opcodes()
    changed = {i for tag, i1, i2, _, _ in edits if tag != "equal" for i in range(i1, i2)}
    shape = _Indentation(search, replace, found, pairs, changed)
    out: list[str | int] = []
    done = 0  # file lines before this index are in `out` or replaced
    for tag, i1, i2, j1, j2 in edits:
        if tag == "equal":
            continue
        start, end = _place(i1, i2, pairs, len(found))
        out += range(done, start)
        out += [shape.render(line, j1 + k) for k, line in enumerate(replace[j1:j2])]
        done = end
    return out + list(range(done, len(found)))


def _place(i1: int, i2: int, pairs: dict[int, int], size: int) -> tuple[int, int]:
    """The file lines [start, end) that SEARCH lines [i1, i2) stand for (for an insertion,
    i1 == i2, the empty range where it goes): everything between the file lines of the
    nearest paired SEARCH lines around them. Refused when a file line in there stands for
    no SEARCH line of the range: the edit would change, or go around, a line the reply
    never showed."""
    start = max((f + 1 for i, f in pairs.items() if i < i1), default=0)
    end = min((f for i, f in pairs.items() if i >= i2), default=size)
    inside = {f for i, f in pairs.items() if i1 <= i < i2}
    if end < start or any(f not in inside for f in range(start, end)):
        where = f"lines {span(i1, i2)} of SEARCH" if i1 < i2 else f"after line {i1} of SEARCH"
        raise Unplaceable(
            f"the file has lines at the change ({where}) that SEARCH does not show, so where "
            "it goes is uncertain"
        )
    return start, end


def trim(found_start: int, found: list[str], pairs: dict[int, int]) -> tuple[int, int, dict]:
    """Drop file lines at either edge of a close match that stand for no SEARCH line."""
    if not pairs:
        return found_start, found_start + len(found), pairs
    first, last = min(pairs.values()), max(pairs.values())
    return (
        found_start + first,
        found_start + last + 1,
        {i: f - first for i, f in pairs.items()},
    )


class _Indentation:
    """The one shift from the reply's indentation to the file's over the matched region,
    and how the file writes indentation. `changed`: the SEARCH lines the edit changes,
    which must agree with that shift."""

    def __init__(
        self,
        search: list[str],
        replace: list[str],
        found: list[str],
        pairs: dict[int, int],
        changed: set[int],
    ) -> None:
        self.char = _indent_char(found) or _indent_char(search + replace) or " "
        self.tab = _tab_size(search, replace, found, pairs)
        shifts = Counter(
            _width(found[f], self.tab) - _width(search[i], self.tab)
            for i, f in pairs.items()
            if search[i].strip() and found[f].strip()
        )
        self.shift = 0
        if shifts:
            (best, count), *rest = shifts.most_common()
            if rest and rest[0][1] == count:
                raise Unplaceable(
                    "its lines are indented inconsistently with the file's (some by "
                    f"{best}, some by {rest[0][0]} columns)"
                )
            self.shift = best
            for i, f in pairs.items():
                shifted = _width(found[f], self.tab) - _width(search[i], self.tab)
                if i in changed and search[i].strip() and shifted != best:
                    raise Unplaceable(
                        f"line {i + 1} of SEARCH is indented differently from the rest, "
                        "compared with the file"
                    )

    def render(self, line: str, index: int) -> str:
        if not line.strip():
            return line
        indent = line[: len(line) - len(line.lstrip())]
        if self.shift == 0 and set(indent) <= {self.char}:
            return line
        width = _width(line, self.tab) + self.shift
        if width < 0:
            raise Unplaceable(
                f"line {index + 1} of REPLACE would need to move {-self.shift} columns left "
                "of the margin to match the file's indentation"
            )
        if self.char == "\t":
            tabs, spaces = divmod(width, self.tab)
            return "\t" * tabs + " " * spaces + line.lstrip()
        return " " * width + line.lstrip()


def _indent_char(lines: list[str]) -> str | None:
    counts = Counter(line[0] for line in lines if line.strip() and line[0] in " \t")
    return counts.most_common(1)[0][0] if counts else None


def _tab_size(
    search: list[str], replace: list[str], found: list[str], pairs: dict[int, int]
) -> int:
    """How many columns a tab stands for. Where SEARCH indents a line with tabs and the
    file with spaces (or the other way round), what makes them equal; else the unit of
    whichever side indents with spaces (one tab for one level of four spaces is four);
    else 8."""
    solved = Counter()
    for i, f in pairs.items():
        (s_tabs, s_spaces), (f_tabs, f_spaces) = _indent_parts(search[i]), _indent_parts(found[f])
        if search[i].strip() and s_tabs != f_tabs:
            columns, tabs = f_spaces - s_spaces, s_tabs - f_tabs
            if columns % tabs == 0 and 2 <= columns // tabs <= 8:
                solved[columns // tabs] += 1
    if solved:
        return solved.most_common(1)[0][0]
    widths = {
        len(line) - len(line.lstrip(" "))
        for line in found + search + replace
        if line.strip() and line.startswith(" ") and not line.lstrip(" ").startswith("\t")
    }
    unit = math.gcd(*widths) if widths else 0
    return unit if 2 <= unit <= 8 else 8


def _indent_parts(line: str) -> tuple[int, int]:
    indent = line[: len(line) - len(line.lstrip())]
    return indent.count("\t"), indent.count(" ")


def _width(line: str, tab: int) -> int:
    indent = line[: len(line) - len(line.lstrip())]
    return len(indent.expandtabs(tab))
