from __future__ import annotations

import pytest

from runs.engine.edits import edit_format
from runs.engine.edits.apply import compute_changes
from runs.engine.outcomes import ApplyError, FormatError

SOURCE = "def area(w, h):\n    return w * h\n\n\ndef perimeter(w, h):\n    return 2 * (w + h)\n"


def apply(reply: str, files: dict[str, str], fmt: str = "search_replace") -> dict:
    edits = edit_format(fmt).parse(reply)
    return compute_changes(edits, files.get, 0.95)


def test_search_replace_ignores_prose_and_handles_several_blocks_in_one_fence():
    reply = (
        "Sure, two changes:\n\n**shapes.py**\n```python\n<<<<<<< SEARCH\n"
        "    return w * h\n=======\n    return float(w * h)\n>>>>>>> REPLACE\n"
        "<<<<<<< SEARCH\n    return 2 * (w + h)\n=======\n    return 2.0 * (w + h)\n"
        ">>>>>>> REPLACE\n```\nHope that helps!"
    )

    changes = apply(reply, {"shapes.py": SOURCE})

    assert changes["shapes.py"] == SOURCE.replace("w * h", "float(w * h)").replace(
        "2 * (w", "2.0 * (w"
    )


def test_empty_search_creates_a_file_but_not_over_an_existing_one():
    reply = "new.py\n```\n<<<<<<< SEARCH\n=======\nx = 1\n>>>>>>> REPLACE\n```\n"
    assert apply(reply, {}) == {"new.py": "x = 1\n"}

    with pytest.raises(ApplyError, match="an empty SEARCH part creates a new file"):
        apply(reply, {"new.py": "y = 2\n"})


def test_missing_path_and_missing_markers_are_format_errors():
    with pytest.raises(FormatError, match="Block 1: no file path"):
        edit_format("search_replace").parse("<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\n")
    with pytest.raises(FormatError, match="expected a '>>>>>>> REPLACE' line before the reply"):
        edit_format("search_replace").parse("x.py\n<<<<<<< SEARCH\na\n=======\nb\n")
    with pytest.raises(FormatError, match="No SEARCH/REPLACE blocks found"):
        edit_format("search_replace").parse("I think the code is fine as it is.")


def test_trailing_whitespace_differences_still_match():
    reply = (
        "s.py\n```\n<<<<<<< SEARCH\n    return w * h   \n=======\n    return 0\n"
        ">>>>>>> REPLACE\n```"
    )
    assert "    return 0\n" in apply(reply, {"s.py": SOURCE})["s.py"]


def test_wrong_indentation_matches_and_the_replacement_is_reindented():
    source = "class Box:\n    def area(self):\n        return self.w * self.h\n"
    reply = (
        "s.py\n```\n<<<<<<< SEARCH\ndef area(self):\n    return self.w * self.h\n=======\n"
        "def area(self):\n    return float(self.w * self.h)\n>>>>>>> REPLACE\n```"
    )

    changes = apply(reply, {"s.py": source})

    assert changes["s.py"] == (
        "class Box:\n    def area(self):\n        return float(self.w * self.h)\n"
    )


def test_a_unique_close_match_applies_but_ambiguity_never_does():
    source = (
        "def total(items):\n    result = 0\n    for item in items:\n        result += item\n"
        "    return result\n"
    )
    close = (
        "s.py\n```\n<<<<<<< SEARCH\ndef total(items):\n    result = 0\n    for item in items:\n"
        "        result += items\n=======\ndef total(items):\n    return sum(items)\n"
        ">>>>>>> REPLACE\n```"
    )
    assert (
        apply(close, {"s.py": source})["s.py"]
        == "def total(items):\n    return sum(items)\n    return result\n"
    )

    twice = "x = 1\ny = 2\nx = 1\n"
    reply = "s.py\n```\n<<<<<<< SEARCH\nx = 1\n=======\nx = 3\n>>>>>>> REPLACE\n```"
    with pytest.raises(ApplyError) as raised:
        apply(reply, {"s.py": twice})
    assert "matches 2 places (exact), at lines 1, 3" in raised.value.feedback


def test_failed_block_feedback_shows_closest_lines_and_what_applied():
    reply = (
        "s.py\n```\n<<<<<<< SEARCH\n    return w * h\n=======\n    return 0\n>>>>>>> REPLACE\n"
        "<<<<<<< SEARCH\ndef perimetre(w, h):\n    return 2 * (w + h)\n=======\n"
        "def perimeter(w, h):\n    return 2\n>>>>>>> REPLACE\n```"
    )

    with pytest.raises(ApplyError) as raised:
        apply(reply, {"s.py": SOURCE})

    feedback = raised.value.feedback
    assert "1 of 2 edit blocks could not be applied, so none were" in feedback
    assert "Block 2 (s.py): the SEARCH text was not found" in feedback
    assert "Did you mean these lines (5-6)?" in feedback and "def perimeter(w, h):" in feedback
    assert "Blocks that did apply, and were discarded with the rest: 1." in feedback


def test_whole_file_format_replaces_the_file():
    reply = "Here it is:\n\nshapes.py\n```python\nAREA = 1\n```\n"
    assert apply(reply, {"shapes.py": SOURCE}, "whole_file") == {"shapes.py": "AREA = 1\n"}


def test_unified_diff_hunks_apply_through_the_matcher():
    reply = (
        "```diff\n--- a/shapes.py\n+++ b/shapes.py\n@@ -1,2 +1,2 @@\n def area(w, h):\n"
        "-    return w * h\n+    return w * h * 1.0\n```\n--- /dev/null\n+++ b/new.py\n"
        "@@ -0,0 +1 @@\n+NEW = True\n"
    )

    changes = apply(reply, {"shapes.py": SOURCE}, "unified_diff")

    assert "return w * h * 1.0" in changes["shapes.py"]
    assert changes["new.py"] == "NEW = True\n"


def test_unified_diff_renames_move_the_content():
    reply = "--- a/old.py\n+++ b/new.py\n@@ -1 +1 @@\n-a\n+b\n"

    assert apply(reply, {"old.py": "a\n"}, "unified_diff") == {"old.py": None, "new.py": "b\n"}
