"""Turn parsed edits into new file contents, all blocks or none."""

from __future__ import annotations

from collections.abc import Callable

from runs.engine.edits.matching import Ambiguous, NoMatch, closest, locate
from runs.engine.outcomes import ApplyError
from runs.engine.protocols import Edit

MIN_FUZZY_LINES = 3


class BlockError(Exception):
    pass


def _lines(text: str) -> list[str]:
    return text.splitlines()


def _did_you_mean(lines: list[str], search: list[str]) -> str:
    near = closest(lines, search)
    if near is None:
        return ""
    start, found = near
    shown = "\n".join(f"{start + k + 1:>5} | {line}" for k, line in enumerate(found))
    return f"\nDid you mean these lines ({start + 1}-{start + len(found)})?\n{shown}"


def apply_one(edit: Edit, current: str | None, fuzzy: float | None) -> str | None:
    if edit.delete:
        if current is None:
            raise BlockError("cannot delete: the file does not exist")
        return None
    if edit.search is None:
        return edit.replace
    if not edit.search.strip():
        if current is not None and current.strip():
            raise BlockError(
                "an empty SEARCH part creates a new file, but this file exists; "
                "quote the existing lines to change instead"
            )
        return edit.replace
    if current is None:
        raise BlockError("the file does not exist; to create it, use an empty SEARCH part")
    newline = "\r\n" if "\r\n" in current else "\n"
    lines, search, replace = _lines(current), _lines(edit.search), _lines(edit.replace)
    already_there = bool(edit.replace.strip()) and "\n".join(replace).strip() in current
    # A close match needs enough text to mean anything, and must not re-apply a change
    # that is already made.
    if already_there or sum(1 for line in search if line.strip()) < MIN_FUZZY_LINES:
        fuzzy = None
    try:
        match = locate(lines, search, replace, fuzzy)
    except Ambiguous as exc:
        raise BlockError(
            f"the SEARCH text {exc}; include more surrounding lines so it matches exactly one place"
        ) from None
    except NoMatch:
        message = "the SEARCH text was not found in the file"
        if already_there:
            message += ". The REPLACE text is already in the file: this change may already be made"
        raise BlockError(message + _did_you_mean(lines, search)) from None
    updated = lines[: match.start] + match.replacement + lines[match.end :]
    ends_with_newline = current.endswith(("\n", "\r")) or not current
    return newline.join(updated) + (newline if ends_with_newline and updated else "")


def compute_changes(
    edits: list[Edit], read: Callable[[str], str | None], fuzzy: float | None
) -> dict[str, str | None]:
    """New content per changed path (None = delete). Raises ApplyError, changing nothing,
    if any block fails."""
    originals: dict[str, str | None] = {}
    contents: dict[str, str | None] = {}
    failures: list[str] = []
    applied: list[int] = []
    for edit in edits:
        if edit.path not in originals:
            originals[edit.path] = contents[edit.path] = read(edit.path)
        try:
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
