"""Environments cached by project and by a hash of what decides them.

An environment is built in a temporary folder and renamed into place only when it is
complete, so nobody ever uses half an environment; a lock per key makes concurrent runs
on one machine wait for the first build instead of repeating it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from runs.engine.toolchains.base import SetupOptions, Toolchain, remove_tree

# Part of every key: bump it when what a build puts into an environment changes.
LAYOUT = "3"
METADATA = "autopack-environment.json"
LOG = "setup.log"


class EnvironmentCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.envs = root / "envs"
        self.downloads = root / "downloads"
        self.building = root / ".building"
        self.locks = root / ".locks"

    def name(
        self, toolchain: Toolchain, worktree: Path, options: SetupOptions, project: str
    ) -> str:
        digest = hashlib.sha256()
        for part in (LAYOUT, toolchain.name, options.setup_command, options.resolution):
            digest.update(part.encode() + b"\0")
        for part in toolchain.key_parts(worktree, options):
            digest.update(part.encode() + b"\0")
        for relative in sorted(toolchain.manifests(worktree)):
            path = worktree / relative
            digest.update(relative.encode() + b"\0")
            # A manifest may name a file that is not there (yet): that decides too.
            digest.update((path.read_bytes() if path.is_file() else b"(missing)") + b"\0")
        slug = re.sub(r"[^a-z0-9]+", "-", project.lower()).strip("-")[:40] or "project"
        return f"{toolchain.name}-{slug}-{digest.hexdigest()[:16]}"

    def lookup(self, name: str) -> tuple[Path, dict] | None:
        path = self.envs / name
        try:
            return path, json.loads((path / METADATA).read_text())
        except (OSError, ValueError):
            return None

    def ensure(self, name: str, build: Callable[[Path], dict]) -> tuple[Path, dict, bool]:
        """The environment `name`, built by `build(folder)` when it does not exist yet.
        Returns its path, its details and whether it came from the cache."""
        found = self.lookup(name)
        if found is not None:
            return (*found, True)
        with self._lock(name):
            found = self.lookup(name)
            if found is not None:
                return (*found, True)
            self.building.mkdir(parents=True, exist_ok=True)
            self.envs.mkdir(parents=True, exist_ok=True)
            folder = self.building / f"{name}-{uuid.uuid4().hex[:8]}"
            folder.mkdir()
            try:
                details = build(folder)
                log = details.pop("log", "")
                (folder / LOG).write_text(log)
                (folder / METADATA).write_text(json.dumps(details, indent=2, default=str))
                final = self.envs / name
                remove_tree(final)  # an unfinished folder of an older layout, if any
                os.rename(folder, final)
            except BaseException:
                remove_tree(folder)
                raise
        return final, details, False

    def discard(self, name: str) -> bool:
        """Remove the environment `name` (it proved incomplete: a declared package is not
        in it), so the next `ensure` builds it again. Returns whether it existed."""
        with self._lock(name):
            path = self.envs / name
            if not path.exists():
                return False
            self.building.mkdir(parents=True, exist_ok=True)
            doomed = self.building / f"{name}-discarded-{uuid.uuid4().hex[:8]}"
            os.rename(path, doomed)
        remove_tree(doomed)
        return True

    @contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        self.locks.mkdir(parents=True, exist_ok=True)
        with open(self.locks / f"{name}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
