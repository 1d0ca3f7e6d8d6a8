"""Project environments: detect the project's toolchain, prepare (or reuse) an
environment for it, attach the run's own layer, and say how its tests run.

    environment = prepare(worktree, layer, cache, options, project="flask", recorder=r)
    environment.runtime        # what test commands run with (PATH, mounts, result reader)
    environment.test_command   # the command detection chose
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from runs.engine.gates.tests import Runtime
from runs.engine.protocols import Recorder
from runs.engine.toolchains.base import (
    Environment,
    Installer,
    SetupFailed,
    SetupOptions,
    Toolchain,
    remove_tree,
)
from runs.engine.toolchains.cache import LOG, EnvironmentCache
from runs.engine.toolchains.go import GoToolchain
from runs.engine.toolchains.node import NodeToolchain
from runs.engine.toolchains.python import PythonToolchain
from runs.engine.toolchains.rust import RustToolchain
from runs.engine.workspace import list_files

__all__ = ["Environment", "EnvironmentCache", "SetupFailed", "SetupOptions", "detect", "prepare"]

LAYER_MARKER = "autopack-layer"


class CustomToolchain:
    """No known toolchain, but a `setup_command`: it installs into $AUTOPACK_ENV, whose
    bin/ is put first on PATH for the tests."""

    name = "custom"
    reader = "exit-code"
    keep: tuple[str, ...] = ()

    def detect(self, root: Path) -> bool:
        return False

    def manifests(self, root: Path) -> list[str]:
        return []

    def key_parts(self, root: Path, options: SetupOptions) -> list[str]:
        return []

    def build(
        self, source: Path, target: Path, installer: Installer, options: SetupOptions
    ) -> dict:
        env = {"AUTOPACK_ENV": str(target), "PATH": f"{target}/bin:/usr/local/bin:/usr/bin:/bin"}
        installer.run(options.setup_command, source, "the setup_command", env, writable=(target,))
        return {"resolution": "setup_command"}

    def attach(
        self,
        env: Path,
        worktree: Path,
        layer: Path,
        installer: Installer,
        options: SetupOptions,
        details: dict,
    ) -> None:
        return None

    def runtime(self, env: Path, worktree: Path, layer: Path, details: dict) -> Runtime:
        return Runtime(
            variables={"PATH": f"{env}/bin:/usr/local/bin:/usr/bin:/bin"}, read_only=(env,)
        )

    def test_command(self, root: Path) -> str | None:
        return None


TOOLCHAINS: tuple[Toolchain, ...] = (
    PythonToolchain(),
    NodeToolchain(),
    GoToolchain(),
    RustToolchain(),
)
# Test files by toolchain: when a repository has the markers of several (a Go module with
# a requirements.txt for its docs), the one whose tests it has wins.
TEST_FILES = {
    "python": re.compile(r"(^|/)test_[^/]*\.py$|_test\.py$"),
    "node": re.compile(
        r"\.(test|spec)\.[cm]?[jt]sx?$|(^|/)(__tests__|tests?)/[^/]*\.[cm]?[jt]sx?$"
    ),
    "go": re.compile(r"_test\.go$"),
    "rust": re.compile(r"(^|/)tests/[^/]*\.rs$"),
}


def detect(root: Path, setup_command: str = "", prefer: str = "") -> Toolchain | None:
    """The project's toolchain: `prefer` (the one a run started with) while its markers
    are there, else the detected one with the most test files."""
    found = [t for t in TOOLCHAINS if t.detect(root)]
    files = _files(root)
    if not found and any(TEST_FILES["python"].search(f) for f in files):
        found = [TOOLCHAINS[0]]  # bare test modules, as in exercises
    if not found:
        return CustomToolchain() if setup_command else None
    preferred = [t for t in found if t.name == prefer]
    if preferred:
        return preferred[0]
    return max(found, key=lambda t: sum(bool(TEST_FILES[t.name].search(f)) for f in files))


def _files(root: Path) -> list[str]:
    if os.path.lexists(root / ".git"):
        return list_files(root)
    return [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()]


def prepare(
    worktree: Path,
    layer: Path,
    cache: EnvironmentCache,
    options: SetupOptions,
    project: str,
    recorder: Recorder,
    prefer: str = "",
) -> Environment | None:
    """The environment for the project in `worktree`, built when the cache does not
    have it, with the run's layer in `layer`. None when no toolchain applies."""
    toolchain = detect(worktree, options.setup_command, prefer)
    if toolchain is None:
        return None
    started = time.monotonic()
    name = cache.name(toolchain, worktree, options, project)
    installer = Installer(options, cache.downloads)

    def build(folder: Path) -> dict:
        recorder.event("environment_building", toolchain=toolchain.name, key=name)
        with _snapshot(worktree, cache.building, toolchain.keep) as source:
            details = toolchain.build(source, folder, installer, options)
        return {**details, "toolchain": toolchain.name, "log": installer.text()}

    path, details, cached = cache.ensure(name, build)
    _attach(toolchain, path, worktree, layer, installer, options, details)
    return Environment(
        toolchain=toolchain.name,
        key=name,
        path=path,
        from_cache=cached,
        resolution=details.get("resolution", ""),
        details={
            **details,
            "log_file": str(path / LOG),
            "manifests": sorted(toolchain.manifests(worktree)),
        },
        runtime=toolchain.runtime(path, worktree, layer, details),
        test_command=toolchain.test_command(worktree),
        keep=toolchain.keep,
        seconds=time.monotonic() - started,
    )


def _attach(
    toolchain: Toolchain,
    env: Path,
    worktree: Path,
    layer: Path,
    installer: Installer,
    options: SetupOptions,
    details: dict,
) -> None:
    """The run's own layer, rebuilt when the environment under it changed."""
    marker = layer / LAYER_MARKER
    current = marker.exists() and marker.read_text() == str(env)
    if current and all((worktree / entry).is_symlink() for entry in toolchain.keep):
        return
    remove_tree(layer)
    layer.mkdir(parents=True)
    toolchain.attach(env, worktree, layer, installer, options, details)
    marker.write_text(str(env))


@contextmanager
def _snapshot(worktree: Path, parent: Path, skip: tuple[str, ...]) -> Iterator[Path]:
    """A copy of the worktree's files (tracked and new, not ignored) to build from, so
    installers neither write into the worktree nor see build leftovers."""
    folder = parent / f"source-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    try:
        for relative in list_files(worktree):
            source, target = worktree / relative, folder / relative
            if relative in skip or not (source.is_file() or source.is_symlink()):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_symlink():
                os.symlink(os.readlink(source), target)
            else:
                shutil.copy2(source, target)
        yield folder
    finally:
        remove_tree(folder)
