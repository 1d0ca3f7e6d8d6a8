"""Go modules: the module cache filled by `go mod download`; tests run offline from it,
each run with a build cache of its own."""

from __future__ import annotations

from pathlib import Path

from runs.engine.gates.tests import Runtime
from runs.engine.toolchains.base import Installer, SetupOptions, remove_tree, require, tools

MANIFESTS = ("go.mod", "go.sum", "go.work", "go.work.sum", "vendor/modules.txt")


class GoToolchain:
    name = "go"
    reader = "go"
    keep: tuple[str, ...] = ()

    def detect(self, root: Path) -> bool:
        return (root / "go.mod").is_file()

    def manifests(self, root: Path) -> list[str]:
        return [m for m in MANIFESTS if (root / m).is_file()]

    def key_parts(self, root: Path, options: SetupOptions) -> list[str]:
        return []

    def build(
        self, source: Path, target: Path, installer: Installer, options: SetupOptions
    ) -> dict:
        require("go", "Go (Debian's golang-go package, or go.dev/dl)")
        scratch = target / "scratch"
        env = {
            **_go_env(target / "mod", scratch / "cache"),
            "GOPATH": str(scratch / "path"),
            "GOFLAGS": "-mod=mod",
            "AUTOPACK_ENV": str(target),
        }
        if options.setup_command:
            command, resolution = options.setup_command, "setup_command"
        elif (source / "vendor" / "modules.txt").exists():
            command, resolution = "true", "vendor/"
        else:
            command = "go mod download"
            resolution = "go.sum" if (source / "go.sum").exists() else "go.mod"
        path, mounts = tools("go")
        installer.run(
            command,
            source,
            "downloading the modules",
            {**env, "PATH": path},
            read_only=mounts,
            writable=(target,),
        )
        remove_tree(scratch)
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
        (layer / "go-build").mkdir(parents=True, exist_ok=True)

    def runtime(self, env: Path, worktree: Path, layer: Path, details: dict) -> Runtime:
        path, mounts = tools("go")
        variables = {
            **_go_env(env / "mod", layer / "go-build"),
            "PATH": path,
            "GOPATH": "/tmp/go",
            "GOPROXY": "off",
            "GOFLAGS": "-mod=readonly" if not (worktree / "vendor").is_dir() else "-mod=vendor",
        }
        return Runtime(reader=self.reader, variables=variables, read_only=(env,), writable=(layer,))

    def test_command(self, root: Path) -> str | None:
        return "go test -json ./..."


def _go_env(modules: Path, build_cache: Path) -> dict[str, str]:
    return {
        "GOMODCACHE": str(modules),
        "GOCACHE": str(build_cache),
        "GOTOOLCHAIN": "local",
        "GOTELEMETRY": "off",
    }
