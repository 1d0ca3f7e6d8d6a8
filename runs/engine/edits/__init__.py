"""Builder output formats. Each parses a reply into `Edit`s; `apply.py` applies them."""

from __future__ import annotations

from runs.engine.edits.search_replace import SearchReplaceFormat
from runs.engine.edits.unified_diff import UnifiedDiffFormat
from runs.engine.edits.whole_file import WholeFileFormat

FORMATS = {
    "search_replace": SearchReplaceFormat,
    "whole_file": WholeFileFormat,
    "unified_diff": UnifiedDiffFormat,
}


def edit_format(name: str):
    try:
        return FORMATS[name]()
    except KeyError:
        raise ValueError(f"unknown edit format {name!r}; use one of {', '.join(FORMATS)}") from None
