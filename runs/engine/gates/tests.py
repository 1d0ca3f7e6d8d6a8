"""The test gate: the project's own tests, compared with a baseline taken at run start.

A phase passes when no test that passed at baseline fails now, no new collection or
import error appears, and the tests the phase names (acceptance criteria) pass. pytest is
read through JUnit XML; other runners only by exit code.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from runs.engine.commands import run_command
from runs.engine.protocols import GateResult, Workspace
from runs.engine.sandbox import wrap as sandboxed

TEST_ID = re.compile(r"^[\w./-]+\.py::[\w\[\]:.-]+$")
FEEDBACK_CHARS = 6000
PER_TEST_CHARS = 1500


def is_test_id(text: str) -> bool:
    return bool(TEST_ID.match(text.strip()))


def normalise_test_id(test_id: str) -> str:
    """`tests/test_x.py::TestA::test_b` and JUnit's `tests.test_x.TestA::test_b` agree."""
    test_id = test_id.strip()
    if ".py::" in test_id:
        module, _, rest = test_id.partition(".py::")
        parts = rest.split("::")
        return ".".join([module.replace("/", "."), *parts[:-1]]) + "::" + parts[-1]
    return test_id


@dataclass
class TestRun:
    command: str
    exit_code: int | None
    timed_out: bool
    output: str
    duration: float
    junit: bool
    passed: set[str] = field(default_factory=set)
    failing: dict[str, str] = field(default_factory=dict)  # id -> failure message
    collection_errors: dict[str, str] = field(default_factory=dict)

    def baseline(self) -> dict:
        return {
            "command": self.command,
            "exit_code": self.exit_code,
            "junit": self.junit,
            "failing": sorted(self.failing),
            "collection_errors": sorted(self.collection_errors),
        }


def _read_junit(path: Path, run: TestRun) -> None:
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is None:
            if case.find("skipped") is None:
                run.passed.add(name)
            continue
        message = (problem.get("message") or "") + "\n" + (problem.text or "")
        if "collection failure" in (problem.get("message") or "") or not case.get("classname"):
            run.collection_errors[case.get("name", name)] = message.strip()
        else:
            run.failing[name] = message.strip()


def run_tests(
    command: str, root: Path, timeout: float, env: dict[str, str] | None, sandbox: bool = False
) -> TestRun:
    report_dir = Path(tempfile.mkdtemp(prefix="autopack-junit-"))
    junit_path = report_dir / "report.xml"
    env = dict(os.environ if env is None else env)
    # Through the environment, pytest writes its report however the command invokes it
    # (plainly, through make or a script); other runners ignore the variable.
    env["PYTEST_ADDOPTS"] = (
        f"{env.get('PYTEST_ADDOPTS', '')} -p no:cacheprovider --junitxml={junit_path}"
    ).strip()
    try:
        argv = sandboxed(command, root, env, writable=(report_dir,)) if sandbox else command
        result = run_command(argv, root, timeout, None if sandbox else env)
        run = TestRun(
            command=command,
            exit_code=result.exit_code,
            timed_out=result.timed_out,
            output=result.output,
            duration=result.duration,
            junit=False,
        )
        if junit_path.exists() and junit_path.stat().st_size:
            _read_junit(junit_path, run)
            run.junit = True
        return run
    finally:
        shutil.rmtree(report_dir, ignore_errors=True)


class TestGate:
    name = "tests"

    def __init__(
        self,
        command: str,
        baseline: dict,
        required: list[str],
        timeout: float,
        env: dict[str, str] | None = None,
        sandbox: bool = False,
    ) -> None:
        self.command = command
        self.baseline = baseline
        self.required = [normalise_test_id(t) for t in required if is_test_id(t)]
        self.timeout = timeout
        self.env = env
        self.sandbox = sandbox
        self.sandbox = sandbox

    def check(self, workspace: Workspace) -> GateResult:
        run = run_tests(self.command, workspace.root, self.timeout, self.env, self.sandbox)
        problems = self._problems(run)
        details = {
            "command": run.command,
            "exit_code": run.exit_code,
            "junit": run.junit,
            "passed": len(run.passed),
            "failing": sorted(run.failing),
            "new_failures": sorted(set(run.failing) - set(self.baseline.get("failing", []))),
        }
        if not problems:
            summary = f"{len(run.passed)} passed" if run.junit else f"exit code {run.exit_code}"
            return GateResult(
                self.name,
                True,
                f"tests passed ({summary})",
                run.output,
                details=details,
                duration=run.duration,
            )
        feedback = "The project's tests failed after your change:\n" + "\n".join(problems)
        new = details["new_failures"]
        summary = (
            f"{len(new)} test(s) that passed at baseline now fail: {', '.join(new[:3])}"
            if new
            else problems[0].split("\n")[0].rstrip(":")
        )
        return GateResult(
            self.name,
            False,
            summary,
            run.output,
            feedback=feedback[:FEEDBACK_CHARS],
            details=details,
            duration=run.duration,
        )

    def _problems(self, run: TestRun) -> list[str]:
        if run.timed_out:
            return [f"`{run.command}` did not finish within {self.timeout:.0f} s and was killed."]
        if run.exit_code in (126, 127):
            # The shell could not find or run the command: no test ran, so nothing passed.
            return [
                f"`{run.command}` could not be run (exit {run.exit_code}):\n"
                f"{run.output[-PER_TEST_CHARS:]}"
            ]
        if not run.junit:
            if run.exit_code == 0 or self.baseline.get("exit_code") not in (0, None):
                return []
            return [
                f"`{run.command}` exited with {run.exit_code} (it passed at baseline). "
                f"Output:\n{run.output[-PER_TEST_CHARS * 2 :]}"
            ]
        problems = []
        new_errors = set(run.collection_errors) - set(self.baseline.get("collection_errors", []))
        for name in sorted(new_errors):
            problems.append(
                f"Collection/import error in {name}:\n"
                f"{run.collection_errors[name][:PER_TEST_CHARS]}"
            )
        stopped = run.exit_code in (2, 3, 4) and run.exit_code != self.baseline.get("exit_code")
        if stopped and not new_errors and not run.failing:
            problems.append(
                f"`{run.command}` stopped with exit code {run.exit_code}:\n"
                f"{run.output[-PER_TEST_CHARS:]}"
            )
        for name in sorted(set(run.failing) - set(self.baseline.get("failing", []))):
            problems.append(f"FAILED {name}:\n{run.failing[name][:PER_TEST_CHARS]}")
        for name in self.required:
            if name not in run.passed and name not in run.failing:
                problems.append(f"Required test {name} did not run (it must exist and pass).")
            elif name in run.failing and name in self.baseline.get("failing", []):
                problems.append(
                    f"Required test {name} still fails:\n{run.failing[name][:PER_TEST_CHARS]}"
                )
        return problems
