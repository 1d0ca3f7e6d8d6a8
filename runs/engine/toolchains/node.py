"""Node projects: `node_modules` installed from the lockfile (npm, pnpm or yarn), shared
by runs through a link in each worktree."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from runs.engine.gates.tests import Runtime
from runs.engine.toolchains.base import Installer, SetupFailed, SetupOptions, require, tools

LOCKS = {
    "package-lock.json": "npm ci --no-audit --no-fund",
    "npm-shrinkwrap.json": "npm ci --no-audit --no-fund",
    "pnpm-lock.yaml": "corepack pnpm install --frozen-lockfile",
    "yarn.lock": "corepack yarn install --frozen-lockfile",
}
MANIFESTS = (
    "package.json",
    *LOCKS,
    ".npmrc",
    ".yarnrc.yml",
    "pnpm-workspace.yaml",
    ".nvmrc",
)
JEST = re.compile(r"^\s*jest(\s|$)")


class NodeToolchain:
    name = "node"
    reader = "node"
    keep = ("node_modules",)

    def detect(self, root: Path) -> bool:
        return (root / "package.json").is_file()

    def manifests(self, root: Path) -> list[str]:
        found = [m for m in MANIFESTS if (root / m).is_file()]
        return found + _workspace_manifests(root)

    def key_parts(self, root: Path, options: SetupOptions) -> list[str]:
        return ["" if _lockfile(root) else options.cutoff or ""]

    def build(
        self, source: Path, target: Path, installer: Installer, options: SetupOptions
    ) -> dict:
        require("npm", "Node.js with npm (Debian's nodejs and npm packages, or nodejs.org)")
        command, resolution = install_command(source, options)
        downloads = installer.downloads
        env = {
            "npm_config_cache": str(downloads / "npm"),
            "COREPACK_HOME": str(downloads / "corepack"),
            "COREPACK_ENABLE_DOWNLOAD_PROMPT": "0",
            "npm_config_update_notifier": "false",
            "AUTOPACK_ENV": str(target),
        }
        (downloads / "npm").mkdir(parents=True, exist_ok=True)
        (downloads / "corepack").mkdir(parents=True, exist_ok=True)
        path, mounts = tools("node", "npm", "corepack")
        installer.run(
            command,
            source,
            "installing the dependencies",
            {**env, "PATH": path},
            read_only=mounts,
            writable=(target, downloads),
        )
        modules = source / "node_modules"
        if not modules.is_dir():
            raise SetupFailed(f"`{command}` left no node_modules folder", installer.text())
        os.rename(modules, target / "node_modules")
        return {"resolution": resolution, "installer": command.split(" --")[0]}

    def attach(
        self,
        env: Path,
        worktree: Path,
        layer: Path,
        installer: Installer,
        options: SetupOptions,
        details: dict,
    ) -> None:
        link = worktree / "node_modules"
        wanted = env / "node_modules"
        if link.is_symlink() and Path(os.readlink(link)) == wanted:
            return
        if link.is_symlink():
            link.unlink()
        elif link.exists():
            raise SetupFailed(
                "the worktree already has a node_modules folder (is it committed?); "
                "Autopack links the prepared one there"
            )
        link.symlink_to(wanted)

    def runtime(self, env: Path, worktree: Path, layer: Path, details: dict) -> Runtime:
        path, mounts = tools("node", "npm")
        # Scripts that pick their own reporters (the test script may run others) would
        # clash with the one Autopack adds: their results are read by exit code only.
        reader = (
            "exit-code"
            if any("--test-reporter" in text for text in _scripts(worktree).values())
            else self.reader
        )
        return Runtime(
            reader=reader,
            variables={
                "PATH": f"{worktree}/node_modules/.bin:{path}",
                "npm_config_cache": "/tmp/npm-cache",
                "npm_config_offline": "true",
                "npm_config_update_notifier": "false",
            },
            read_only=(env, *mounts),
        )

    def test_command(self, root: Path) -> str | None:
        script = _test_script(root)
        if not script or "no test specified" in script:  # npm init's placeholder
            return "node --test"
        if JEST.match(script) and "&&" not in script and ";" not in script:
            # jest reports per test only when asked on its command line.
            return 'npm test -- --ci --json --outputFile="$AUTOPACK_REPORTS/jest.json"'
        return "npm test"


def _workspace_manifests(root: Path) -> list[str]:
    """The package.json of each npm/yarn workspace: their dependencies are installed too."""
    try:
        manifest = json.loads((root / "package.json").read_text())
    except (OSError, ValueError):
        return []
    patterns = manifest.get("workspaces") if isinstance(manifest, dict) else None
    if isinstance(patterns, dict):
        patterns = patterns.get("packages")
    if not isinstance(patterns, list):
        return []
    found = {
        str(path.relative_to(root))
        for pattern in patterns
        if isinstance(pattern, str) and ".." not in pattern
        for path in root.glob(f"{pattern.rstrip('/')}/package.json")
    }
    return sorted(found)


def _scripts(root: Path) -> dict[str, str]:
    try:
        manifest = json.loads((root / "package.json").read_text())
    except (OSError, ValueError):
        return {}
    scripts = manifest.get("scripts") if isinstance(manifest, dict) else None
    if not isinstance(scripts, dict):
        return {}
    return {name: text for name, text in scripts.items() if isinstance(text, str)}


def _test_script(root: Path) -> str:
    return _scripts(root).get("test", "")


def install_command(root: Path, options: SetupOptions) -> tuple[str, str]:
    """The command that installs the project's dependencies, and what decides them."""
    lockfile = _lockfile(root)
    if options.setup_command:
        return options.setup_command, "setup_command"
    if lockfile == "yarn.lock" and (root / ".yarnrc.yml").exists():
        return "corepack yarn install --immutable", lockfile  # yarn 2 and later
    if lockfile:
        return LOCKS[lockfile], lockfile
    cutoff = options.cutoff
    command = "npm install --no-audit --no-fund" + (f" --before={cutoff}" if cutoff else "")
    return command, f"as of {cutoff[:10]}" if cutoff else "newest"


def _lockfile(root: Path) -> str:
    return next((name for name in LOCKS if (root / name).is_file()), "")
