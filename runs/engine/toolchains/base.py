"""What every toolchain shares: the options a project sets, the prepared environment,
and the installer that runs install commands.

Install commands are the only ones with network access (to package registries). They
run in the sandbox like tests do, with an environment that carries no Autopack secret,
under their own timeout, and everything they print is kept for the record.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from runs.engine.commands import run_command
from runs.engine.gates.tests import Runtime
from runs.engine.outcomes import SetupFailed
from runs.engine.sandbox import Sandbox, base_env

# Registry, mirror and proxy settings an administrator may give Autopack for installs.
REGISTRY_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "UV_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_INDEX",
    "UV_EXTRA_INDEX_URL",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "npm_config_registry",
    "NPM_CONFIG_REGISTRY",
    "GOPROXY",
    "GOPRIVATE",
    "GONOPROXY",
    "GONOSUMDB",
    "GOSUMDB",
    "CARGO_REGISTRIES_CRATES_IO_PROTOCOL",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
)
RESOLUTIONS = ("commit-date", "newest")


@dataclass(frozen=True)
class SetupOptions:
    setup_command: str = ""
    resolution: str = "commit-date"  # or "newest"
    as_of: datetime | None = None  # the base commit's date
    timeout: float = 1200
    sandbox: bool = True
    pythons: tuple[str, ...] = ()  # more interpreters to choose from (AUTOPACK_PYTHONS)

    @property
    def cutoff(self) -> str | None:
        """The date dependencies are resolved as of, when no lockfile decides."""
        if self.resolution != "commit-date" or self.as_of is None:
            return None
        return self.as_of.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Environment:
    toolchain: str
    key: str
    path: Path
    from_cache: bool
    resolution: str  # what decided the versions: a lockfile, a date, or "newest"
    details: dict
    runtime: Runtime
    test_command: str | None
    keep: tuple[str, ...] = ()  # worktree entries a rollback must leave (node_modules)
    seconds: float = 0.0

    def describe(self) -> dict:
        return {
            "toolchain": self.toolchain,
            "key": self.key,
            "path": str(self.path),
            "from_cache": self.from_cache,
            "resolution": self.resolution,
            "seconds": round(self.seconds, 1),
            "test_command": self.test_command,
            **{k: v for k, v in self.details.items() if k != "log"},
        }


@dataclass
class Installer:
    """Runs one environment's install commands and keeps their output."""

    options: SetupOptions
    downloads: Path  # package managers' download caches, shared by all environments
    log: list[str] = field(default_factory=list)

    def run(
        self,
        command: str,
        cwd: Path,
        what: str,
        env: dict[str, str] | None = None,
        *,
        read_only: tuple[Path, ...] = (),
        writable: tuple[Path, ...] = (),
        network: bool = True,
    ) -> str:
        full_env = {**base_env(), **registry_env(), **(env or {})}
        scratch = Path(tempfile.mkdtemp(prefix="autopack-setup-"))
        try:
            if self.options.sandbox:
                argv: str | list[str] = Sandbox(
                    workdir=cwd,
                    read_only=read_only,
                    writable=writable,
                    network=network,
                    env=full_env,
                ).argv(command)
                result = run_command(argv, cwd, self.options.timeout)
            else:
                full_env = {**full_env, "HOME": str(scratch), "TMPDIR": str(scratch)}
                result = run_command(command, cwd, self.options.timeout, full_env)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        self.log.append(f"$ {command}\n{result.output}")
        if result.timed_out:
            raise SetupFailed(
                f"{what} did not finish within {self.options.timeout:.0f} s "
                "(AUTOPACK_SETUP_TIMEOUT)",
                self.text(),
            )
        if result.exit_code != 0:
            raise SetupFailed(
                f"{what} failed (`{command}` exited with {result.exit_code})", self.text()
            )
        return result.output

    def text(self) -> str:
        return "\n".join(self.log)


def registry_env() -> dict[str, str]:
    return {name: os.environ[name] for name in REGISTRY_VARIABLES if os.environ.get(name)}


class Toolchain(Protocol):
    name: str
    reader: str  # how test results are read: see gates.tests.Runtime
    keep: tuple[str, ...]

    def detect(self, root: Path) -> bool: ...

    def manifests(self, root: Path) -> list[str]:
        """Files (relative to the root) whose content decides the environment."""

    def key_parts(self, root: Path, options: SetupOptions) -> list[str]:
        """More that decides the environment besides the manifests (an interpreter)."""

    def build(
        self, source: Path, target: Path, installer: Installer, options: SetupOptions
    ) -> dict:
        """Install the dependencies of the project copied at `source` into `target`;
        returns details for the record, `resolution` among them."""

    def attach(
        self, env: Path, worktree: Path, layer: Path, installer: Installer, options: SetupOptions
    ) -> None:
        """Per-run part of the environment in `layer` (the project itself, build caches)."""

    def runtime(self, env: Path, worktree: Path, layer: Path) -> Runtime: ...

    def test_command(self, root: Path) -> str | None: ...


def remove_tree(path: Path) -> None:
    """Delete a folder even where a tool made its files read-only (Go's module cache)."""

    def writable_then_retry(function, failed: str, _exc) -> None:
        parent = os.path.dirname(failed)
        os.chmod(parent, os.stat(parent).st_mode | stat.S_IWUSR)
        os.chmod(failed, os.stat(failed).st_mode | stat.S_IWUSR)
        function(failed)

    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path, onerror=writable_then_retry)
