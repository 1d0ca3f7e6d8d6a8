"""A hostile Builder against the governed apply path and the worktree's git: symlinks into
git metadata, a redirected git pointer, git drivers and hooks, and replies that are too
big, binary or not Unicode. Each ends as a clear attempt outcome, nothing lands, and no
command the repository names runs outside the sandbox. Engine only: real git, no
database."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runs.engine.attempt import Limits
from runs.engine.outcomes import Outcome, RepositoryError
from runs.engine.workspace import GitWorkspace
from tests.attempts import scripted_attempt
from tests.builds import block, git, make_repo

ADD_LINE = block("inventory/stock.py", "", "LIMIT = 5\n")


@pytest.fixture
def origin(tmp_path) -> Path:
    return make_repo(tmp_path / "inventory")


@pytest.fixture
def workspace(origin, tmp_path) -> GitWorkspace:
    """A run's worktree, as runs get them: its `.git` is a pointer file."""
    return GitWorkspace.prepare(str(origin), "main", "escape", tmp_path / "home")


def commit_link(workspace: GitWorkspace, name: str, target: str) -> None:
    """A symlink in the last savepoint, as an earlier phase (or the repository) left it."""
    os.symlink(target, workspace.root / name)
    workspace.savepoint("link", [name])


def attempt(workspace: GitWorkspace, reply: str, scope=("inventory/",), **options):
    return scripted_attempt(workspace, reply, [], tuple(scope), **options)


def test_a_diff_that_creates_a_symlink_into_git_metadata_is_refused(workspace):
    pointer = (workspace.root / ".git").read_text()
    diff = (
        "diff --git a/inventory/gitlink b/inventory/gitlink\n"
        "new file mode 120000\n"
        "--- /dev/null\n"
        "+++ b/inventory/gitlink\n"
        "@@ -0,0 +1 @@\n"
        "+../.git\n"
        "\\ No newline at end of file\n"
    )

    result = attempt(workspace, f"```diff\n{diff}```\n", fmt="unified_diff")

    assert result.outcome == Outcome.POLICY_VIOLATION, result.message
    assert "inventory/gitlink" in result.message and "git metadata" in result.message
    assert not os.path.lexists(workspace.root / "inventory" / "gitlink")  # rolled back
    assert (workspace.root / ".git").read_text() == pointer
    assert workspace.head() == git(workspace.root, "rev-parse", "HEAD")


def test_a_diff_that_creates_a_symlink_out_of_the_worktree_is_refused(workspace, tmp_path):
    diff = (
        "diff --git a/inventory/out b/inventory/out\n"
        "new file mode 120000\n"
        "--- /dev/null\n"
        "+++ b/inventory/out\n"
        "@@ -0,0 +1 @@\n"
        f"+{tmp_path}\n"
        "\\ No newline at end of file\n"
    )

    result = attempt(workspace, f"```diff\n{diff}```\n", fmt="unified_diff")

    assert result.outcome == Outcome.POLICY_VIOLATION
    assert "leaves the worktree" in result.message
    assert not os.path.lexists(workspace.root / "inventory" / "out")


@pytest.mark.parametrize(
    ("link", "target", "path", "rule"),
    [
        # The worktree's pointer file, overwritten through a link to it.
        ("inventory/gitlink", "../.git", "inventory/gitlink", "leads into git metadata"),
        # A link inside the worktree to a folder outside the phase's scope.
        ("inventory/tests", "../tests", "inventory/tests/test_new.py", "outside the phase"),
    ],
)
def test_writing_through_a_committed_symlink_is_refused(workspace, link, target, path, rule):
    commit_link(workspace, link, target)
    pointer = (workspace.root / ".git").read_text()

    result = attempt(workspace, block(path, "", "x = 1\n"))

    assert result.outcome == Outcome.POLICY_VIOLATION
    assert path in result.message and rule in result.message
    assert (workspace.root / ".git").read_text() == pointer
    assert not (workspace.root / "tests" / "test_new.py").exists()


def test_writing_into_a_git_folder_through_a_symlink_is_refused(origin):
    """In a repository's own checkout `.git` is a folder: its config and hooks are there."""
    checkout = GitWorkspace(origin)
    commit_link(checkout, "inventory/meta", "../.git")
    config = (origin / ".git" / "config").read_text()

    result = attempt(checkout, block("inventory/meta/config", "", "[core]\n"))

    assert result.outcome == Outcome.POLICY_VIOLATION
    assert "leads into git metadata" in result.message
    assert (origin / ".git" / "config").read_text() == config


def test_an_edit_naming_a_folder_is_refused_not_a_crash(workspace):
    result = attempt(workspace, block("inventory", "", "x = 1\n"))

    assert result.outcome == Outcome.POLICY_VIOLATION
    assert "is a directory" in result.message


def test_a_path_with_a_control_character_is_refused_not_a_crash(workspace):
    nul = attempt(workspace, block("inventory/a\0b.py", "", "x = 1\n"))
    escape = attempt(workspace, block("inventory/a\x1bb.py", "", "x = 1\n"))

    assert nul.outcome == escape.outcome == Outcome.POLICY_VIOLATION
    assert nul.message.startswith("inventory/a\\x00b.py: contains the control character")
    assert "\\x1b" in escape.message
    assert git(workspace.root, "status", "--porcelain") == ""


def test_a_reply_with_a_lone_surrogate_is_a_format_error(workspace):
    result = attempt(workspace, block("inventory/stock.py", "", "NAME = '\ud800'\n"))

    assert result.outcome == Outcome.FORMAT_ERROR
    assert "not valid Unicode" in result.message and "U+D800" in result.message
    assert "plain UTF-8" in result.feedback
    assert git(workspace.root, "status", "--porcelain") == ""


def test_files_over_the_size_limits_are_refused(workspace):
    limits = Limits(max_file_bytes=10_000, max_change_bytes=15_000)
    big = "x = 1\n" * 2_000  # 12,000 bytes
    half = "y = 2\n" * 1_500  # 9,000 bytes: under the file limit

    too_big = attempt(workspace, block("inventory/big.py", "", big), limits=limits)
    too_much = attempt(
        workspace,
        block("inventory/a.py", "", half) + block("inventory/b.py", "", half),
        limits=limits,
    )
    fits = attempt(workspace, block("inventory/a.py", "", half), limits=limits)

    assert too_big.outcome == Outcome.POLICY_VIOLATION
    assert "12000 bytes, over the limit of 10000" in too_big.message
    assert "max_file_bytes" in too_big.message
    assert too_much.outcome == Outcome.POLICY_VIOLATION
    assert "adds 18000 bytes, over the limit of 15000" in too_much.message
    assert fits.outcome == Outcome.PASSED
    assert not (workspace.root / "inventory" / "big.py").exists()
    assert not (workspace.root / "inventory" / "b.py").exists()


def test_binary_content_needs_the_phase_to_allow_it(workspace):
    reply = block("inventory/blob.py", "", "DATA = 'a\0b'\n")

    refused = attempt(workspace, reply)
    allowed = attempt(workspace, reply, allow_binary=True)

    assert refused.outcome == Outcome.POLICY_VIOLATION
    assert "binary content" in refused.message and "allow_binary" in refused.message
    assert allowed.outcome == Outcome.PASSED
    assert (workspace.root / "inventory" / "blob.py").read_bytes() == b"DATA = 'a\0b'\n"


def test_a_redirected_git_pointer_stops_autopack_before_git_runs(workspace, tmp_path):
    """The attack: a git directory the Builder wrote, with an fsmonitor command, and the
    worktree's pointer swapped to it. Autopack's next git command must not run it."""
    marker = tmp_path / "fsmonitor-ran"
    evil = tmp_path / "evil.git"
    git(tmp_path, "init", "-q", "--bare", str(evil))
    git(evil, "config", "core.fsmonitor", f"touch {marker}; false")
    (evil / "gitdir").write_text(str(workspace.root / ".git") + "\n")
    (workspace.root / ".git").write_text(f"gitdir: {evil}\n")

    with pytest.raises(RepositoryError, match="git pointer .* changed"):
        workspace.rollback()
    with pytest.raises(RepositoryError):
        workspace.diff(["inventory/stock.py"])
    assert not marker.exists()


def test_a_pointer_into_the_worktree_or_to_a_symlink_is_refused(workspace, tmp_path):
    root = workspace.root
    (root / "inventory" / "fake.git").mkdir()
    (root / ".git").write_text("gitdir: inventory/fake.git\n")
    with pytest.raises(RepositoryError, match="leads into the worktree"):
        workspace.head()

    (root / ".git").unlink()
    os.symlink(tmp_path, root / ".git")
    with pytest.raises(RepositoryError, match="is a symlink"):
        GitWorkspace(root)


def test_hooks_fsmonitor_and_drivers_the_repository_names_never_run(workspace, origin, tmp_path):
    """Attributes are files the Builder may write; the drivers they name come from git
    configuration. Autopack's git turns every driver off, and runs no hook or fsmonitor."""
    ran = tmp_path / "ran"
    ran.mkdir()
    for key, name in [
        ("core.fsmonitor", "fsmonitor"),
        ("filter.evil.clean", "clean"),
        ("filter.evil.smudge", "smudge"),
        ("filter.evil.process", "process"),
        ("diff.evil.textconv", "textconv"),
        ("diff.evil.command", "diff"),
        ("merge.evil.driver", "merge"),
    ]:
        git(origin, "config", key, f"touch {ran / name}; cat")
    git(origin, "config", "filter.evil.required", "true")
    hooks = origin / ".git" / "hooks"
    for hook in ("pre-commit", "post-commit", "post-checkout", "reference-transaction"):
        (hooks / hook).write_text(f"#!/bin/sh\ntouch {ran / hook}\n")
        (hooks / hook).chmod(0o755)
    reply = block("inventory/.gitattributes", "", "* filter=evil diff=evil merge=evil\n") + block(
        "inventory/limits.py", "", "LIMIT = 5\n"
    )

    result = attempt(workspace, reply)
    workspace.savepoint("with attributes", result.changed_files)
    (workspace.root / "inventory" / "stock.py").write_text("changed\n")
    workspace.changed_lines()
    workspace.rollback()

    assert result.outcome == Outcome.PASSED, result.message
    assert sorted(p.name for p in ran.iterdir()) == []
    assert (workspace.root / "inventory" / "limits.py").read_text() == "LIMIT = 5\n"
    assert "changed" not in (workspace.root / "inventory" / "stock.py").read_text()
