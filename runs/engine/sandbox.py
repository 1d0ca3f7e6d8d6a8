"""Gate commands under bubblewrap: no network, the filesystem read-only except the
worktree, a private /tmp and the folders the caller names, and only the environment the
caller passes."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def bubblewrap() -> str | None:
    return shutil.which("bwrap")


def _git_dir(worktree: Path) -> Path | None:
    """The repository's .git folder that a worktree's `.git` file points into."""
    marker = worktree / ".git"
    if not marker.is_file():
        return None
    pointer = marker.read_text().strip().removeprefix("gitdir:").strip()
    return Path(pointer).parent.parent  # <repo>/.git/worktrees/<name> -> <repo>/.git


def _under_tmp(path: Path) -> bool:
    return os.path.realpath(path).startswith("/tmp/")


def still_needed(worktree: Path) -> list[Path]:
    """Read-only paths the private /tmp would hide: this Python (tests run with it) and
    the repository's git data, when they live under /tmp."""
    paths = {Path(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    git_dir = _git_dir(worktree)
    if git_dir is not None:
        paths.add(git_dir)
    return sorted(p for p in paths if p.exists() and _under_tmp(p))


def wrap(
    command: str, worktree: Path, env: dict[str, str], writable: tuple[Path, ...] = ()
) -> list[str]:
    binary = bubblewrap()
    if binary is None:
        raise FileNotFoundError("bwrap (bubblewrap) is not installed")
    argv = [
        binary,
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
        "--bind",
        str(worktree),
        str(worktree),
    ]
    for path in still_needed(worktree):
        argv += ["--ro-bind", str(path), str(path)]
    for folder in writable:
        argv += ["--bind", str(folder), str(folder)]
    argv += [
        "--unshare-net",
        "--unshare-pid",
        "--unshare-ipc",
        "--die-with-parent",
        "--new-session",
        "--chdir",
        str(worktree),
        "--clearenv",
    ]
    for name, value in env.items():
        argv += ["--setenv", name, value]
    return [*argv, "/bin/sh", "-c", command]
