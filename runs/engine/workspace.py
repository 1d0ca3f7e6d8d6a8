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

import fcntl
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def _locked(clone: Path) -> Iterator[None]:
    """One process at a time clones, fetches into or adds worktrees to a clone."""
    clone.parent.mkdir(parents=True, exist_ok=True)
    with open(clone.with_name(clone.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _has_commit(repo: git.Git, commit: str) -> bool:
    try:
        repo.cat_file("-e", f"{commit}^{{commit}}")
        return True
    except git.GitCommandError:
        return False


def _ensure_commit(repo: git.Git, commit: str, source: str, branches: str, branch: str) -> None:
    """Fetch `commit` when this clone lacks it: from where the run's branch is pushed,
    then from the project's repository."""
    if _has_commit(repo, commit):
        return
    fetches = [(branches, f"refs/heads/{branch}"), (source, "+refs/heads/*:refs/remotes/origin/*")]
    tried = []
    for remote, refspec in fetches:
        if not remote or remote in tried:
            continue
        tried.append(remote)
        try:
            repo.fetch("--quiet", remote, refspec)
        except git.GitCommandError:
            continue
        if _has_commit(repo, commit):
            return
    where = " or ".join(tried) or "this machine's clone"
    raise RepositoryError(
        f"Commit {commit[:12]}, where the run is to continue, is not in {where}. A run "
        "continues on another machine only from savepoints pushed to a remote every "
        "worker can reach (the project's push_branches and branch_remote)."
    )


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
        self.branch = ""

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
        cls,
        source: str,
        base_branch: str,
        run_id: str,
        home: Path,
        *,
        start: str = "",
        branches: str = "",
    ) -> GitWorkspace:
        """The run's worktree, exactly at `start` (the run's last recorded savepoint, or
        its base commit; empty: the base branch's tip), whatever an interrupted step left
        in it. On a machine that has never seen the run, the clone and the worktree are
        made here and `start` is fetched from `branches` (where the run's savepoints are
        pushed) or from `source`."""
        clone = _clone_dir(source, home / "repos")
        worktree = home / "workspaces" / run_id
        branch = f"autopack/{run_id}"
        with _locked(clone):
            origin = cls._clone(source, clone)
            target = start or cls._base(origin, source, base_branch)
            _ensure_commit(origin.git, target, source, branches, branch)
            if not os.path.lexists(worktree / ".git"):
                worktree.parent.mkdir(parents=True, exist_ok=True)
                origin.git.worktree("prune")
                origin.git.worktree("add", "--force", "-B", branch, str(worktree), target)
            workspace = cls(worktree, Path(origin.git_dir))
            workspace.branch = branch
            workspace.reset_to(target)
        return workspace

    @staticmethod
    def _clone(source: str, clone: Path) -> git.Repo:
        """Autopack's own clone of the project (a URL or a local path): worktrees and
        integration branches live there, never in the project's repository."""
        if os.path.exists(source):  # a local path
            try:
                git.Repo(source)
            except (git.InvalidGitRepositoryError, git.NoSuchPathError):
                raise RepositoryError(f"{source} is not a git repository.") from None
        try:
            if (clone / ".git").is_dir():
                repo = git.Repo(clone)
                repo.git.update_environment(**safe_env(clone))
                return repo
            clone.parent.mkdir(parents=True, exist_ok=True)
            repo = git.Repo.clone_from(
                source,
                clone,
                no_checkout=True,
                env={**os.environ, **_config_env(list(SAFE_CONFIG))},
            )
            repo.git.update_environment(**safe_env(clone))
            return repo
        except (git.GitCommandError, git.InvalidGitRepositoryError) as exc:
            shown = exc.stderr.strip() if isinstance(exc, git.GitCommandError) else str(exc)
            raise RepositoryError(f"Cannot clone {source}: {shown}") from None

    @staticmethod
    def _base(origin: git.Repo, source: str, base_branch: str) -> str:
        """The base branch's newest commit in the project's repository."""
        try:
            origin.git.fetch("--prune", "origin")
        except git.GitCommandError as exc:
            raise RepositoryError(f"Cannot fetch from {source}: {exc.stderr.strip()}") from None
        try:
            return origin.git.rev_parse("--verify", f"origin/{base_branch}^{{commit}}")
        except git.GitCommandError:
            raise RepositoryError(
                f"Base branch {base_branch!r} does not exist in {source}."
            ) from None

    def has_commit(self, commit: str) -> bool:
        return _has_commit(self.git, commit)

    def reset_to(self, commit: str) -> None:
        """Make the worktree exactly `commit`, on the run's branch: tracked changes
        reverted, created files removed, ignored build outputs left alone."""
        self.git.reset("--hard", commit)
        self.git.clean("-fd", *(f"--exclude=/{entry}" for entry in self.keep))

    def publish(self, commit: str, remote: str) -> None:
        """Make `commit` the tip of the run's branch on `remote`. Forced: the database
        says which commit is the truth, and only the lease holder publishes."""
        try:
            self.git.push("--force", "--quiet", remote, f"{commit}:refs/heads/{self.branch}")
        except git.GitCommandError as exc:
            raise RepositoryError(
                f"Cannot push savepoint {commit[:12]} to {remote} ({self.branch}): "
                f"{exc.stderr.strip()}. Check that every worker can write there, or turn "
                "off the project's push_branches."
            ) from None

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
        """Back to the last savepoint (HEAD), as `reset_to` does."""
        self.reset_to("HEAD")
