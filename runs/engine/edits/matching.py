"""Find where a SEARCH text sits in a file: exact, then ignoring trailing whitespace, then
ignoring leading whitespace (re-indenting the replacement), then a unique close match.
Several equally good places are an error, never a guess."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from difflib import SequenceMatcher

DEFAULT_FUZZY_THRESHOLD = 0.95


@dataclass(frozen=True)
class Match:
    start: int
    end: int
    replacement: list[str]
    method: str


class NoMatch(Exception):
    pass


class Ambiguous(Exception):
    def __init__(self, count: int, method: str, lines: list[int]) -> None:
        super().__init__(
            f"matches {count} places ({method}), at lines "
            + ", ".join(str(n + 1) for n in lines[:5])
        )


def _windows(lines: list[str], search: list[str], same: Callable[[str, str], bool]) -> list[int]:
    n = len(search)
    return [
        i for i in range(len(lines) - n + 1) if all(same(lines[i + k], search[k]) for k in range(n))
    ]


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _reindent(replace: list[str], search: list[str], found: list[str]) -> list[str]:
    first = next((k for k, line in enumerate(search) if line.strip()), None)
    if first is None:
        return replace
    have, want = _indent(search[first]), _indent(found[first])
    out = []
    for line in replace:
        if not line.strip():
            out.append(line)
        elif line.startswith(have):
            out.append(want + line[len(have) :])
        else:
            out.append(line)
    return out


def _fuzzy(lines: list[str], search: list[str], threshold: float) -> list[int]:
    n = len(search)
    target = "\n".join(search)
    hits = []
    for i in range(len(lines) - n + 1):
        matcher = SequenceMatcher(None, "\n".join(lines[i : i + n]), target, autojunk=False)
        if (
            matcher.real_quick_ratio() >= threshold
            and matcher.quick_ratio() >= threshold
            and matcher.ratio() >= threshold
        ):
            hits.append(i)
    return hits


def locate(
    lines: list[str],
    search: list[str],
    replace: list[str],
    fuzzy_threshold: float | None = DEFAULT_FUZZY_THRESHOLD,
) -> Match:
    steps: list[tuple[str, Callable[[], list[int]]]] = [
        ("exact", lambda: _windows(lines, search, lambda a, b: a == b)),
        (
            "ignoring trailing whitespace",
            lambda: _windows(lines, search, lambda a, b: a.rstrip() == b.rstrip()),
        ),
        (
            "ignoring indentation",
            lambda: _windows(lines, search, lambda a, b: a.strip() == b.strip()),
        ),
    ]
    if fuzzy_threshold is not None:
        steps.append(("close match", lambda: _fuzzy(lines, search, fuzzy_threshold)))
    for method, find in steps:
        hits = find()
        if len(hits) > 1:
            raise Ambiguous(len(hits), method, hits)
        if hits:
            start = hits[0]
            found = lines[start : start + len(search)]
            replacement = (
                _reindent(replace, search, found) if method == "ignoring indentation" else replace
            )
            return Match(start, start + len(search), replacement, method)
    raise NoMatch()


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
