"""Test results read per test, whatever the runner: pytest's and node's JUnit XML,
`go test` JSON (or verbose text), cargo's libtest output and jest's JSON report.

Each reader fills the same `TestResults`, so the gate compares tests by id whatever
produced them. A reader that finds nothing leaves `format` as "exit-code": the gate then
knows only whether the command succeeded.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
MESSAGE_CHARS = 4000


@dataclass
class TestCase:
    __test__ = False  # not a pytest test class
    outcome: str  # passed | failed | skipped
    message: str = ""
    file: str = ""  # relative to the repository root, where the runner says
    line: int | None = None  # 1-based line of the test's definition, where known


@dataclass
class TestResults:
    __test__ = False
    command: str
    exit_code: int | None
    timed_out: bool
    duration: float
    output: str
    format: str = "exit-code"
    tests: dict[str, TestCase] = field(default_factory=dict)
    # Test files or packages that could not even be loaded (import or build errors).
    errors: dict[str, str] = field(default_factory=dict)
    problem: str = ""  # why this was not a usable test run; empty when it was

    def ids(self, outcome: str) -> set[str]:
        return {name for name, case in self.tests.items() if case.outcome == outcome}

    @property
    def per_test(self) -> bool:
        return self.format != "exit-code"

    @property
    def ran(self) -> int:
        return len(self.tests)

    def counts(self) -> dict[str, int]:
        return {
            "ran": self.ran,
            "passed": len(self.ids(PASSED)),
            "failed": len(self.ids(FAILED)),
            "skipped": len(self.ids(SKIPPED)),
            "errors": len(self.errors),
        }

    def as_record(self) -> dict:
        """What is stored of a run, e.g. as a baseline: outcomes by id, not the output."""
        return {
            "command": self.command,
            "exit_code": self.exit_code,
            "format": self.format,
            "problem": self.problem,
            "duration": round(self.duration, 3),
            **self.counts(),
            "tests": {
                name: [case.outcome, case.file, case.line] for name, case in self.tests.items()
            },
            "failures": {
                name: case.message[:MESSAGE_CHARS]
                for name, case in self.tests.items()
                if case.outcome == FAILED
            },
            "error_messages": {name: text[:MESSAGE_CHARS] for name, text in self.errors.items()},
        }

    @classmethod
    def from_record(cls, record: dict) -> TestResults:
        failures = record.get("failures", {})
        results = cls(
            command=record.get("command", ""),
            exit_code=record.get("exit_code"),
            timed_out=False,
            duration=record.get("duration", 0.0),
            output="",
            format=record.get("format", "exit-code"),
            problem=record.get("problem", ""),
            errors=dict(record.get("error_messages", {})),
        )
        for name, (outcome, file, line) in record.get("tests", {}).items():
            results.tests[name] = TestCase(outcome, failures.get(name, ""), file, line)
        return results


# --- JUnit XML: pytest (xunit1, with file and line) and node's test runner -------------


def read_junit(path: Path, results: TestResults) -> bool:
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError):
        return False
    _junit_suite(root, [], results)
    results.format = "junit"
    return True


def _junit_suite(element: ET.Element, suites: list[str], results: TestResults) -> None:
    for child in element:
        if child.tag == "testsuite":
            # pytest wraps everything in one suite named "pytest"; node's suites are the
            # `describe` blocks around a test and belong to its name.
            name = child.get("name", "")
            _junit_suite(child, suites if name in ("", "pytest") else [*suites, name], results)
        elif child.tag == "testcase":
            _junit_case(child, suites, results)


def _junit_case(case: ET.Element, suites: list[str], results: TestResults) -> None:
    name = case.get("name", "")
    classname = case.get("classname", "")
    file = case.get("file", "")
    problem = case.find("failure")
    if problem is None:
        problem = case.find("error")
    message = ""
    if problem is not None:
        message = ((problem.get("message") or "") + "\n" + (problem.text or "")).strip()
    if problem is not None and "collection failure" in (problem.get("message") or ""):
        results.errors[file or name] = message
        return
    line = case.get("line")
    test_id = _pytest_id(file, classname, name) if file else _plain_id(suites, classname, name)
    outcome = (
        FAILED if problem is not None else SKIPPED if case.find("skipped") is not None else PASSED
    )
    results.tests[test_id] = TestCase(
        outcome, message, file, int(line) + 1 if line and line.isdigit() else None
    )


def _pytest_id(file: str, classname: str, name: str) -> str:
    """pytest's node id from xunit1 attributes: `tests/test_x.py::TestA::test_b[1]`."""
    module = file.removesuffix(".py").replace("/", ".")
    classes = classname[len(module) :].strip(".") if classname.startswith(module) else ""
    return "::".join([file, *[c for c in classes.split(".") if c], name])


def _plain_id(suites: list[str], classname: str, name: str) -> str:
    prefix = [s for s in suites if s]
    if classname and classname not in ("test", *prefix):
        prefix = [classname, *prefix]
    return " > ".join([*prefix, name])


# --- go test: -json events, or the text of -v ---------------------------------------

GO_TEXT = re.compile(r"^\s*--- (PASS|FAIL|SKIP): (\S+)")
GO_PACKAGE = re.compile(r"^(ok|FAIL)\s+(\S+)\s")
GO_NOT_BUILT = re.compile(r"^FAIL\s+(\S+) \[(?:build|setup) failed\]")


def read_go(output: str, results: TestResults) -> bool:
    read = _read_go_json(output, results) or _read_go_text(output, results)
    for line in output.splitlines():
        # Before Go 1.24 a package that does not compile is reported only in text.
        if match := GO_NOT_BUILT.match(line):
            results.errors.setdefault(match.group(1), output[-MESSAGE_CHARS:])
    if results.errors and not read:
        results.format = "go-text"
    return read or bool(results.errors)


def _read_go_json(output: str, results: TestResults) -> bool:
    outputs: dict[tuple[str, str], list[str]] = {}
    failed_packages: dict[str, list[str]] = {}
    seen = False
    for line in output.splitlines():
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict) or "Action" not in event:
            continue
        seen = True
        package, test, action = event.get("Package", ""), event.get("Test", ""), event["Action"]
        if action == "output":
            outputs.setdefault((package, test), []).append(event.get("Output", ""))
        elif action in ("pass", "fail", "skip") and test:
            outcome = {"pass": PASSED, "fail": FAILED, "skip": SKIPPED}[action]
            text = "".join(outputs.get((package, test), []))
            results.tests[f"{package}::{test}"] = TestCase(outcome, text[-MESSAGE_CHARS:])
        elif action == "fail" and not test:
            failed_packages[package] = outputs.get((package, ""), [])
    if not seen:
        return False
    for package, lines in failed_packages.items():
        if not any(t.startswith(package + "::") for t in results.ids(FAILED)):
            # The package failed with no failing test: it did not build.
            results.errors[package] = "".join(lines)[-MESSAGE_CHARS:] or output[-MESSAGE_CHARS:]
    results.format = "go-json"
    return True


def _read_go_text(output: str, results: TestResults) -> bool:
    found = False
    pending: list[tuple[str, str]] = []
    for line in output.splitlines():
        match = GO_TEXT.match(line)
        if match:
            pending.append((match.group(2), match.group(1)))
            continue
        package = GO_PACKAGE.match(line)
        if package:
            for name, verdict in pending:
                outcome = {"PASS": PASSED, "FAIL": FAILED, "SKIP": SKIPPED}[verdict]
                results.tests[f"{package.group(2)}::{name}"] = TestCase(outcome)
                found = True
            pending = []
    if found:
        results.format = "go-text"
    return found


# --- cargo test: libtest's text ---------------------------------------------------------

CARGO_TARGET = re.compile(r"^\s*Running (?:unittests )?(\S+)")
CARGO_DOCTESTS = re.compile(r"^\s*Doc-tests (\S+)")
CARGO_TEST = re.compile(r"^test (.+?) \.\.\. (ok|FAILED|ignored)")
CARGO_STDOUT = re.compile(r"^---- (.+?) stdout ----$")


def read_libtest(output: str, results: TestResults) -> bool:
    target = ""
    by_name: dict[str, str] = {}
    current_failure: str | None = None
    messages: dict[str, list[str]] = {}
    for line in output.splitlines():
        if match := CARGO_TARGET.match(line):
            target, current_failure = match.group(1), None
            continue
        if match := CARGO_DOCTESTS.match(line):
            target, current_failure = f"doctest:{match.group(1)}", None
            continue
        if match := CARGO_TEST.match(line):
            name = (
                match.group(1).split(" - ")[0].strip()
                if target.startswith("doctest:")
                else match.group(1)
            )
            outcome = {"ok": PASSED, "FAILED": FAILED, "ignored": SKIPPED}[match.group(2)]
            test_id = f"{target}::{name}" if target else name
            file = target if target.endswith(".rs") else ""
            results.tests[test_id] = TestCase(outcome, "", file)
            by_name[match.group(1)] = test_id
            continue
        if match := CARGO_STDOUT.match(line):
            current_failure = match.group(1)
            continue
        if current_failure is not None:
            if line.startswith(("failures:", "test result:")):
                current_failure = None
            else:
                messages.setdefault(current_failure, []).append(line)
    for name, lines in messages.items():
        test_id = by_name.get(name)
        if test_id in results.tests:
            results.tests[test_id].message = "\n".join(lines).strip()[-MESSAGE_CHARS:]
    if "error: could not compile" in output:
        results.errors["build"] = _compile_errors(output)
    if results.tests or results.errors:
        results.format = "libtest"
        return True
    return False


def _compile_errors(output: str) -> str:
    lines = [line for line in output.splitlines() if not line.lstrip().startswith("Compiling")]
    return "\n".join(lines)[-MESSAGE_CHARS:]


# --- jest --json ------------------------------------------------------------------------


def read_jest(path: Path, root: Path, results: TestResults) -> bool:
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    for suite in report.get("testResults", []):
        file = _relative(suite.get("name", ""), root)
        cases = suite.get("assertionResults", [])
        if not cases and suite.get("status") == "failed":
            results.errors[file] = (suite.get("message") or "")[-MESSAGE_CHARS:]
        for case in cases:
            status = case.get("status")
            outcome = PASSED if status == "passed" else FAILED if status == "failed" else SKIPPED
            name = case.get("fullName") or case.get("title", "")
            message = "\n".join(case.get("failureMessages") or [])
            results.tests[f"{file}::{name}"] = TestCase(outcome, message[-MESSAGE_CHARS:], file)
    results.format = "jest-json"
    return True


def _relative(path: str, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return path
