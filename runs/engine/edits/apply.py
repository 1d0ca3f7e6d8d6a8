"""Turn parsed edits into new file contents, all blocks or none."""

from __future__ import annotations

from collections.abc import Callable

from runs.engine.edits.matching import (
    Ambiguous,
    Match,
    NoMatch,
    Unplaceable,
    closest,
    locate,
    span,
)
from runs.engine.outcomes import ApplyError
from runs.engine.protocols import Edit

MIN_FUZZY_LINES = 3


class BlockError(Exception):
    pass


def split_lines(text: str) -> list[str]:
    """Lines with their own endings ("\n", "\r\n", or none for a last line without one).
    Only "\n" ends a line: form feeds and other separators are part of a line's bytes."""
    parts = text.split("\n")
    return [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def _content(line: str) -> str:
    return line.removesuffix("\n").removesuffix("\r")


def _lines(text: str) -> list[str]:
    return [_content(line) for line in split_lines(text)]


def _shown(lines: list[str], start: int, end: int, limit: int = 8) -> str:
    shown = [f"{n + 1:>5} | {lines[n]}" for n in range(start, min(end, start + limit))]
    if end - start > limit:
        shown.append("      | ...")
    return "\n".join(shown)


def _did_you_mean(lines: list[str], search: list[str]) -> str:
    near = closest(lines, search)
    if near is None:
        return ""
    start, found = near
    return f"\nDid you mean these lines ({start + 1}-{start + len(found)})?\n" + _shown(
        lines, start, start + len(found), limit=len(found)
    )


def _ambiguous(exc: Ambiguous, lines: list[str]) -> str:
    regions = exc.regions[:3]
    shown = "\n\n".join(
        f"Lines {span(start, end)}:\n{_shown(lines, start, end)}" for start, end in regions
    )
    more = f"\n(and {len(exc.regions) - 3} more)" if len(exc.regions) > 3 else ""
    return (
        f"the SEARCH text {exc}; it must match exactly one place. Quote it exactly, with a "
        f"line before or after it that differs between these places:\n{shown}{more}"
    )


def apply_one(edit: Edit, current: str | None, fuzzy: float | None) -> str | None:
    if edit.delete:
        if current is None:
            raise BlockError("cannot delete: the file does not exist")
        return None
    if edit.search is None:
        return edit.replace
    if edit.search == "":
        if current is not None and current.strip():
            raise BlockError(
                "an empty SEARCH part creates a new file, but this file exists; "
                "quote the existing lines to change instead"
            )
        return edit.replace
    if current is None:
        raise BlockError("the file does not exist; to create it, use an empty SEARCH part")
    raw = split_lines(current)
    lines, search, replace = (
        [_content(line) for line in raw],
        _lines(edit.search),
        _lines(edit.replace),
    )
    already_there = bool(edit.replace.strip()) and "\n".join(replace).strip() in current
    # A close match needs enough text to mean anything, and must not re-apply a change
    # that is already made.
    if already_there or sum(1 for line in search if line.strip()) < MIN_FUZZY_LINES:
        fuzzy = None
    try:
        match = locate(lines, search, replace, fuzzy)
    except Ambiguous as exc:
        raise BlockError(_ambiguous(exc, lines)) from None
    except Unplaceable as exc:
        raise BlockError(
            f"the SEARCH text was found, but {exc}; quote the lines exactly as the file has them"
        ) from None
    except NoMatch:
        message = "the SEARCH text was not found in the file"
        if already_there:
            message += ". The REPLACE text is already in the file: this change may already be made"
        raise BlockError(message + _did_you_mean(lines, search)) from None
    return _join(raw, match, current)


def _join(raw: list[str], match: Match, current: str) -> str:
    """The file with the match's lines in place: kept lines with their own bytes, new lines
    with the file's line ending; the file's last line keeps or lacks its ending."""
    crlf = sum(line.endswith("\r\n") for line in raw)
    newline = "\r\n" if crlf > len(raw) - crlf else "\n"
    items = [*range(match.start), *match.replacement, *range(match.end, len(raw))]
    ends_with_newline = current.endswith("\n")
    out = []
    for k, item in enumerate(items):
        last = k == len(items) - 1
        if isinstance(item, int):
            line = raw[item]
            out.append(line if last or line.endswith("\n") else line + newline)
        else:
            out.append(item + (newline if not last or ends_with_newline else ""))
    return "".join(out)


def _moved(edit: Edit, contents: dict[str, str | None]) -> str:
    if contents[edit.path] is not None:
        raise BlockError(f"cannot rename {edit.source} to {edit.path}: {edit.path} exists")
    source = contents[edit.source]
    if source is None:
        raise BlockError(f"cannot rename {edit.source}: it does not exist")
    return source


def compute_changes(
    edits: list[Edit], read: Callable[[str], str | None], fuzzy: float | None
) -> dict[str, str | None]:
    """New content per changed path (None = delete). Raises ApplyError, changing nothing,
    if any block fails."""
    originals: dict[str, str | None] = {}
    contents: dict[str, str | None] = {}
    failures: list[str] = []
    applied: list[int] = []
    moved: set[str] = set()  # renamed files, their content taken from the old path
    for edit in edits:
        if edit.path not in originals:
            originals[edit.path] = contents[edit.path] = read(edit.path)
        if edit.source is not None and edit.source not in originals:
            originals[edit.source] = contents[edit.source] = read(edit.source)
        try:
            if edit.source is not None and edit.path not in moved:
                contents[edit.path] = _moved(edit, contents)
                moved.add(edit.path)
            if edit.source is None or edit.search is not None:  # else a rename alone
                contents[edit.path] = apply_one(edit, contents[edit.path], fuzzy)
        except BlockError as exc:
            failures.append(f"Block {edit.block} ({edit.path}): {exc}")
        else:
            applied.append(edit.block)
    if failures:
        done = (
            f"Blocks that did apply, and were discarded with the rest: "
            f"{', '.join(map(str, applied))}."
            if applied
            else "No block applied."
        )
        raise ApplyError(
            f"{len(failures)} of {len(edits)} edit blocks failed: " + failures[0].split("\n")[0],
            f"{len(failures)} of {len(edits)} edit blocks could not be applied, so none were; "
            "the files are unchanged. Send every change again with corrected blocks.\n\n"
            + "\n\n".join(failures)
            + f"\n\n{done}",
        )
    return {path: text for path, text in contents.items() if text != originals[path]}
