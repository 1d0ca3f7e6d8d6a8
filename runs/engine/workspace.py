"""The run's git worktree on its integration branch: the only place edits are written.

The base branch is never written: each run works on `autopack/<run_id>` in its own
worktree, commits one savepoint per passed phase, and rolls failed attempts back to the
last savepoint.
"""

from __future__ import annotations

import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import git

from runs.engine.outcomes import RepositoryError

AUTHOR = "Autopack <autopack@localhost>"
_GIT_CONFIG = [
    "-c",
    "user.name=Autopack",
    "-c",
    "user.email=autopack@localhost",
    "-c",
    "commit.gpgsign=false",
    "-c",
    "core.hooksPath=/dev/null",
]


def _clone_dir(url: str, repos: Path) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", url.rstrip("/").removesuffix(".git"))[-120:]
    return repos / slug


HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@")


class GitWorkspace:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.repo = git.Repo(root)
        # Entries of the worktree that belong to the project environment (a node_modules
        # link): untracked, and never removed by a rollback.
        self.keep: tuple[str, ...] = ()

    @classmethod
    def prepare(
        cls, source: str, base_branch: str, run_id: str, home: Path, is_url: bool
    ) -> GitWorkspace:
        """Open the run's worktree, creating the clone, branch and worktree when missing."""
        origin = cls._origin(source, home, is_url)
        worktree = home / "workspaces" / run_id
        branch = f"autopack/{run_id}"
        if (worktree / ".git").exists():
            return cls(worktree)
        heads = {head.name for head in origin.heads}
        worktree.parent.mkdir(parents=True, exist_ok=True)
        if branch in heads:
            origin.git.worktree("add", str(worktree), branch)
        else:
            base = base_branch if base_branch in heads else f"origin/{base_branch}"
            try:
                origin.git.rev_parse("--verify", f"{base}^{{commit}}")
            except git.GitCommandError:
                raise RepositoryError(
                    f"Base branch {base_branch!r} does not exist in {source}."
                ) from None
            origin.git.worktree("add", "-b", branch, str(worktree), base)
        return cls(worktree)

    @staticmethod
    def _origin(source: str, home: Path, is_url: bool) -> git.Repo:
        if not is_url:
            try:
                return git.Repo(source)
            except (git.InvalidGitRepositoryError, git.NoSuchPathError):
                raise RepositoryError(f"{source} is not a git repository.") from None
        clone = _clone_dir(source, home / "repos")
        try:
            if clone.exists():
                repo = git.Repo(clone)
                repo.remotes.origin.fetch()
                return repo
            clone.parent.mkdir(parents=True, exist_ok=True)
            return git.Repo.clone_from(source, clone)
        except git.GitCommandError as exc:
            raise RepositoryError(f"Cannot clone {source}: {exc.stderr.strip()}") from None

    def head(self) -> str:
        return self.repo.head.commit.hexsha

    def committed_at(self, revision: str = "HEAD") -> datetime:
        return self.repo.commit(revision).committed_datetime.astimezone(UTC)

    def changed_lines(self) -> dict[str, set[int] | None]:
        """What the worktree changed since HEAD: for each path, the changed line numbers
        of its new version (a deletion marks the line it happened at); None for a file
        that is new. Deleted files are left out: they have no new version."""
        changes: dict[str, set[int] | None] = {}
        diff = self.repo.git.execute(
            ["git", "-c", "core.quotePath=false", "diff", "HEAD", "--unified=0", "--no-color"]
            + ["--no-ext-diff", "--no-renames", "--diff-filter=M"]
        )
        lines: set[int] = set()
        for line in diff.splitlines():
            if line.startswith("+++ b/"):
                lines = set()
                changes[line[6:]] = lines
            elif match := HUNK.match(line):
                start, count = int(match.group(1)), int(match.group(2) or 1)
                lines.update(range(start, start + count) if count else (start,))
        added = self.repo.git.diff("HEAD", "-z", "--name-only", "--diff-filter=A", "--no-renames")
        untracked = self.repo.git.ls_files("-z", "--others", "--exclude-standard")
        for name in [*added.split("\0"), *untracked.split("\0")]:
            if name and name not in self.keep:
                changes[name] = None
        return changes

    def read_text(self, path: str) -> str | None:
        file = self.root / path
        if not file.is_file():
            return None
        return file.read_text(encoding="utf-8", errors="replace")

    def write(self, changes: dict[str, str | None]) -> None:
        root = os.path.realpath(self.root)
        for path, content in changes.items():
            target = self.root / path
            # Defence in depth: the path policy has already passed every path.
            if not os.path.realpath(target).startswith(root + os.sep):
                raise ValueError(f"refusing to write outside the worktree: {path}")
            if content is None:
                target.unlink(missing_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")

    def git_apply(self, patch: str) -> bool:
        """Apply a unified diff with git (atomic: all hunks or none); three-way when the
        patch carries blob ids. False when git cannot apply it."""
        modes = [[]] + ([["--3way"]] if "\nindex " in "\n" + patch else [])
        with tempfile.NamedTemporaryFile("w", suffix=".patch", delete=False) as handle:
            handle.write(patch)
        try:
            for mode in modes:
                try:
                    self.repo.git.apply(*mode, "--check", handle.name)
                except git.GitCommandError:
                    continue
                try:
                    self.repo.git.apply(*mode, handle.name)
                    return True
                except git.GitCommandError:
                    self.rollback()  # a failed three-way merge can leave conflict markers
            return False
        finally:
            os.unlink(handle.name)

    def diff(self, paths: list[str]) -> str:
        if not paths:
            return ""
        self.repo.git.add("-A", "--", *paths)
        return self.repo.git.diff("--cached", "--no-color", "--no-ext-diff")

    def savepoint(self, message: str, paths: list[str]) -> str:
        if paths:
            self.repo.git.add("-A", "--", *paths)
        self.repo.git.execute(
            [
                "git",
                *_GIT_CONFIG,
                "commit",
                "--allow-empty",
                "--no-verify",
                f"--author={AUTHOR}",
                "-m",
                message,
            ]
        )
        return self.head()

    def rollback(self) -> None:
        """Back to the last savepoint: tracked changes reverted, created files removed,
        ignored build outputs left alone."""
        self.repo.git.reset("--hard", "HEAD")
        self.repo.git.clean("-fd", *(f"--exclude=/{entry}" for entry in self.keep))
