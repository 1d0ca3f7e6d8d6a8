"""The test gate: the project's own tests, judged test by test against the results of
the same command on the commit the phase started from.

A phase passes when its tests really ran (a runner that could not run is a failure),
every test that passed before still passes (pass-to-pass), and the tests the phase is
about pass (fail-to-pass): those its acceptance criteria name and those it added or
changed. A phase with its own test command must also make that command succeed.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from runs.engine.gates.results import (
    TestResults,
    locate_go_tests,
    read_go,
    read_jest,
    read_junit,
    read_libtest,
)
from runs.engine.gates.selection import Changes, names_tests, required_tests
from runs.engine.gates.verdict import Verdict
from runs.engine.outcomes import SetupFailed
from runs.engine.protocols import GateResult, Workspace
from runs.engine.sandbox import Sandbox

FEEDBACK_CHARS = 8000
PYTEST_EXIT = {2: "interrupted", 3: "internal error", 4: "usage error"}


@dataclass(frozen=True)
class Runtime:
    """What test commands of a project environment run with."""

    reader: str = "exit-code"  # pytest | node | go | cargo | exit-code
    variables: dict[str, str] = field(default_factory=dict)
    read_only: tuple[Path, ...] = ()
    writable: tuple[Path, ...] = ()


def run_tests(
    command: str, root: Path, runtime: Runtime, timeout: float, sandbox: bool
) -> TestResults:
    with tempfile.TemporaryDirectory(prefix="autopack-reports-") as folder:
        reports = Path(folder)
        env = {**runtime.variables, "AUTOPACK_REPORTS": str(reports)}
        env.update(_reporting(runtime.reader, reports, env, command))
        spec = Sandbox(
            workdir=root,
            read_only=runtime.read_only,
            writable=(*runtime.writable, reports),
            env=env,
            git=True,
        )
        # Go and cargo report per test on stdout: their readers need all of it, not the
        # tail kept for people (a large suite's first tests would look as if not run).
        whole = Path(folder) / "output.log"
        result = spec.run(command, timeout, isolated=sandbox, keep=whole)
        results = TestResults(
            command=command,
            exit_code=result.exit_code,
            timed_out=result.timed_out,
            duration=result.duration,
            output=result.output,
        )
        _read(runtime.reader, reports, root, results, whole)
    results.problem = _problem(results, runtime.reader, timeout)
    return results


def _reporting(reader: str, reports: Path, env: dict[str, str], command: str) -> dict[str, str]:
    """Environment through which each runner writes a per-test report, however the
    command invokes it (plainly, through make, npm or a script)."""
    if reader == "pytest":
        # The cache goes with the report, out of the worktree (tests may use the fixture).
        options = (
            f"-o cache_dir={reports / '.pytest_cache'} --junitxml={reports / 'junit.xml'} "
            "-o junit_family=xunit1 --continue-on-collection-errors"
        )
        return {"PYTEST_ADDOPTS": f"{env.get('PYTEST_ADDOPTS', '')} {options}".strip()}
    if reader == "node" and "--test-reporter" not in command:
        # A command that picks its own reporters must get no other (node refuses it).
        options = f"--test-reporter=junit --test-reporter-destination={reports / 'junit.xml'}"
        return {"NODE_OPTIONS": f"{env.get('NODE_OPTIONS', '')} {options}".strip()}
    return {}


def _read(reader: str, reports: Path, root: Path, results: TestResults, whole: Path) -> None:
    junit, jest = reports / "junit.xml", reports / "jest.json"
    output = whole.read_text(errors="replace") if whole.exists() else results.output
    if reader in ("pytest", "node") and junit.exists() and junit.stat().st_size:
        read_junit(junit, root, results)
    elif reader == "node" and jest.exists():
        read_jest(jest, root, results)
    elif reader == "go":
        read_go(output, results)
        locate_go_tests(results, root)
    elif reader == "cargo":
        read_libtest(output, results)


def _problem(results: TestResults, reader: str, timeout: float) -> str:
    """Why this was not a usable test run, or "" when it was."""
    code = results.exit_code
    if results.timed_out:
        return f"did not finish within {timeout:.0f} s and was killed"
    if code in (126, 127):
        return f"could not be run (exit {code}: command not found or not executable)"
    ran_pytest = "pytest" in results.command or "pytest" in results.output
    if reader == "pytest" and code in PYTEST_EXIT and ran_pytest:
        return f"stopped with pytest exit code {code} ({PYTEST_EXIT[code]}): no usable test run"
    if results.per_test:
        if not results.tests and results.errors:
            return "no test could be loaded (every test file failed to import or build)"
        return ""
    if code is not None and (code < 0 or code > 128):
        return f"crashed (exit {code}, killed by signal {abs(code) % 128})"
    if reader == "pytest" and code not in (0, 5) and ran_pytest:
        if "No module named pytest" in results.output:
            return "could not start pytest: it is not installed in the project environment"
        return f"exited with {code} without writing its report: pytest did not start or crashed"
    return ""


class TestGate:
    __test__ = False  # not a pytest test class
    name = "tests"

    def __init__(
        self,
        command: str,
        reference: TestResults | None,
        criteria: list[str],
        runtime: Callable[[], Runtime],
        timeout: float,
        *,
        sandbox: bool,
        own_command: bool = False,
        name: str = "tests",
    ) -> None:
        """`runtime` is asked for at every check: a change to the project's manifests
        gets a rebuilt environment before its tests run."""
        self.name = name
        self.command = command
        # A reference run that could not run tells nothing about which tests existed.
        self.reference = reference if reference is not None and not reference.problem else None
        self.criteria = criteria
        self.runtime = runtime
        self.timeout = timeout
        self.sandbox = sandbox
        self.own_command = own_command

    def check(self, workspace: Workspace) -> GateResult:
        try:
            runtime = self.runtime()
        except SetupFailed as exc:
            return _setup_failed(
                self.name, exc, "Your change to the project's dependencies could not be installed"
            )
        results = run_tests(self.command, workspace.root, runtime, self.timeout, self.sandbox)
        changes: Changes = workspace.changed_lines()
        verdict = Verdict(results, self.reference, self.own_command)
        if not results.problem and results.per_test:
            verdict.required = required_tests(
                self.criteria, results, self.reference, changes, workspace.read_text
            )
        problems = verdict.problems()
        details = verdict.details()
        if not problems:
            return GateResult(
                self.name,
                True,
                verdict.summary(),
                results.output,
                details=details,
                duration=results.duration,
                record=results.as_record(),
            )
        feedback = "The project's tests did not pass after your change:\n\n" + "\n\n".join(problems)
        return GateResult(
            self.name,
            False,
            verdict.failure_summary(),
            results.output,
            feedback=feedback[:FEEDBACK_CHARS],
            details=details,
            duration=results.duration,
        )


class DiscoveredTestGate:
    """The test gate of a phase that starts with nothing to test (a repository without a
    known toolchain or test command): the change may create a project, so the command is
    looked for again when the gate runs, and its new tests must pass."""

    name = "tests"

    def __init__(
        self,
        discover: Callable[[], tuple[str | None, Runtime]],
        criteria: list[str],
        timeout: float,
        *,
        sandbox: bool,
    ) -> None:
        self.discover = discover
        self.criteria = criteria
        self.timeout = timeout
        self.sandbox = sandbox

    def check(self, workspace: Workspace) -> GateResult:
        try:
            command, runtime = self.discover()
        except SetupFailed as exc:
            return _setup_failed(
                self.name, exc, "The project your change sets up could not be installed"
            )
        if command is not None:
            gate = TestGate(
                command, None, self.criteria, lambda: runtime, self.timeout, sandbox=self.sandbox
            )
            return gate.check(workspace)
        named = names_tests(self.criteria)
        if named:
            return GateResult(
                self.name,
                False,
                f"no test command applies, yet the criteria name tests: {', '.join(named[:3])}",
                feedback="The acceptance criteria name tests, but the repository has no test "
                "setup Autopack recognises (pyproject.toml, package.json, go.mod, Cargo.toml) "
                "and no test_command is set.",
            )
        return GateResult(self.name, True, "no tests: no toolchain detected, no test_command")


def _setup_failed(name: str, exc: SetupFailed, what: str) -> GateResult:
    """A failed gate for an environment the change made impossible to install."""
    return GateResult(
        name,
        False,
        f"the project environment could not be prepared: {exc}",
        exc.output,
        feedback=f"{what}:\n" + exc.report()[:FEEDBACK_CHARS],
    )
