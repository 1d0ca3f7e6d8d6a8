"""Read-only probes of a failed attempt, run before its change is rolled back: what git
sees, the failing test alone and verbose, whether the changed modules import, what is
installed. What runs comes from an allowlist; the only values taken from the failure
(test ids, module names) must match strict patterns, and every command that runs
project code runs in the sandbox, without network.
"""

from __future__ import annotations

import os
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from runs.engine.commands import CommandResult, run_command
from runs.engine.configfile import load_config_file
from runs.engine.failures import Failure, FailureKind
from runs.engine.gates.tests import Runtime
from runs.engine.sandbox import Sandbox
from runs.engine.workspace import git_dir_of, safe_env

MAX_IMPORTS = 3
TEST_ID = re.compile(r"^\w[\w./-]*\.py(::[\w\[\]\-.,]+)*$", re.ASCII)
MODULE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$", re.ASCII)
_PYTHON_COMMAND = re.compile(r"\b(?:pytest|python3?|tox|nox)\b")
# Double quotes only: the recorded command stays readable in shell quoting.
_IMPORT = (
    "import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]; "
    'print("imported", *sys.argv[1:])'
)
_PACKAGES = (
    "import importlib.metadata as m; "
    'names = {d.name + "==" + d.version for d in m.distributions()}; '
    "print(*sorted(names, key=str.lower), sep=chr(10))"
)


class Skip(Exception):
    """A probe that does not apply to this failure; the message says why."""


@dataclass(frozen=True)
class ProbeResult:
    name: str
    command: str  # what ran, for the record ("" for gate_output_tail)
    output: str
    exit_code: int | None
    duration: float
    skipped: str = ""  # why it did not run ("" when it ran)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class _Context:
    root: Path
    failure: Failure
    runtime: Runtime
    sandbox: bool
    python: bool  # a Python project: its test reader or command says so
    timeout: float
    chars: int  # how much output is kept


Ran = tuple[str, CommandResult]  # the command as recorded, and what it did
PROBES: dict[str, Callable[[_Context], Ran]] = {}  # in their default order


def _probe(function: Callable[[_Context], Ran]) -> Callable[[_Context], Ran]:
    PROBES[function.__name__] = function
    return function


@_probe
def git_status(ctx: _Context) -> Ran:
    return _git(ctx, "status --porcelain=v1 --untracked-files=all")


@_probe
def git_diff(ctx: _Context) -> Ran:
    # The start is what matters (the stat, then the first hunks), and run_command keeps
    # the end of an output: cut it here.
    return _git(ctx, f"diff --stat --patch HEAD | head -c {ctx.chars}")


@_probe
def rerun_failing_test(ctx: _Context) -> Ran:
    if not ctx.failure.failing_tests:
        raise Skip("no failing test is known")
    if ctx.runtime.reader != "pytest":
        raise Skip("only pytest tests are re-run")
    test = ctx.failure.failing_tests[0]
    if not TEST_ID.match(test) or ".." in test.split("::")[0].split("/"):
        raise Skip(f"refused to run the test id {test[:200]!r}: not a plain pytest node id")
    options = ["-x", "-vv", "--tb=long", "-p", "no:cacheprovider"]
    return _project(ctx, ["python", "-m", "pytest", *options, test])


@_probe
def import_check(ctx: _Context) -> Ran:
    if not ctx.python:
        raise Skip("not a Python project")
    files = [p for p in ctx.failure.changed_files if (ctx.root / p).is_file()]
    modules = [module for module in map(_module, files) if module][:MAX_IMPORTS]
    if not modules:
        raise Skip("no changed Python module outside the tests")
    extra = {}
    if any(path.startswith("src/") for path in files):
        paths = [str(ctx.root / "src"), ctx.runtime.variables.get("PYTHONPATH", "")]
        extra["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
    return _project(ctx, ["python", "-c", _IMPORT, *modules], extra)


@_probe
def installed_packages(ctx: _Context) -> Ran:
    if ctx.runtime.reader == "node":
        return _project(ctx, ["npm", "ls", "--depth=0"])
    if not ctx.python:
        raise Skip("only Python and Node environments are listed")
    # From the interpreter's own metadata: environments made by uv have no pip.
    return _project(ctx, ["python", "-c", _PACKAGES])


@_probe
def gate_output_tail(ctx: _Context) -> Ran:
    if not ctx.failure.gate_output.strip():
        raise Skip("the failure has no gate output")
    return "", CommandResult("", None, ctx.failure.gate_output, 0.0, False)


def _git(ctx: _Context, arguments: str) -> Ran:
    """Autopack's own git, not project code: not sandboxed, with the safe configuration.
    `arguments` are this module's own, never taken from the failure."""
    env = {**os.environ, **safe_env(ctx.root, git_dir_of(ctx.root), ctx.root)}
    return f"git {arguments}", run_command(f"git {arguments}", ctx.root, ctx.timeout, env)


def _project(ctx: _Context, argv: list[str], extra: dict[str, str] | None = None) -> Ran:
    """Project code: sandboxed, no network, no writable path but the worktree."""
    command = shlex.join(argv)
    env = {**ctx.runtime.variables, **(extra or {})}
    sandbox = Sandbox(ctx.root, read_only=ctx.runtime.read_only, env=env, git=True)
    return command, sandbox.run(command, ctx.timeout, isolated=ctx.sandbox)


def _module(path: str) -> str | None:
    """The dotted module of a Python file outside the tests."""
    *folders, name = path.split("/")
    tests = {"test", "tests"} & set(folders) or name.startswith("test_") or name == "conftest.py"
    if not name.endswith(".py") or tests or name.endswith("_test.py"):
        return None
    if folders[:1] == ["src"]:
        folders = folders[1:]
    parts = [*folders, name.removesuffix(".py")]
    module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    return module if MODULE.match(module) else None


DEFAULT_KINDS = (
    *("edit_not_applied", "syntax_error", "import_error", "test_regression"),
    *("target_failing", "environment"),
)


class DiagnosticsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    kinds: list[str] = list(DEFAULT_KINDS)  # failure kinds that get probes
    max_probes: int = Field(default=5, ge=0)  # probes that run, per failure
    max_seconds: float = Field(default=60, gt=0)  # for all probes of a failure
    probe_timeout: float = Field(default=30, gt=0)
    max_output_chars: int = Field(default=4000, ge=100)  # of each probe's output, its end
    probes: list[str] = list(PROBES)  # in the order they run

    @field_validator("kinds", "probes")
    @classmethod
    def _known(cls, values: list[str], info: ValidationInfo) -> list[str]:
        known = FailureKind.ALL if info.field_name == "kinds" else tuple(PROBES)
        if unknown := [value for value in values if value not in known]:
            raise ValueError(f"unknown {', '.join(map(repr, unknown))}; known: {', '.join(known)}")
        return values


def load_diagnostics_config(path: Path) -> DiagnosticsConfig:
    return load_config_file(path, DiagnosticsConfig, "diagnostics config")


def wants(config: DiagnosticsConfig, kind: str) -> bool:
    """Whether a failure of this kind gets probes."""
    return config.enabled and kind in config.kinds


def run_probes(
    root: Path,
    failure: Failure,
    config: DiagnosticsConfig,
    runtime: Runtime,
    *,
    sandbox: bool,
    test_command: str = "",
) -> list[ProbeResult]:
    """The configured probes in order, within the budgets, on the worktree as the failed
    attempt left it. A probe that does not run is recorded with why."""
    started = time.monotonic()
    results: list[ProbeResult] = []
    chars = config.max_output_chars
    python = runtime.reader == "pytest" or bool(_PYTHON_COMMAND.search(test_command))
    for name in config.probes:
        # No probe outlasts what is left of the budget.
        timeout = min(config.probe_timeout, config.max_seconds - (time.monotonic() - started))
        context = _Context(root, failure, runtime, sandbox, python, timeout, chars)
        try:
            if sum(not result.skipped for result in results) >= config.max_probes:
                raise Skip(f"max_probes ({config.max_probes}) probes already ran")
            if timeout <= 0:
                raise Skip(f"max_seconds ({config.max_seconds:g} s) spent on earlier probes")
            command, done = PROBES[name](context)
        except Skip as skip:
            results.append(ProbeResult(name, "", "", None, 0.0, skipped=str(skip)))
            continue
        stopped = f"\n(stopped after {timeout:.1f} s)" if done.timed_out else ""
        output = (done.output + stopped)[-chars:]
        results.append(ProbeResult(name, command, output, done.exit_code, round(done.duration, 3)))
    return results


def summarise(results: list[ProbeResult] | list[dict], limit: int = 3000) -> str:
    """The probes for a prompt, within `limit` characters: a line for each (name,
    command, exit or why skipped), then the end of each output, sharing what is left."""
    probes = [r.as_dict() if isinstance(r, ProbeResult) else r for r in results]
    headings = [_heading(probe) for probe in probes]
    shown = [i for i, p in enumerate(probes) if not p.get("skipped") and p["output"].strip()]
    room = limit - sum(len(heading) + 1 for heading in headings)
    tails: dict[int, str] = {}
    # Shortest first: what a short output leaves over goes to the longer ones.
    for n, i in enumerate(sorted(shown, key=lambda i: len(probes[i]["output"]))):
        tails[i] = _tail(probes[i]["output"], room // (len(shown) - n) - 1)
        room -= len(tails[i]) + 1
    parts = [part for i, h in enumerate(headings) for part in (h, tails.get(i)) if part]
    return "\n".join(parts)[:limit]


def _heading(probe: dict) -> str:
    if probe.get("skipped"):
        return f"## {probe['name']}: skipped ({probe['skipped']})"
    command = f" `{probe['command'][:200]}`" if probe.get("command") else ""
    code = probe.get("exit_code")
    status = "no exit code" if code is None else f"exit {code}"
    empty = "" if probe["output"].strip() else ", no output"
    return f"## {probe['name']}{command} ({status}{empty})"


def _tail(text: str, chars: int) -> str:
    """The end of `text` in at most `chars`, from the start of a line when one fits."""
    whole = text.rstrip()
    tail = whole[-chars:] if chars > 0 else ""
    return tail.split("\n", 1)[1] if len(tail) < len(whole) and "\n" in tail else tail
