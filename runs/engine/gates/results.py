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
RANK = {SKIPPED: 0, PASSED: 1, FAILED: 2}
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

    def add(self, test_id: str, case: TestCase) -> None:
        """Record a test; when an id repeats (runners that do not say which file a test
        is in), the worse outcome stays: a failure is never hidden by a pass."""
        known = self.tests.get(test_id)
        if known is None or RANK[case.outcome] > RANK[known.outcome]:
            self.tests[test_id] = case

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


def read_junit(path: Path, root: Path, results: TestResults) -> bool:
    try:
        tree = ET.parse(path).getroot()
    except (ET.ParseError, OSError):
        return False
    files = [case.get("file", "") for case in tree.iter("testcase") if case.get("file")]
    _junit_suite(tree, [], _Paths(root, _rootdir(root, files)), results)
    results.format = "junit"
    return True


@dataclass(frozen=True)
class _Paths:
    root: Path  # the repository
    rootdir: Path  # where pytest's paths start

    def from_root(self, path: str) -> str:
        return (self.rootdir / path).relative_to(self.root).as_posix()


def _rootdir(root: Path, files: list[str]) -> Path:
    """Where pytest's paths start: the repository root, or the folder the command ran
    pytest in (`cd backend && pytest`), found from a test file it names."""
    if not files or (root / files[0]).is_file():
        return root
    for found in sorted(root.rglob(Path(files[0]).name)):
        if found.as_posix().endswith("/" + files[0]) and ".git" not in found.parts:
            base = Path(found.as_posix().removesuffix("/" + files[0]))
            if all((base / f).is_file() for f in files[:20]):
                return base
    return root


def _junit_suite(
    element: ET.Element, suites: list[str], paths: _Paths, results: TestResults
) -> None:
    for child in element:
        if child.tag == "testsuite":
            # pytest wraps everything in one suite named "pytest"; node's suites are the
            # `describe` blocks around a test and belong to its name.
            name = child.get("name", "")
            inner = suites if name in ("", "pytest") else [*suites, name]
            _junit_suite(child, inner, paths, results)
        elif child.tag == "testcase":
            _junit_case(child, suites, paths, results)


def _junit_case(case: ET.Element, suites: list[str], paths: _Paths, results: TestResults) -> None:
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
        results.errors[paths.from_root(file) if file else name] = message
        return
    line = case.get("line")
    outcome = (
        FAILED if problem is not None else SKIPPED if case.find("skipped") is not None else PASSED
    )
    if not file:  # not pytest: node's test runner
        results.add(_plain_id(suites, classname, name), TestCase(outcome, message))
        return
    test_file, classes = _pytest_location(classname, paths.rootdir)
    # xunit1's file and line are where the test function is defined: a base class's
    # file for an inherited test, which then belongs to the subclass's file.
    number = int(line) + 1 if line and line.isdigit() and test_file == file else None
    located = paths.from_root(test_file or file)
    results.add("::".join([located, *classes, name]), TestCase(outcome, message, located, number))


def _pytest_location(classname: str, root: Path) -> tuple[str, list[str]]:
    """The test file and classes of pytest's classname, which is its node id with the
    file's path written with dots: `tests.unit.test_x.TestA` -> tests/unit/test_x.py."""
    parts = classname.split(".")
    for end in range(len(parts), 0, -1):
        candidate = "/".join(parts[:end]) + ".py"
        if (root / candidate).is_file():
            return candidate, parts[end:]
    return "", []


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
            results.add(f"{package}::{test}", TestCase(outcome, text[-MESSAGE_CHARS:]))
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


def locate_go_tests(results: TestResults, root: Path) -> None:
    """`go test` names packages, not files: find each test's file and line in its
    package's folder, so criteria naming a test file and changed tests work for Go."""
    match = re.search(r"^module\s+(\S+)", _text(root / "go.mod"), re.MULTILINE)
    if match is None:
        return
    module = match.group(1)
    sources: dict[str, list[tuple[str, list[str]]]] = {}
    for test_id, case in results.tests.items():
        package, _, name = test_id.partition("::")
        if package != module and not package.startswith(module + "/"):
            continue
        folder = package[len(module) :].strip("/")
        if folder not in sources:
            files = sorted((root / folder).glob("*_test.go"))
            sources[folder] = [(str(f.relative_to(root)), _text(f).splitlines()) for f in files]
        pattern = re.compile(rf"^func\s+{re.escape(name.split('/')[0])}\s*\(")
        for path, lines in sources[folder]:
            number = next((n for n, line in enumerate(lines, 1) if pattern.match(line)), None)
            if number is not None:
                case.file, case.line = path, number
                break


def _text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


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
                results.add(f"{package.group(2)}::{name}", TestCase(outcome))
                found = True
            pending = []
    if found:
        results.format = "go-text"
    return found


# --- cargo test: libtest's text ---------------------------------------------------------

CARGO_TARGET = re.compile(r"^\s*Running (unittests )?(\S+)(?: \((\S+)\))?")
DOCTEST_LINE = re.compile(r" \(line \d+\)$")
CARGO_DOCTESTS = re.compile(r"^\s*Doc-tests (\S+)")
CARGO_TEST = re.compile(r"^test (.+?) \.\.\. (ok|FAILED|ignored)")
CARGO_STDOUT = re.compile(r"^---- (.+?) stdout ----$")


def read_libtest(output: str, results: TestResults) -> bool:
    """Tests are named by their test binary (the crate, or the integration test target),
    so that the crates of a workspace keep their tests apart."""
    binary, file = "", ""
    failure: str | None = None
    messages: dict[str, list[str]] = {}
    for line in output.splitlines():
        if match := CARGO_TARGET.match(line):
            failure = None
            binary = Path(match.group(3) or match.group(2)).name.rsplit("-", 1)[0]
            binary = binary.removesuffix(".rs")
            # A lib's unit tests live in any of its modules: left for the gate to find.
            file = "" if match.group(1) else match.group(2)
            continue
        if match := CARGO_DOCTESTS.match(line):
            binary, file, failure = f"doctest:{match.group(1)}", "", None
            continue
        if match := CARGO_TEST.match(line):
            name = match.group(1)
            if binary.startswith("doctest:"):
                name = DOCTEST_LINE.sub("", name)  # the line moves with every edit above it
            outcome = {"ok": PASSED, "FAILED": FAILED, "ignored": SKIPPED}[match.group(2)]
            results.add(f"{binary}::{name}", TestCase(outcome, "", file))
            continue
        if match := CARGO_STDOUT.match(line):
            failure = f"{binary}::{match.group(1)}"
            continue
        if failure is not None:
            if line.startswith(("failures:", "test result:")):
                failure = None
            else:
                messages.setdefault(failure, []).append(line)
    for test_id, lines in messages.items():
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
            results.add(f"{file}::{name}", TestCase(outcome, message[-MESSAGE_CHARS:], file))
    results.format = "jest-json"
    return True


def _relative(path: str, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return path
