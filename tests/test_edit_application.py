"""Edit application on real files (CPython's textwrap.py and subprocess.py, Go's
strings/replace.go): a line the edit does not change keeps the file's bytes, whatever slip
the reply makes; a block is re-indented whole or refused; every section of a diff is
applied or named in an error. Each test asserts the exact resulting bytes."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from runs.engine.edits import edit_format
from runs.engine.edits.apply import compute_changes
from runs.engine.outcomes import ApplyError, FormatError, Outcome
from runs.engine.workspace import GitWorkspace
from tests.attempts import scripted_attempt
from tests.builds import block, git

FIXTURES = Path(__file__).parent / "fixtures" / "edits"
TEXTWRAP = (FIXTURES / "textwrap.py").read_text()
REPLACE_GO = (FIXTURES / "replace.go").read_text()
SUBPROCESS = (FIXTURES / "subprocess_head.py").read_text()

# _fix_sentence_endings in textwrap.py, and the change the edit makes to it.
LOOP = (
    "        i = 0\n"
    "        patsearch = self.sentence_end_re.search\n"
    "        while i < len(chunks)-1:\n"
    '            if chunks[i+1] == " " and patsearch(chunks[i]):\n'
    '                chunks[i+1] = "  "\n'
)
LOOP_AFTER = LOOP.replace('chunks[i+1] = "  "', 'chunks[i+1] = "   "  # three spaces')
INTENDED = TEXTWRAP.replace(LOOP, LOOP_AFTER)


def apply(reply: str, files: dict[str, str], fmt: str = "search_replace", fuzzy=0.95) -> dict:
    return compute_changes(edit_format(fmt).parse(reply), files.get, fuzzy)


def refusal(reply: str, files: dict[str, str], fmt: str = "search_replace") -> str:
    with pytest.raises(ApplyError) as raised:
        apply(reply, files, fmt)
    return raised.value.feedback


def shifted(text: str, by: int) -> str:
    """Every non-blank line moved `by` columns (left when negative)."""
    return "".join(
        (" " * by + line if by > 0 else line[-by:]) if line.strip() else line
        for line in text.splitlines(keepends=True)
    )


# --- SEARCH/REPLACE slips -----------------------------------------------------------


def test_a_context_typo_repeated_in_replace_keeps_the_files_line():
    typo = LOOP.replace("self.sentence_end_re", "self.sentense_end_re")
    reply = block("textwrap.py", typo, LOOP_AFTER.replace("sentence_end", "sentense_end"))

    assert apply(reply, {"textwrap.py": TEXTWRAP})["textwrap.py"] == INTENDED


def test_a_tab_indented_context_line_in_a_space_indented_file_is_not_written():
    tab = LOOP.replace("        while i", "\twhile i")
    reply = block("textwrap.py", tab, LOOP_AFTER.replace("        while i", "\twhile i"))

    assert apply(reply, {"textwrap.py": TEXTWRAP})["textwrap.py"] == INTENDED


def test_added_lines_indented_with_tabs_take_the_files_spaces():
    reply = block(
        "textwrap.py",
        LOOP,
        LOOP.replace("        i = 0\n", "        i = 0\n\t\tassert chunks is not None\n"),
    )

    result = apply(reply, {"textwrap.py": TEXTWRAP})["textwrap.py"]

    assert result == TEXTWRAP.replace(
        "        i = 0\n        patsearch",
        "        i = 0\n        assert chunks is not None\n        patsearch",
    )


@pytest.mark.parametrize("by", [4, -8])
def test_a_block_is_shifted_whole_both_ways(by):
    reply = block("textwrap.py", shifted(LOOP, by), shifted(LOOP_AFTER, by))

    assert apply(reply, {"textwrap.py": TEXTWRAP})["textwrap.py"] == INTENDED


@pytest.mark.parametrize("by", [4, -8])
def test_a_block_whose_first_line_is_deeper_than_the_rest_moves_as_one(by):
    """The block starts inside the if, ends at the while's level: every line moves."""
    search = "                i += 2\n            else:\n                i += 1\n"
    replace = (
        "                i += 2\n            else:\n                i += 1\n        return chunks\n"
    )
    reply = block("textwrap.py", shifted(search, by), shifted(replace, by))

    result = apply(reply, {"textwrap.py": TEXTWRAP})["textwrap.py"]

    assert result == TEXTWRAP.replace(
        "                i += 1\n\n    def _handle_long_word",
        "                i += 1\n        return chunks\n\n    def _handle_long_word",
    )


def test_a_shift_that_would_move_lines_left_of_the_margin_is_refused():
    search = "def dedent(text):\n"
    replace = "def dedent(text):\n  # leading two spaces, then back to the margin\n"
    reply = block("textwrap.py", "    " + search, replace)  # +4 in the reply

    feedback = refusal(reply, {"textwrap.py": TEXTWRAP})

    assert "left of the margin" in feedback


def test_lines_shifted_inconsistently_are_refused():
    mixed = LOOP.replace("        while i", "    while i").replace(
        "        i = 0", "            i = 0"
    )
    reply = block("textwrap.py", mixed, mixed.replace("while i", "while 0 <= i"))

    feedback = refusal(reply, {"textwrap.py": TEXTWRAP})

    assert "indented" in feedback and "Block 1 (textwrap.py)" in feedback


def test_a_tab_indented_file_gets_tabs_for_lines_written_with_spaces():
    search = (
        "func (r *genericReplacer) Replace(s string) string {\n"
        "\tbuf := make(appendSliceWriter, 0, len(s))\n"
    )
    replace = (
        "func (r *genericReplacer) Replace(s string) string {\n"
        "    // Appends to a fresh buffer.\n"
        "\tbuf := make(appendSliceWriter, 0, len(s))\n"
    )
    reply = block("replace.go", search.replace("\t", "    "), replace.replace("\t", "    "))

    result = apply(reply, {"replace.go": REPLACE_GO})["replace.go"]

    assert result == REPLACE_GO.replace(
        search, search.replace("{\n", "{\n\t// Appends to a fresh buffer.\n", 1)
    )


def test_a_docstring_underline_inside_search_is_text_not_a_divider():
    search = (
        "Main API\n========\nrun(...): Runs a command, waits for it to complete, then returns a\n"
    )
    replace = search.replace("Runs a command", "Runs a command (or a program)")
    reply = block("subprocess.py", search, replace)

    result = apply(reply, {"subprocess.py": SUBPROCESS})["subprocess.py"]

    assert result == SUBPROCESS.replace(
        "run(...): Runs a command,", "run(...): Runs a command (or a program),"
    )


def test_an_indented_block_is_an_error_not_skipped():
    reply = (
        block("textwrap.py", LOOP, LOOP_AFTER)
        + "\n"
        + "".join(
            "    " + line for line in block("textwrap.py", "x\n", "y\n").splitlines(keepends=True)
        )
    )

    with pytest.raises(FormatError, match="is indented: the markers"):
        edit_format("search_replace").parse(reply)


def test_a_search_of_one_blank_line_goes_to_the_matcher():
    feedback = refusal(block("textwrap.py", "\n", "\n# note\n"), {"textwrap.py": TEXTWRAP})

    assert "matches" in feedback and "places (exact)" in feedback
    assert "creates a new file" not in feedback


def test_a_real_ambiguity_shows_both_places_and_asks_for_a_line_that_differs():
    search = '    """\n    w = TextWrapper(width=width, **kwargs)\n    return w.(text)\n'
    reply = block("textwrap.py", search, search.replace("w.(text)", "w.wrap(text.strip())"))

    feedback = refusal(reply, {"textwrap.py": TEXTWRAP})

    assert "matches 2 places (close match), at lines 382-384, 394-396" in feedback
    assert "  384 |     return w.wrap(text)" in feedback
    assert "  396 |     return w.fill(text)" in feedback
    assert "a line before or after it that differs" in feedback


def test_one_place_seen_a_line_apart_is_not_ambiguous():
    search = '    """\n    w = TextWrapper(width=width, **kwargs)\n    return w.wrapl(text)\n'
    reply = block("textwrap.py", search, search.replace("w.wrapl(text)", "w.wrap(text.strip())"))

    result = apply(reply, {"textwrap.py": TEXTWRAP})["textwrap.py"]

    assert result == TEXTWRAP.replace(
        "    return w.wrap(text)\n", "    return w.wrap(text.strip())\n"
    )


def test_a_file_with_crlf_endings_and_form_feeds_keeps_its_bytes():
    original = TEXTWRAP.replace("\n", "\r\n").replace("# -- Public", "\x0c# -- Public")
    reply = block("textwrap.py", LOOP, LOOP_AFTER)

    result = apply(reply, {"textwrap.py": original})["textwrap.py"]

    assert result == INTENDED.replace("\n", "\r\n").replace("# -- Public", "\x0c# -- Public")


# --- unified diffs ------------------------------------------------------------------


@pytest.fixture
def workspace(tmp_path) -> GitWorkspace:
    root = tmp_path / "repo"
    (root / "lib").mkdir(parents=True)
    (root / "lib" / "textwrap.py").write_text(TEXTWRAP)
    (root / "lib" / "replace.go").write_text(REPLACE_GO)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "-c", "user.name=T", "-c", "user.email=t@l", "commit", "-qm", "real files")
    return GitWorkspace(root)


def attempt(workspace: GitWorkspace, diff: str):
    return scripted_attempt(workspace, f"```diff\n{diff}```\n", [], ("lib/",), fmt="unified_diff")


LOOP_DIFF = (
    "--- a/lib/textwrap.py\n+++ b/lib/textwrap.py\n"
    "@@ -188,8 +188,8 @@ class TextWrapper:\n"
    "         i = 0\n"
    "         patsearch = self.sentence_end_re.search\n"
    "         while i < len(chunks)-1:\n"
    '             if chunks[i+1] == " " and patsearch(chunks[i]):\n'
    '-                chunks[i+1] = "  "\n'
    '+                chunks[i+1] = "   "  # three spaces\n'
    "                 i += 2\n"
    "             else:\n"
    "                 i += 1\n"
)


def test_a_diff_with_a_context_typo_keeps_the_files_line(workspace):
    typo = LOOP_DIFF.replace("patsearch = self.sentence", "patsearch = self.sentense")

    result = attempt(workspace, typo)

    assert result.outcome == Outcome.PASSED, result.message
    assert (workspace.root / "lib" / "textwrap.py").read_text() == INTENDED


def test_a_diff_with_stale_line_numbers_and_wrong_counts_applies(workspace):
    stale = LOOP_DIFF.replace("@@ -188,8 +188,8 @@", "@@ -171,5 +172,9 @@")

    result = attempt(workspace, stale)

    assert result.outcome == Outcome.PASSED, result.message
    assert (workspace.root / "lib" / "textwrap.py").read_text() == INTENDED


def test_a_diff_that_deletes_a_file_lands_in_the_savepoint(workspace):
    deletion = "--- a/lib/replace.go\n+++ /dev/null\n@@ -1,3 +0,0 @@\n" + "".join(
        "-" + line for line in REPLACE_GO.splitlines(keepends=True)[:3]
    )

    result = attempt(workspace, deletion)

    assert result.outcome == Outcome.PASSED, result.message
    assert not (workspace.root / "lib" / "replace.go").exists()
    assert "lib/replace.go" not in git(workspace.root, "ls-files")
    assert git(workspace.root, "status", "--porcelain") == ""


def test_a_diff_that_creates_an_empty_file_creates_it(workspace):
    empty = (
        "diff --git a/lib/__init__.py b/lib/__init__.py\n"
        "new file mode 100644\nindex 0000000..e69de29\n"
    )

    result = attempt(workspace, empty + LOOP_DIFF)

    assert result.outcome == Outcome.PASSED, result.message
    assert (workspace.root / "lib" / "__init__.py").read_bytes() == b""
    assert "lib/__init__.py" in git(workspace.root, "ls-files")


def test_a_diff_that_creates_a_file_without_git_headers_creates_it(workspace):
    created = (
        "--- /dev/null\n+++ b/lib/wrapping.py\n@@ -0,0 +1,2 @@\n"
        "+from .textwrap import wrap\n+__all__ = ['wrap']\n"
    )

    result = attempt(workspace, created)

    assert result.outcome == Outcome.PASSED, result.message
    assert (workspace.root / "lib" / "wrapping.py").read_text() == (
        "from .textwrap import wrap\n__all__ = ['wrap']\n"
    )


def test_a_diff_that_renames_a_file_moves_it_with_its_changes(workspace):
    renamed = LOOP_DIFF.replace("+++ b/lib/textwrap.py", "+++ b/lib/wrapping.py")

    result = attempt(workspace, renamed)

    assert result.outcome == Outcome.PASSED, result.message
    assert not (workspace.root / "lib" / "textwrap.py").exists()
    assert (workspace.root / "lib" / "wrapping.py").read_text() == INTENDED


def test_a_binary_section_is_refused_by_name():
    binary = (
        "diff --git a/lib/logo.png b/lib/logo.png\nnew file mode 100644\n"
        "index 0000000..1d2a3b4\nGIT binary patch\nliteral 12\nTcmZ?wbhEHbGhq;700aOA\n\n"
        "literal 0\nHcmV?d00001\n\n"
    ) + LOOP_DIFF

    with pytest.raises(FormatError, match=r"lib/logo.png: binary patches cannot be applied"):
        edit_format("unified_diff").parse(binary)


def test_a_mode_change_is_refused_not_ignored():
    mode = "diff --git a/lib/textwrap.py b/lib/textwrap.py\nold mode 100644\nnew mode 100755\n"

    with pytest.raises(FormatError, match="changing a file's mode is not supported"):
        edit_format("unified_diff").parse(mode + LOOP_DIFF)


# --- the property: same bytes, or a refusal ----------------------------------------


def _random_edit(rng: random.Random, lines: list[str]) -> tuple[int, int, list[str]]:
    """Replace lines [start, end) of a real file with changed ones."""
    while True:
        start = rng.randrange(3, len(lines) - 10)
        end = start + rng.randint(0, 3)
        if any(line.strip() for line in lines[start : end + 1]):
            break
    kind = rng.choice(["change", "insert", "delete"])
    body = lines[start:end]
    if kind == "delete" and body:
        return start, end, []
    indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
    added = [f"{indent}autopack_{rng.randrange(10**6)} = {rng.randrange(100)}\n"]
    if kind == "insert" or not body:
        return start, start, added
    return start, end, [body[0].rstrip("\n") + "  # changed\n", *body[1:], *added]


def _reply(lines, start, end, new, context: int, slip: str, rng: random.Random) -> str:
    before = lines[max(0, start - context) : start]
    after = lines[end : end + context]
    search, replace = before + lines[start:end], before + new
    search, replace = search + after, replace + after
    if slip == "typo":
        shared = [k for k, line in enumerate(before + after) if len(line.strip()) > 6]
        if not shared:
            return ""
        k = shared[rng.randrange(len(shared))]
        sk = k if k < len(before) else len(search) - len(after) + (k - len(before))
        rk = k if k < len(before) else len(replace) - len(after) + (k - len(before))
        line = search[sk]
        spot = rng.randrange(len(line) - len(line.lstrip()), len(line.rstrip()))
        typo = line[:spot] + ("x" if line[spot] != "x" else "y") + line[spot + 1 :]
        search = [typo if i == sk else text for i, text in enumerate(search)]
        replace = [typo if i == rk else text for i, text in enumerate(replace)]
    elif slip in ("indent+4", "indent-4"):
        by = 4 if slip == "indent+4" else -4
        if by < 0 and any(
            line.strip() and not line.startswith("    ") for line in search + replace
        ):
            return ""
        search = [shifted(line, by) for line in search]
        replace = [shifted(line, by) for line in replace]
    return block("textwrap.py", "".join(search), "".join(replace))


@pytest.mark.parametrize("slip", ["none", "typo", "indent+4", "indent-4"])
def test_random_real_edits_give_the_same_bytes_or_a_refusal(slip):
    rng = random.Random(f"edits-{slip}")
    lines = TEXTWRAP.splitlines(keepends=True)
    applied = refused = 0
    for _ in range(60):
        start, end, new = _random_edit(rng, lines)
        intended = "".join(lines[:start] + new + lines[end:])
        reply = _reply(lines, start, end, new, rng.randint(2, 4), slip, rng)
        if not reply:
            continue
        try:
            result = apply(reply, {"textwrap.py": TEXTWRAP})["textwrap.py"]
        except ApplyError:
            refused += 1
            continue
        assert result == intended, reply
        applied += 1
    assert applied >= 40 and (slip != "none" or refused == 0), (applied, refused)


@pytest.mark.parametrize("slip", ["none", "stale numbers", "no prefixes"])
def test_random_real_edits_as_unified_diffs_give_the_same_bytes(slip):
    import difflib

    rng = random.Random(f"diffs-{slip}")
    lines = TEXTWRAP.splitlines(keepends=True)
    for _ in range(40):
        start, end, new = _random_edit(rng, lines)
        intended = "".join(lines[:start] + new + lines[end:])
        diff = "".join(
            difflib.unified_diff(
                lines, intended.splitlines(keepends=True), "a/textwrap.py", "b/textwrap.py"
            )
        )
        if slip == "stale numbers":
            diff = diff.replace("@@ -", "@@ -1", 1)
        elif slip == "no prefixes":
            diff = diff.replace("a/textwrap.py", "textwrap.py").replace(
                "b/textwrap.py", "textwrap.py"
            )
        result = apply(f"```diff\n{diff}```\n", {"textwrap.py": TEXTWRAP}, "unified_diff")

        assert result["textwrap.py"] == intended, diff


# --- autopack apply -------------------------------------------------------------------


def autopack_apply(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    autopack = Path(sys.executable).parent / "autopack"
    # No database settings at all: the command must not need one.
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd)}
    env.update((name, os.environ[name]) for name in ["PYTHONPATH"] if name in os.environ)
    return subprocess.run(
        [str(autopack), "apply", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_autopack_apply_prints_the_diff_and_writes_unless_dry_run(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "textwrap.py").write_text(TEXTWRAP)
    typo = LOOP.replace("self.sentence_end_re", "self.sentense_end_re")
    reply = tmp_path / "reply.md"
    reply.write_text(block("lib/textwrap.py", typo, LOOP_AFTER.replace("sentence_", "sentense_")))

    dry = autopack_apply(str(reply), "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert '+                chunks[i+1] = "   "  # three spaces' in dry.stdout
    assert "sentense" not in dry.stdout
    assert (tmp_path / "lib" / "textwrap.py").read_text() == TEXTWRAP

    done = autopack_apply(str(reply), "--repo", str(tmp_path), "--scope", "lib/", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == dry.stdout
    assert (tmp_path / "lib" / "textwrap.py").read_text() == INTENDED


def test_autopack_apply_refuses_with_the_engines_message(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "textwrap.py").write_text(TEXTWRAP)
    reply = tmp_path / "reply.md"
    reply.write_text(block("lib/textwrap.py", "        else:\n", "        elif x:\n"))

    ambiguous = autopack_apply(str(reply), cwd=tmp_path)
    reply.write_text(block("../outside.py", "", "x = 1\n"))
    outside = autopack_apply(str(reply), cwd=tmp_path)
    missing = autopack_apply(str(tmp_path / "nope.md"), cwd=tmp_path)

    assert ambiguous.returncode == 1 and "matches 3 places (exact)" in ambiguous.stderr
    assert ambiguous.stdout == ""
    assert (tmp_path / "lib" / "textwrap.py").read_text() == TEXTWRAP
    assert outside.returncode == 1 and "'..' is not allowed" in outside.stderr
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    assert not (tmp_path / ".autopack").exists()  # no database, no home
