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
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from runs.engine.gates.tests import Runtime
from runs.engine.outcomes import SetupFailed
from runs.engine.sandbox import Sandbox

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
    # The project's own code may not build yet (the run's `allow_broken_baseline`): a
    # failed warm-up build is left for the tests to report.
    broken_code_allowed: bool = False

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
        spec = Sandbox(
            workdir=cwd,
            read_only=read_only,
            writable=writable,
            network=network,
            env={**registry_env(), **(env or {})},
        )
        result = spec.run(command, self.options.timeout, isolated=self.options.sandbox)
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


def require(name: str, install: str) -> None:
    """A toolchain program the worker must have; its absence is the user's to fix."""
    if shutil.which(name) is None:
        raise SetupFailed(
            f"{name} is not installed on this worker", hint=f"Install {install} on every worker."
        )


def tools(*names: str) -> tuple[str, tuple[Path, ...]]:
    """Where the toolchain's programs are, for commands in the sandbox: a PATH and the
    folders to mount. Programs under /usr are there already; others (an official Go in
    /usr/local/go, node from nvm) bring their install folder."""
    folders: list[str] = []
    mounts: list[Path] = []
    for name in names:
        found = shutil.which(name)
        if found is None:
            continue
        real = Path(os.path.realpath(found))
        if real.is_relative_to("/usr") or real.is_relative_to("/bin"):
            continue
        folders.append(str(Path(found).parent))
        mounts.append(real.parent.parent)
    path = ":".join(dict.fromkeys([*folders, "/usr/local/bin", "/usr/bin", "/bin"]))
    return path, tuple(dict.fromkeys(mounts))


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
        self,
        env: Path,
        worktree: Path,
        layer: Path,
        installer: Installer,
        options: SetupOptions,
        details: dict,
    ) -> None:
        """Per-run part of the environment in `layer` (the project itself, build caches);
        `details` are what `build` returned."""

    def runtime(self, env: Path, worktree: Path, layer: Path, details: dict) -> Runtime: ...

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
