"""Python projects: a virtual environment built with uv.

The shared environment holds the dependencies (the project's, its test dependencies and
pytest), resolved from the lockfile or as of the base commit's date. Each run adds a
small layer of its own: a virtual environment that sees the shared one and holds the
project installed in editable mode from the run's worktree, so concurrent runs share
the dependencies but each imports its own code.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from runs.engine.gates.tests import Runtime
from runs.engine.toolchains.base import Installer, SetupOptions, remove_tree
from runs.engine.toolchains.interpreters import Interpreter, choose
from runs.engine.toolchains.python_plan import PythonPlan, lock_requirements, read_plan
from runs.engine.workspace import run_git

MARKERS = (
    "pyproject.toml",
    "setup.py",
    "setup.cfg",
    "requirements.txt",
    "Pipfile",
    "tox.ini",
    "pytest.ini",
    "conftest.py",
)
PINS = "autopack-requirements.txt"
# Build backends that take the version from git cannot see it in a copy of the files;
# the dependencies do not depend on the version.
NO_VCS_VERSION = {
    "SETUPTOOLS_SCM_PRETEND_VERSION": "0.0.0",
    "PDM_BUILD_SCM_VERSION": "0.0.0",
}


def uv_binary() -> Path:
    from uv import find_uv_bin

    return Path(find_uv_bin())


class PythonToolchain:
    name = "python"
    reader = "pytest"
    keep: tuple[str, ...] = ()

    def detect(self, root: Path) -> bool:
        return any((root / marker).exists() for marker in MARKERS)

    def manifests(self, root: Path) -> list[str]:
        return read_plan(root).manifests

    def key_parts(self, root: Path, options: SetupOptions) -> list[str]:
        plan = read_plan(root)
        interpreter = self._interpreter(plan, options)
        cutoff = "" if plan.lockfile else options.cutoff or ""
        return [str(interpreter.path), str(interpreter.version), cutoff]

    def _interpreter(self, plan: PythonPlan, options: SetupOptions) -> Interpreter:
        return choose(plan.requires_python, plan.python_pin, options.pythons)

    def build(
        self, source: Path, target: Path, installer: Installer, options: SetupOptions
    ) -> dict:
        plan = read_plan(source)
        interpreter = self._interpreter(plan, options)
        uv = _Uv(installer, source, target, (interpreter.prefix,))
        # Seeded with pip and setuptools, as tox and virtualenv make test environments:
        # test suites that build or install something expect them.
        uv.run(
            f"venv --relocatable --seed --python {interpreter.path} {target}{_cutoff(options)}",
            "creating the virtualenv",
        )
        details = {
            "interpreter": str(interpreter),
            "python_prefix": str(interpreter.prefix),
        }
        if options.setup_command:
            uv.shell(
                options.setup_command,
                "the setup_command",
                {
                    "VIRTUAL_ENV": str(target),
                    "PATH": f"{target}/bin:/usr/local/bin:/usr/bin:/bin",
                    "AUTOPACK_ENV": str(target),
                },
            )
            if plan.name:
                # Installed here it would shadow each run's editable copy of the project.
                uv.run(f"pip uninstall --python {target}/bin/python {plan.name}", "uninstalling")
            return {**details, "resolution": "setup_command"}
        pins, resolution, exact = self._resolve(plan, source, interpreter, uv, options)
        kept = _without_project(pins, plan.name)
        (target / PINS).write_text("\n".join(kept) + "\n")
        if kept:
            no_deps = " --no-deps" if exact else ""
            uv.run(
                f"pip install --python {target}/bin/python{no_deps} -r {target / PINS}",
                "installing the dependencies",
            )
        if exact and not any(_name(line) == "pytest" for line in kept):
            uv.run(
                f"pip install --python {target}/bin/python pytest{_cutoff(options)}",
                "installing pytest",
            )
        return {**details, "resolution": resolution, "packages": len(kept)}

    def _resolve(
        self,
        plan: PythonPlan,
        source: Path,
        interpreter: Interpreter,
        uv: _Uv,
        options: SetupOptions,
    ) -> tuple[list[str], str, bool]:
        """Pinned requirements, what decided them, and whether they are a complete lock."""
        if plan.lockfile == "uv.lock":
            flags = "".join(f" --extra {e}" for e in plan.extras)
            flags += "".join(f" --group {g}" for g in plan.groups)
            out = uv.run(
                "export --frozen --format requirements-txt --no-hashes --no-emit-project "
                f"--no-header --no-annotate{flags}",
                "reading uv.lock",
            )
            return _lines(out), "uv.lock", True
        if plan.lockfile:
            return lock_requirements(source, plan.lockfile), plan.lockfile, True
        inputs = [plan.source] if plan.source else []
        inputs += plan.requirement_files
        extra = [*plan.requirements, "pytest"]
        (source / "autopack-extra.in").write_text("\n".join(extra) + "\n")
        inputs.append("autopack-extra.in")
        flags = "".join(f" --extra {shlex.quote(e)}" for e in plan.extras if plan.source)
        out = uv.run(
            f"pip compile {' '.join(shlex.quote(i) for i in inputs)}{flags} --python "
            f"{interpreter.path} --no-header --no-annotate --quiet{_cutoff(options)}",
            "resolving the dependencies",
        )
        cutoff = options.cutoff
        return _lines(out), (f"as of {cutoff[:10]}" if cutoff else "newest"), False

    def attach(
        self,
        env: Path,
        worktree: Path,
        layer: Path,
        installer: Installer,
        options: SetupOptions,
        details: dict,
    ) -> None:
        if not read_plan(worktree).installable:
            return
        venv = layer / "venv"
        uv = _Uv(installer, worktree, layer, (env, Path(details["python_prefix"])))
        uv.run(f"venv --python {env}/bin/python {venv}", "creating the run's virtualenv")
        shared = _site_packages(env)
        (_site_packages(venv) / "_autopack_shared.pth").write_text(
            f"import site; site.addsitedir({str(shared)!r})\n"
        )
        before = _untracked(worktree)
        uv.run(
            f"pip install --python {venv}/bin/python --no-deps -e .{_cutoff(options)}",
            "installing the project in editable mode",
        )
        # Build leftovers (an egg-info folder) are not the run's work; the metadata the
        # install needs lives in the layer.
        for leftover in _untracked(worktree) - before:
            remove_tree(worktree / leftover)
        _wrap_scripts(env, venv)

    def runtime(self, env: Path, worktree: Path, layer: Path, details: dict) -> Runtime:
        venv = layer / "venv" if (layer / "venv").exists() else env
        path = f"{venv}/bin:{env}/bin:/usr/local/bin:/usr/bin:/bin"
        return Runtime(
            reader=self.reader,
            variables={"PATH": path, "VIRTUAL_ENV": str(venv)},
            read_only=(env, layer, Path(details["python_prefix"])),
        )

    def test_command(self, root: Path) -> str | None:
        return "python -m pytest"


class _Uv:
    """uv in the install sandbox: the folders being built writable, uv's download cache
    writable, the interpreter (and a shared environment being extended) visible."""

    def __init__(
        self, installer: Installer, cwd: Path, builds: Path, read_only: tuple[Path, ...]
    ) -> None:
        self.installer = installer
        self.cwd = cwd
        self.builds = builds
        self.read_only = (uv_binary(), *read_only)
        self.cache = installer.downloads / "uv"

    def env(self) -> dict[str, str]:
        return {
            "UV_CACHE_DIR": str(self.cache),
            "UV_PYTHON_DOWNLOADS": "never",
            "UV_NO_PROGRESS": "1",
            # The cache and the environment are separate mounts: hard links cannot cross.
            "UV_LINK_MODE": "copy",
            **NO_VCS_VERSION,
        }

    def run(self, arguments: str, what: str) -> str:
        return self.shell(f"{uv_binary()} {arguments}", what, {})

    def shell(self, command: str, what: str, env: dict[str, str]) -> str:
        self.cache.mkdir(parents=True, exist_ok=True)
        return self.installer.run(
            command,
            self.cwd,
            what,
            {**self.env(), **env},
            read_only=self.read_only,
            writable=(self.builds, self.cache),
        )


def _wrap_scripts(env: Path, venv: Path) -> None:
    """The shared environment's commands (pytest, tox, ...) run with its own python,
    which does not see the run's editable project: give the run's virtualenv a copy of
    each that runs with the run's python instead, so `pytest` works like `python -m
    pytest`."""
    for script in sorted((env / "bin").iterdir()):
        target = venv / "bin" / script.name
        if target.exists() or not script.is_file() or script.name.startswith("activate"):
            continue
        with script.open("rb") as handle:
            head = handle.read(200)
        if not head.startswith(b"#!") or b"python" not in head:
            continue  # a binary, or not a Python console script
        target.write_text(f'#!/bin/sh\nexec "{venv}/bin/python" "{script}" "$@"\n')
        target.chmod(0o755)


def _untracked(worktree: Path) -> set[str]:
    listed = run_git(worktree, "ls-files", "-z", "--others", "--exclude-standard", "--directory")
    listed = listed.decode("utf-8", "surrogateescape")
    return {entry.rstrip("/") for entry in listed.split("\0") if entry}


def _lines(output: str) -> list[str]:
    lines = []
    for line in output.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        # The project itself, or any local path: installed from the worktree per run.
        if line.startswith(("-e", ".", "/")) or "file://" in line:
            continue
        lines.append(line)
    return lines


def _name(line: str) -> str:
    try:
        return canonicalize_name(Requirement(line.split(";")[0].strip()).name)
    except InvalidRequirement:
        return ""


def _without_project(pins: list[str], project: str) -> list[str]:
    """Test tools sometimes depend on the project itself; the run installs it from its
    worktree instead, and a copy from the index must not shadow it."""
    return [line for line in pins if not project or _name(line) != project]


def _cutoff(options: SetupOptions) -> str:
    return f" --exclude-newer {options.cutoff}" if options.cutoff else ""


def _site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python3*/site-packages"))
    if not found:
        raise FileNotFoundError(f"no site-packages in {venv}")
    return found[0]
