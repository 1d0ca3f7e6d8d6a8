"""The run's git worktree on its integration branch: the only place edits are written.

The base branch is never written: each run works on `autopack/<run_id>` in its own
worktree, commits one savepoint per passed phase, and rolls failed attempts back to the
last savepoint.

Every git command Autopack runs names the worktree's git directory explicitly, after
checking that the worktree's `.git` pointer still leads where it did (edits and tests
must not redirect it), and runs with a fixed configuration: no hooks, no fsmonitor, and
no filter or merge driver, whatever the repository's files ask for.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import git

from runs.engine.outcomes import RepositoryError

AUTHOR = "Autopack <autopack@localhost>"
SAFE_CONFIG = (
    ("core.hooksPath", "/dev/null"),
    ("core.fsmonitor", "false"),
    ("core.pager", "cat"),
    ("safe.bareRepository", "explicit"),
    ("protocol.ext.allow", "never"),
    ("commit.gpgsign", "false"),
    ("user.name", "Autopack"),
    ("user.email", "autopack@localhost"),
)
# Configured drivers that attributes (which the Builder may write) could invoke, and the
# value that turns each off: filters pass content through, merges fail, no text
# conversion or external diff.
_DRIVERS = re.compile(
    r"^(?:filter\.(?P<filter>.+)\.(?:clean|smudge|process)"
    r"|filter\.(?P<required>.+)\.required|merge\..+\.driver|diff\..+\.(?:textconv|command))$"
)


def _config_env(pairs: list[tuple[str, str]]) -> dict[str, str]:
    env = {"GIT_CONFIG_COUNT": str(len(pairs)), "GIT_TERMINAL_PROMPT": "0"}
    for i, (key, value) in enumerate(pairs):
        env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = key, value
    return env


def _driver_overrides(env: dict[str, str], cwd: Path) -> list[tuple[str, str]]:
    listed = subprocess.run(
        ["git", "config", "--name-only", "--get-regexp", r"^(filter|merge|diff)\."],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
    ).stdout.decode("utf-8", "replace")
    overrides = []
    for name in dict.fromkeys(listed.split()):
        if match := _DRIVERS.match(name):
            if match.group("required"):
                overrides.append((name, "false"))
            elif name.startswith("merge."):
                overrides.append((name, "false"))
            elif name.endswith(".textconv"):
                overrides.append((name, "cat"))
            else:
                overrides.append((name, ""))
    return overrides


def safe_env(cwd: Path, git_dir: Path | None = None, work_tree: Path | None = None) -> dict:
    """Environment variables for git commands on a repository Autopack does not trust:
    the fixed configuration, and the git directory and worktree when given."""
    env = {}
    if git_dir is not None:
        env["GIT_DIR"] = str(git_dir)
    if work_tree is not None:
        env["GIT_WORK_TREE"] = str(work_tree)
    pairs = list(SAFE_CONFIG)
    pairs += _driver_overrides({**env, **_config_env(pairs)}, cwd)
    return {**env, **_config_env(pairs)}


def git_dir_of(worktree: Path, common: Path | None = None) -> Path:
    """The git directory a worktree's `.git` names, checked: the pointer is a plain file
    (or the repository's own folder), it does not lead into the worktree, it is the
    worktree the git directory knows, and it belongs to `common` when that is given.
    Raises RepositoryError when anything was tampered with."""
    marker = worktree / ".git"
    if marker.is_symlink():
        raise RepositoryError(f"{marker} is a symlink; Autopack will not use this worktree.")
    if marker.is_dir():
        return marker.resolve()  # a repository's main checkout
    if not marker.is_file():
        raise RepositoryError(f"{worktree} is not a git worktree (no .git).")
    text = marker.read_text(errors="replace").strip()
    if not text.startswith("gitdir:") or "\n" in text:
        raise RepositoryError(f"{marker} is not a git pointer; it was changed.")
    gitdir = (worktree / text.removeprefix("gitdir:").strip()).resolve()
    back = gitdir / "gitdir"
    problem = ""
    if gitdir.is_relative_to(worktree.resolve()):
        problem = "leads into the worktree"
    elif not back.is_file() or Path(back.read_text().strip()).resolve() != marker.resolve():
        problem = "names a git directory that does not know this worktree"
    elif common is not None and _common(gitdir) != common.resolve():
        problem = f"names a git directory of another repository than {common}"
    if problem:
        raise RepositoryError(
            f"The worktree's git pointer {marker} {problem}: it was changed from outside "
            "Autopack or by the code being built. Autopack stopped rather than use it."
        )
    return gitdir


def _common(gitdir: Path) -> Path:
    common = gitdir / "commondir"
    if common.is_file():
        return (gitdir / common.read_text().strip()).resolve()
    return gitdir


def run_git(worktree: Path, *args: str) -> bytes:
    """`git args...` on a worktree, safely (see the module's doc); stdout as bytes."""
    env = safe_env(worktree, git_dir_of(worktree), worktree)
    return subprocess.run(
        ["git", *args], cwd=worktree, env={**os.environ, **env}, capture_output=True, check=True
    ).stdout


def list_files(worktree: Path) -> list[str]:
    """Tracked and new (not ignored) files of a worktree."""
    listed = run_git(worktree, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    return [name for name in listed.decode("utf-8", "surrogateescape").split("\0") if name]


def _clone_dir(url: str, repos: Path) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", url.rstrip("/").removesuffix(".git"))[-120:]
    return repos / slug


HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@")


def write_files(root: Path, changes: dict[str, str | None]) -> None:
    """New contents (None: delete) of paths under `root` the path policy has passed."""
    real_root = os.path.realpath(root)
    for path, content in changes.items():
        target = root / path
        # Defence in depth: the path policy has already passed every path.
        if not os.path.realpath(target).startswith(real_root + os.sep):
            raise ValueError(f"refusing to write outside the worktree: {path}")
        if content is None:
            target.unlink(missing_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")


class GitWorkspace:
    def __init__(self, root: Path, common: Path | None = None) -> None:
        self.root = root
        # The repository this worktree must belong to; the first check fixes it when the
        # caller does not know it.
        self.git_dir = git_dir_of(root, common)
        self._git = git.Git(root)
        # Entries of the worktree that belong to the project environment (a node_modules
        # link): untracked, and never removed by a rollback.
        self.keep: tuple[str, ...] = ()

    @property
    def git(self) -> git.Git:
        """The worktree's git commands, after checking its git pointer again, with the
        drivers configured right now turned off."""
        if git_dir_of(self.root) != self.git_dir:
            raise RepositoryError(
                f"The worktree's git pointer {self.root / '.git'} no longer names "
                f"{self.git_dir}: it was changed during the run. Autopack stopped rather than "
                "use it."
            )
        self._git.update_environment(**safe_env(self.root, self.git_dir, self.root))
        return self._git

    @classmethod
    def prepare(
        cls, source: str, base_branch: str, run_id: str, home: Path, is_url: bool
    ) -> GitWorkspace:
        """Open the run's worktree, creating the clone, branch and worktree when missing."""
        origin = cls._origin(source, home, is_url)
        common = Path(origin.git_dir)
        worktree = home / "workspaces" / run_id
        branch = f"autopack/{run_id}"
        if os.path.lexists(worktree / ".git"):
            return cls(worktree, common)
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
        return cls(worktree, common)

    @staticmethod
    def _origin(source: str, home: Path, is_url: bool) -> git.Repo:
        if not is_url:
            try:
                repo = git.Repo(source)
            except (git.InvalidGitRepositoryError, git.NoSuchPathError):
                raise RepositoryError(f"{source} is not a git repository.") from None
            repo.git.update_environment(**safe_env(Path(source)))
            return repo
        clone = _clone_dir(source, home / "repos")
        try:
            if clone.exists():
                repo = git.Repo(clone)
                repo.git.update_environment(**safe_env(clone))
                repo.remotes.origin.fetch()
                return repo
            clone.parent.mkdir(parents=True, exist_ok=True)
            repo = git.Repo.clone_from(
                source, clone, env={**os.environ, **_config_env(list(SAFE_CONFIG))}
            )
            repo.git.update_environment(**safe_env(clone))
            return repo
        except git.GitCommandError as exc:
            raise RepositoryError(f"Cannot clone {source}: {exc.stderr.strip()}") from None

    def head(self) -> str:
        return self.git.rev_parse("HEAD")

    def committed_at(self, revision: str = "HEAD") -> datetime:
        return datetime.fromisoformat(self.git.log("-1", "--format=%cI", revision)).astimezone(UTC)

    def changed_lines(self) -> dict[str, set[int] | None]:
        """What the worktree changed since HEAD: for each path, the changed line numbers
        of its new version (a deletion marks the line it happened at); None for a file
        that is new. Deleted files are left out: they have no new version."""
        changes: dict[str, set[int] | None] = {}
        diff = self.git.execute(
            ["git", "-c", "core.quotePath=false", "diff", "HEAD", "--unified=0", "--no-color"]
            + ["--no-ext-diff", "--no-textconv", "--no-renames", "--diff-filter=M"]
        )
        lines: set[int] = set()
        for line in diff.splitlines():
            if line.startswith("+++ b/"):
                lines = set()
                changes[line[6:]] = lines
            elif match := HUNK.match(line):
                start, count = int(match.group(1)), int(match.group(2) or 1)
                lines.update(range(start, start + count) if count else (start,))
        added = self.git.diff("HEAD", "-z", "--name-only", "--diff-filter=A", "--no-renames")
        untracked = self.git.ls_files("-z", "--others", "--exclude-standard")
        for name in [*added.split("\0"), *untracked.split("\0")]:
            if name and name not in self.keep:
                changes[name] = None
        return changes

    def sizes_at_head(self, paths: list[str]) -> dict[str, int]:
        """The size of each path's blob in the last savepoint (absent: not there)."""
        if not paths:
            return {}
        listed = self.git.ls_tree("-l", "-z", "HEAD", "--", *paths)
        sizes = {}
        for entry in filter(None, listed.split("\0")):
            info, _, name = entry.partition("\t")
            size = info.split()[-1]
            if size.isdigit():
                sizes[name] = int(size)
        return sizes

    def read_text(self, path: str) -> str | None:
        file = self.root / path
        if not file.is_file():
            return None
        return file.read_text(encoding="utf-8", errors="replace")

    def write(self, changes: dict[str, str | None]) -> None:
        write_files(self.root, changes)

    def git_apply(self, patch: str) -> bool:
        """Apply a unified diff with git (atomic: all hunks or none); three-way when the
        patch carries blob ids. False when git cannot apply it."""
        modes = [[]] + ([["--3way"]] if "\nindex " in "\n" + patch else [])
        with tempfile.NamedTemporaryFile("w", suffix=".patch", delete=False) as handle:
            handle.write(patch)
        try:
            for mode in modes:
                try:
                    self.git.apply(*mode, "--check", handle.name)
                except git.GitCommandError:
                    continue
                try:
                    self.git.apply(*mode, handle.name)
                    return True
                except git.GitCommandError:
                    self.rollback()  # a failed three-way merge can leave conflict markers
            return False
        finally:
            os.unlink(handle.name)

    def diff(self, paths: list[str]) -> str:
        if not paths:
            return ""
        self._stage(paths)
        return self.git.diff("--cached", "--no-color", "--no-ext-diff", "--no-textconv")

    def _stage(self, paths: list[str]) -> None:
        """Stage `paths` as they are now: files that are gone are removed from the index
        (once staged, git no longer knows a deleted path by name)."""
        present = [path for path in paths if os.path.lexists(self.root / path)]
        gone = [path for path in paths if path not in present]
        if present:
            self.git.add("-A", "--", *present)
        if gone:
            self.git.rm("-q", "-r", "--cached", "--ignore-unmatch", "--", *gone)

    def savepoint(self, message: str, paths: list[str]) -> str:
        if paths:
            self._stage(paths)
        self.git.execute(
            [
                "git",
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
        self.git.reset("--hard", "HEAD")
        self.git.clean("-fd", *(f"--exclude=/{entry}" for entry in self.keep))
