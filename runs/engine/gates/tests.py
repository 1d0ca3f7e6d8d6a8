"""The test gate: the project's own tests, judged test by test against the results of
the same command on the commit the phase started from.

A phase passes when its tests really ran (a runner that could not run is a failure),
every test that passed before still passes (pass-to-pass), and the tests the phase is
about pass (fail-to-pass): those its acceptance criteria name and those it added or
changed. A phase with its own test command must also make that command succeed.
"""

from __future__ import annotations

import difflib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from runs.engine.gates.results import (
    FAILED,
    PASSED,
    TestResults,
    locate_go_tests,
    read_go,
    read_jest,
    read_junit,
    read_libtest,
)
from runs.engine.gates.selection import Changes, base_name, required_tests
from runs.engine.outcomes import SetupFailed
from runs.engine.protocols import GateResult, Workspace
from runs.engine.sandbox import Sandbox

FEEDBACK_CHARS = 8000
PER_TEST_CHARS = 1500
PYTEST_EXIT = {2: "interrupted", 3: "internal error", 4: "usage error"}
SHOWN = 5  # test ids named in a one-line summary


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
        result = spec.run(command, timeout, isolated=sandbox)
        results = TestResults(
            command=command,
            exit_code=result.exit_code,
            timed_out=result.timed_out,
            duration=result.duration,
            output=result.output,
        )
        _read(runtime.reader, reports, root, results)
    results.problem = _problem(results, runtime.reader, timeout)
    return results


def _reporting(reader: str, reports: Path, env: dict[str, str], command: str) -> dict[str, str]:
    """Environment through which each runner writes a per-test report, however the
    command invokes it (plainly, through make, npm or a script)."""
    if reader == "pytest":
        options = (
            f"-p no:cacheprovider --junitxml={reports / 'junit.xml'} -o junit_family=xunit1 "
            "--continue-on-collection-errors"
        )
        return {"PYTEST_ADDOPTS": f"{env.get('PYTEST_ADDOPTS', '')} {options}".strip()}
    if reader == "node" and "--test-reporter" not in command:
        # A command that picks its own reporters must get no other (node refuses it).
        options = f"--test-reporter=junit --test-reporter-destination={reports / 'junit.xml'}"
        return {"NODE_OPTIONS": f"{env.get('NODE_OPTIONS', '')} {options}".strip()}
    return {}


def _read(reader: str, reports: Path, root: Path, results: TestResults) -> None:
    junit, jest = reports / "junit.xml", reports / "jest.json"
    if reader in ("pytest", "node") and junit.exists() and junit.stat().st_size:
        read_junit(junit, root, results)
    elif reader == "node" and jest.exists():
        read_jest(jest, root, results)
    elif reader == "go":
        read_go(results.output, results)
        locate_go_tests(results, root)
    elif reader == "cargo":
        read_libtest(results.output, results)


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


def _did_you_mean(token: str, results: TestResults) -> str:
    names = {*results.tests, *(base_name(t) for t in results.tests)}
    close = difflib.get_close_matches(token, names, n=3, cutoff=0.75)
    return f" Tests with a similar name: {', '.join(close)}." if close else ""


def describe_counts(results: TestResults) -> str:
    if results.problem:
        return f"could not run: {results.problem}"
    if not results.per_test:
        return f"exit code {results.exit_code} (results not readable per test)"
    counts = results.counts()
    text = f"{counts['ran']} ran: {counts['passed']} passed, {counts['failed']} failed"
    if counts["skipped"]:
        text += f", {counts['skipped']} skipped"
    if counts["errors"]:
        text += f", {counts['errors']} could not load"
    return text


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
            return GateResult(
                self.name,
                False,
                f"the project environment could not be prepared: {exc}",
                exc.output,
                feedback="Your change to the project's dependencies could not be installed:\n"
                + exc.report()[:FEEDBACK_CHARS],
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


class Verdict:
    """The comparison of one test run with its reference, in words and figures."""

    def __init__(
        self, results: TestResults, reference: TestResults | None, own_command: bool
    ) -> None:
        self.results = results
        self.reference = reference
        self.own_command = own_command
        self.required = None
        before = reference.ids(PASSED) if reference is not None else set()
        self.broken = sorted(t for t in before if self._outcome(t) != PASSED)
        failed_before = reference.ids(FAILED) if reference is not None else set()
        self.still_failing = sorted(results.ids(FAILED) & failed_before)
        known_errors = set(reference.errors) if reference is not None else set()
        self.new_errors = sorted(set(results.errors) - known_errors)
        # The phase's own command is about its tests: none may disappear, failing or not.
        self.vanished = sorted(t for t in failed_before if own_command and t not in results.tests)

    def _outcome(self, test_id: str) -> str:
        case = self.results.tests.get(test_id)
        return case.outcome if case else "missing"

    def required_status(self) -> dict[str, str]:
        if self.required is None:
            return {}
        return {test_id: self._outcome(test_id) for test_id in sorted(self.required.reasons)}

    def problems(self) -> list[str]:
        results = self.results
        if results.problem:
            return [
                f"`{results.command}` {results.problem}. Output:\n"
                f"{results.output[-PER_TEST_CHARS * 2 :]}"
            ]
        if not results.per_test and self.reference is not None and self.reference.per_test:
            return [
                f"`{results.command}` wrote no per-test report (exit {results.exit_code}), as "
                "it did before your change: the tests did not really run. Output:\n"
                f"{results.output[-PER_TEST_CHARS * 2 :]}"
            ]
        if not results.per_test:
            if results.exit_code == 0:
                return []
            return [
                f"`{results.command}` exited with {results.exit_code} (its results could not be "
                f"read test by test, so it must succeed). Output:\n"
                f"{results.output[-PER_TEST_CHARS * 2 :]}"
            ]
        problems = []
        reference_ran = self.reference.ran if self.reference is not None else 0
        if results.ran == 0 and not results.errors and reference_ran:
            problems.append(
                f"`{results.command}` ran no tests (it ran {reference_ran} before your change)."
            )
        for name in self.new_errors:
            problems.append(f"{name} could not be loaded:\n{results.errors[name][:PER_TEST_CHARS]}")
        for test_id in self.broken:
            problems.append(self._test_problem(test_id, "passed before your change"))
        for test_id in self.vanished:
            problems.append(self._test_problem(test_id, "it is in the phase's own test command"))
        for test_id, outcome in self.required_status().items():
            if outcome != PASSED and test_id not in self.broken:
                reason = self.required.reasons[test_id]
                problems.append(self._test_problem(test_id, f"must pass: {reason}"))
        for token in self.required.missing if self.required else []:
            problems.append(
                f"No test matching {token} ran; the acceptance criteria name it."
                + _did_you_mean(token, results)
            )
        if self.own_command and not problems and results.exit_code != 0:
            failing = sorted(results.ids(FAILED))
            problems.append(
                f"The phase's test command `{results.command}` must succeed; it exited with "
                f"{results.exit_code}."
                + "".join("\n\n" + self._test_problem(t, "fails") for t in failing[:SHOWN])
            )
        return problems

    def _test_problem(self, test_id: str, why: str) -> str:
        case = self.results.tests.get(test_id)
        if case is None:
            return f"{test_id} did not run ({why})."
        if case.outcome != FAILED:
            return f"{test_id} was {case.outcome} ({why})."
        return f"FAILED {test_id} ({why}):\n{case.message[:PER_TEST_CHARS]}"

    def details(self) -> dict:
        results = self.results
        reference = self.reference
        return {
            "command": results.command,
            "format": results.format,
            "exit_code": results.exit_code,
            "problem": results.problem,
            **results.counts(),
            "baseline": reference.counts() if reference is not None else None,
            "newly_failing": self.broken,
            "vanished": self.vanished,
            "still_failing": self.still_failing,
            "new_errors": self.new_errors,
            "required": self.required_status(),
            "missing": list(self.required.missing) if self.required else [],
        }

    def summary(self) -> str:
        text = describe_counts(self.results)
        if self.reference is not None and self.results.per_test:
            text += f" (before: {self.reference.ran} ran, {len(self.reference.ids(FAILED))} failed)"
        required = self.required_status()
        if required:
            text += f"; {len(required)} required test(s) pass"
        if self.still_failing:
            text += f"; {len(self.still_failing)} failing as before, not this phase's tests"
        return text

    def failure_summary(self) -> str:
        results = self.results
        if results.problem:
            return f"`{results.command}` {results.problem}"
        if not results.per_test:
            return f"`{results.command}` exited with {results.exit_code}"
        if self.broken:
            return (
                f"{len(self.broken)} test(s) that passed before now fail: "
                f"{', '.join(self.broken[:3])}"
            )
        if self.vanished:
            gone = ", ".join(self.vanished[:3])
            return f"{len(self.vanished)} test(s) of the phase's command are gone: {gone}"
        if self.new_errors:
            shown = ", ".join(self.new_errors[:3])
            return f"{len(self.new_errors)} test file(s) no longer load: {shown}"
        failing = [t for t, outcome in self.required_status().items() if outcome != PASSED]
        if failing:
            return f"{len(failing)} required test(s) do not pass: {', '.join(failing[:3])}"
        if self.required and self.required.missing:
            return f"required tests did not run: {', '.join(self.required.missing[:3])}"
        if results.ran == 0:
            return f"`{results.command}` ran no tests"
        return f"`{results.command}` exited with {results.exit_code}"
