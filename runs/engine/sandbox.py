"""Gate commands under bubblewrap: no network, the filesystem read-only except the
worktree, a private /tmp and the folders the caller names, and only the environment the
caller passes."""

from __future__ import annotations

import shutil
from pathlib import Path


def bubblewrap() -> str | None:
    return shutil.which("bwrap")


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
