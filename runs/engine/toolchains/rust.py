"""Rust crates: `cargo fetch` into a cargo home of the environment's own; each run builds
its tests once, offline, into a target folder of its own before the gate runs them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from runs.engine.gates.tests import Runtime
from runs.engine.toolchains.base import Installer, SetupFailed, SetupOptions, require

MANIFESTS = ("Cargo.toml", "Cargo.lock", "rust-toolchain", "rust-toolchain.toml")


def toolchain_mounts() -> tuple[Path, dict[str, str], tuple[Path, ...]]:
    """Where cargo is, the variables it needs and the folders it must see: with rustup,
    cargo is a proxy that finds the real toolchain under RUSTUP_HOME."""
    require("cargo", "Rust (rustup, or your package manager's cargo)")
    cargo = shutil.which("cargo") or "cargo"
    folder = Path(cargo).parent
    if os.path.basename(os.path.realpath(cargo)) != "rustup":
        return folder, {}, (folder,)
    rustup_home = Path(os.environ.get("RUSTUP_HOME") or Path.home() / ".rustup")
    return folder, {"RUSTUP_HOME": str(rustup_home)}, (folder, rustup_home)


class RustToolchain:
    name = "rust"
    reader = "cargo"
    keep: tuple[str, ...] = ()

    def detect(self, root: Path) -> bool:
        return (root / "Cargo.toml").is_file()

    def manifests(self, root: Path) -> list[str]:
        found = [m for m in MANIFESTS if (root / m).is_file()]
        members = sorted(str(p.relative_to(root)) for p in root.glob("*/**/Cargo.toml"))
        return found + [m for m in members if "/target/" not in f"/{m}"]

    def key_parts(self, root: Path, options: SetupOptions) -> list[str]:
        return []

    def _env(self, cargo_home: Path, target_dir: Path) -> tuple[dict[str, str], tuple[Path, ...]]:
        folder, variables, mounts = toolchain_mounts()
        env = {
            **variables,
            "CARGO_HOME": str(cargo_home),
            "CARGO_TARGET_DIR": str(target_dir),
            "CARGO_TERM_COLOR": "never",
            "PATH": f"{folder}:/usr/local/bin:/usr/bin:/bin",
        }
        return env, mounts

    def build(
        self, source: Path, target: Path, installer: Installer, options: SetupOptions
    ) -> dict:
        env, mounts = self._env(target / "cargo", target / "scratch")
        locked = (source / "Cargo.lock").exists()
        if options.setup_command:
            command, resolution = options.setup_command, "setup_command"
        else:
            command = "cargo fetch" + (" --locked" if locked else "")
            # cargo cannot resolve as of a date: without a lockfile it takes the newest.
            resolution = "Cargo.lock" if locked else "newest"
        installer.run(
            command,
            source,
            "fetching the crates",
            {**env, "AUTOPACK_ENV": str(target)},
            read_only=mounts,
            writable=(target,),
        )
        shutil.rmtree(target / "scratch", ignore_errors=True)
        return {"resolution": resolution}

    def attach(
        self,
        env: Path,
        worktree: Path,
        layer: Path,
        installer: Installer,
        options: SetupOptions,
        details: dict,
    ) -> None:
        variables, mounts = self._env(env / "cargo", layer / "target")
        (layer / "target").mkdir(parents=True, exist_ok=True)
        try:
            installer.run(
                "cargo test --no-run --offline",
                worktree,
                "building the tests",
                variables,
                read_only=(*mounts, env),
                writable=(layer,),
                network=False,
            )
        except SetupFailed:
            if not options.broken_code_allowed:
                raise

    def runtime(self, env: Path, worktree: Path, layer: Path, details: dict) -> Runtime:
        variables, mounts = self._env(env / "cargo", layer / "target")
        return Runtime(
            reader=self.reader,
            variables={**variables, "CARGO_NET_OFFLINE": "true"},
            read_only=(*mounts, env),
            writable=(layer,),
        )

    def test_command(self, root: Path) -> str | None:
        # Without --no-fail-fast cargo stops at the first test binary that fails and the
        # tests of the others never run.
        return "cargo test --no-fail-fast"
