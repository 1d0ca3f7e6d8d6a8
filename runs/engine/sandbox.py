"""Commands that run project code (installs, tests) under bubblewrap.

The sandbox is built from an allowlist: system folders and the few files of /etc that
programs need, read-only; the folders the caller names (toolchain, project environment,
git metadata) read-only; the worktree and the caller's scratch folders read-write; a
private /tmp and home. Nothing else of the host exists inside: not AUTOPACK_HOME, not the
real home directory, not other runs' worktrees, not the database's socket. Only install
steps keep the network; tests get a network namespace of their own.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from runs.engine.commands import CommandResult, run_command

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# What of /etc programs need: name resolution, certificates, users, time zone, the
# dynamic linker and Debian's alternatives symlinks. Not the rest (keys, shadow, ...).
ETC_ENTRIES = (
    "alternatives",
    "ca-certificates",
    "ca-certificates.conf",
    "ssl/certs",
    "ssl/openssl.cnf",
    "resolv.conf",
    "hosts",
    "host.conf",
    "nsswitch.conf",
    "gai.conf",
    "passwd",
    "group",
    "localtime",
    "timezone",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "mime.types",
    "protocols",
    "services",
    "os-release",
    "debian_version",
    "python3",
    "python3.11",
    "python3.12",
    "python3.13",
)
HOME = "/tmp/home"


def bubblewrap() -> str | None:
    return shutil.which("bwrap")


@dataclass(frozen=True)
class Sandbox:
    """What one sandboxed command may see and do."""

    workdir: Path
    read_only: tuple[Path, ...] = ()
    writable: tuple[Path, ...] = ()
    network: bool = False
    env: dict[str, str] = field(default_factory=dict)
    # Tests may read the repository's git metadata (read-only); install steps, which
    # have the network, may not.
    git: bool = False

    def run(
        self, command: str, timeout: float, isolated: bool, keep: Path | None = None
    ) -> CommandResult:
        """Run `command` in the sandbox; without bubblewrap (`isolated` False) run it
        plainly with the same environment, a scratch home and temporary folder. `keep`
        gets the whole output (written by this process, outside the sandbox)."""
        if isolated:
            return run_command(self.argv(command), self.workdir, timeout, keep=keep)
        with tempfile.TemporaryDirectory(prefix="autopack-home-") as scratch:
            env = {**base_env(), **self.env, "HOME": scratch, "TMPDIR": scratch}
            return run_command(command, self.workdir, timeout, env, keep=keep)

    def argv(self, command: str) -> list[str]:
        binary = bubblewrap()
        if binary is None:
            raise FileNotFoundError("bwrap (bubblewrap) is not installed")
        argv = [binary, "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--dir", HOME]
        for folder in SYSTEM_DIRS:
            argv += _mirror(Path(folder))
        for entry in ETC_ENTRIES:
            path = Path("/etc") / entry
            if path.exists():
                argv += ["--ro-bind", str(path), str(path)]
        git = git_directories(self.workdir) if self.git else ()
        for path in _outermost((*self.read_only, *git)):
            argv += ["--ro-bind", str(path), str(path)]
        for path in _outermost((self.workdir, *self.writable)):
            argv += ["--bind", str(path), str(path)]
        marker = self.workdir / ".git"
        if marker.is_file():
            # The worktree is writable, its pointer to the git directory is not.
            argv += ["--ro-bind", str(marker), str(marker)]
        if not self.network:
            argv.append("--unshare-net")
        argv += [
            # Root inside keeps no capability: it cannot remount the read-only folders
            # or make device files to reach the host's disks.
            "--cap-drop",
            "ALL",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--die-with-parent",
            "--new-session",
            "--chdir",
            str(self.workdir),
            "--clearenv",
        ]
        for name, value in {**base_env(), **self.env}.items():
            argv += ["--setenv", name, value]
        return [*argv, "/bin/sh", "-c", command]


def sandbox_problem() -> str:
    """Why commands cannot be sandboxed here, or "" when they can: bubblewrap missing, or
    present but refused by the host (user namespaces disabled, a container's policy)."""
    if bubblewrap() is None:
        return "bubblewrap (bwrap) is not installed"
    with tempfile.TemporaryDirectory(prefix="autopack-probe-") as folder:
        result = Sandbox(workdir=Path(folder)).run("true", 30, isolated=True)
    if result.exit_code != 0:
        return f"bubblewrap is installed but cannot create a sandbox here: {result.output.strip()}"
    return ""


def base_env() -> dict[str, str]:
    """The environment every sandboxed command starts from; callers add their own."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": HOME,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TERM": "dumb",
        "TMPDIR": "/tmp",
        "CI": "true",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    }


def git_directories(worktree: Path) -> tuple[Path, ...]:
    """The git metadata a worktree's `.git` file points to (its own folder and the
    repository's), which tools in the worktree read: git itself, version plugins."""
    marker = worktree / ".git"
    if not marker.is_file():
        return ()
    text = marker.read_text(errors="replace").strip()
    if not text.startswith("gitdir:"):
        return ()
    gitdir = (worktree / text.removeprefix("gitdir:").strip()).resolve()
    common = gitdir / "commondir"
    if common.is_file():
        return (gitdir, (gitdir / common.read_text().strip()).resolve())
    return (gitdir,)


def _mirror(path: Path) -> list[str]:
    """A system folder as the host has it: a symlink stays a symlink (merged /usr)."""
    if path.is_symlink():
        return ["--symlink", os.readlink(path), str(path)]
    if path.is_dir():
        return ["--ro-bind", str(path), str(path)]
    return []


def _outermost(paths: tuple[Path, ...]) -> list[Path]:
    """Existing paths, without those inside another one of the list (one mount covers
    them), in an order where a parent is mounted before anything under it."""
    resolved = sorted({Path(os.path.abspath(p)) for p in paths if Path(p).exists()})
    if Path("/") in resolved:
        raise ValueError("refusing to mount / into the sandbox: it would show the whole host")
    kept: list[Path] = []
    for path in resolved:
        if not any(path.is_relative_to(parent) for parent in kept):
            kept.append(path)
    return kept
