"""What kind of failure an attempt ended with, and its signature: the words of the
failure with what varies between occurrences (paths, numbers, addresses, ids, times)
normalised away, so two occurrences of one mistake compare equal or close."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from runs.engine.outcomes import FailureCode, Outcome


class FailureKind:
    MALFORMED_REPLY = "malformed_reply"
    EDIT_NOT_APPLIED = "edit_not_applied"
    PATH_REFUSED = "path_refused"
    PROTECTED_DENIED = "protected_denied"
    SYNTAX_ERROR = "syntax_error"
    IMPORT_ERROR = "import_error"  # an import or collection error
    TEST_REGRESSION = "test_regression"
    TARGET_FAILING = "target_failing"  # the tests the phase must make pass still fail
    DELIVERABLES_MISSING = "deliverables_missing"
    TIMEOUT = "timeout"
    TRUNCATED = "truncated"
    PROVIDER_ERROR = "provider_error"
    AUDITOR_REJECTED = "auditor_rejected"
    ENVIRONMENT = "environment"  # the project environment could not be prepared
    BUDGET = "budget"
    WORKER_LOST = "worker_lost"

    ALL = (
        MALFORMED_REPLY,
        EDIT_NOT_APPLIED,
        PATH_REFUSED,
        PROTECTED_DENIED,
        SYNTAX_ERROR,
        IMPORT_ERROR,
        TEST_REGRESSION,
        TARGET_FAILING,
        DELIVERABLES_MISSING,
        TIMEOUT,
        TRUNCATED,
        PROVIDER_ERROR,
        AUDITOR_REJECTED,
        ENVIRONMENT,
        BUDGET,
        WORKER_LOST,
    )
    CHOICES = [(kind, kind.replace("_", " ")) for kind in ALL]


_BY_OUTCOME = {
    Outcome.FORMAT_ERROR: FailureKind.MALFORMED_REPLY,
    Outcome.APPLY_ERROR: FailureKind.EDIT_NOT_APPLIED,
    Outcome.POLICY_VIOLATION: FailureKind.PATH_REFUSED,
    Outcome.DENIED: FailureKind.PROTECTED_DENIED,
    Outcome.TRUNCATED: FailureKind.TRUNCATED,
    Outcome.PROVIDER_ERROR: FailureKind.PROVIDER_ERROR,
    Outcome.AUDITOR_REJECTED: FailureKind.AUDITOR_REJECTED,
    Outcome.AUDITOR_ERROR: FailureKind.AUDITOR_REJECTED,
    Outcome.GOAL_DRIFT: FailureKind.AUDITOR_REJECTED,  # judged off the run's intention
    Outcome.WORKER_LOST: FailureKind.WORKER_LOST,
    FailureCode.BUDGET_EXHAUSTED: FailureKind.BUDGET,
    FailureCode.SETUP_FAILED: FailureKind.ENVIRONMENT,
    FailureCode.TESTS_CANNOT_RUN: FailureKind.ENVIRONMENT,
}
_SYNTAX = re.compile(
    r"\b(?:SyntaxError|IndentationError|TabError)\b|syntax error|expected .{1,40}, found"
)
_IMPORT = re.compile(
    r"\b(?:ModuleNotFoundError|ImportError|Cannot find module|ERR_MODULE_NOT_FOUND|"
    r"could not be loaded|cannot find package|unresolved import|no required module)\b",
    re.I,
)


def classify(outcome: str, message: str, gates: list[dict] | None = None) -> str:
    """The kind of a failed attempt, from its outcome, error and gate results."""
    if outcome != Outcome.GATE_FAILED:
        return _BY_OUTCOME.get(outcome, FailureKind.ENVIRONMENT)
    failed = [gate for gate in gates or [] if not gate.get("passed")]
    tests = [gate for gate in failed if gate.get("name") != "deliverables"]
    if not tests:
        return FailureKind.DELIVERABLES_MISSING if failed else _from_text(message)
    gate = tests[0]
    details = gate.get("details") or {}
    summary = gate.get("summary", "")
    text = f"{summary}\n{gate.get('feedback', '')}\n{gate.get('output', '')}"
    problem = details.get("problem", "")
    if "did not finish within" in problem or "did not finish within" in summary:
        return FailureKind.TIMEOUT
    if "environment could not be prepared" in summary:
        return FailureKind.ENVIRONMENT
    if _SYNTAX.search(text):
        return FailureKind.SYNTAX_ERROR
    if details.get("new_errors") or "no test could be loaded" in problem:
        return FailureKind.IMPORT_ERROR
    if details.get("newly_failing") or details.get("vanished"):
        return FailureKind.TEST_REGRESSION
    required = details.get("required") or {}
    if any(outcome != "passed" for outcome in required.values()) or details.get("missing"):
        return FailureKind.TARGET_FAILING
    if _IMPORT.search(text) or problem:
        return FailureKind.IMPORT_ERROR
    return FailureKind.TEST_REGRESSION


def _from_text(message: str) -> str:
    if _SYNTAX.search(message):
        return FailureKind.SYNTAX_ERROR
    if _IMPORT.search(message):
        return FailureKind.IMPORT_ERROR
    return FailureKind.TEST_REGRESSION


_PATTERNS = [
    (re.compile(r"\b\d{4}-\d{2}-\d{2}[T ][\d:.]+(?:Z|[+-]\d{2}:?\d{2})?"), "<time>"),
    (re.compile(r"\b\d{1,2}:\d{2}:\d{2}(?:\.\d+)?\b"), "<time>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<id>"),
    (re.compile(r"0x[0-9a-f]+", re.I), "<addr>"),
    (re.compile(r"\b[0-9a-f]{7,40}\b"), "<hash>"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b"), "<host>"),
    (re.compile(r"(?:[\w.-]*/)+[\w.-]+"), "<path>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
    (re.compile(r"'[^'\n]*'|\"[^\"\n]*\""), "<str>"),
    (re.compile(r"[ \t]+"), " "),
]
SIGNATURE_CHARS = 600
FEEDBACK_TAIL = 800


def normalise(message: str, whole: bool = False) -> str:
    """The message with paths, numbers, addresses, ids, times and quoted values replaced
    by placeholders, lower-cased: its first line, or (`whole`) its first
    SIGNATURE_CHARS characters over all lines."""
    text = message.strip()
    if not whole:
        text = text.splitlines()[0] if text else ""
    for pattern, placeholder in _PATTERNS:
        text = pattern.sub(placeholder, text)
    lines = [line.strip() for line in text.lower().splitlines() if line.strip()]
    return "\n".join(lines)[:SIGNATURE_CHARS] if whole else " ".join(lines).strip()


def signature(outcome: str, message: str) -> str:
    """A short hash of the outcome and the normalised first line: equal for two
    occurrences of one failure (learned rules and the health budget count by it)."""
    return hashlib.sha1(f"{outcome}|{normalise(message)}".encode()).hexdigest()[:16]


def _compared(message: str, feedback: str) -> str:
    """What two failures are compared by: the normalised message, then the end of what
    the Builder was told (where a traceback names the error), normalised."""
    tail = normalise(feedback[-FEEDBACK_TAIL:], whole=True) if feedback.strip() else ""
    return f"{normalise(message, whole=True)}\n{tail}".strip()


@dataclass(frozen=True)
class Failure:
    """One failed attempt of a phase, as recovery sees it."""

    attempt: int
    kind: str
    outcome: str
    message: str  # the error, whole
    signature: str  # hash of the normalised first line
    text: str  # the normalised message (all lines), compared for similarity
    model: str = ""
    feedback: str = ""  # what the Builder was told
    gate_output: str = ""  # the end of the failed gate's output
    failing_tests: tuple[str, ...] = ()  # tests that failed and had to pass
    changed_files: tuple[str, ...] = ()
    diff: str = ""
    details: dict = field(default_factory=dict)  # the failed test gate's details


def failure_of(
    attempt: int,
    outcome: str,
    message: str,
    *,
    gates: list[dict] | None = None,
    model: str = "",
    feedback: str = "",
    changed_files: tuple[str, ...] | list[str] = (),
    diff: str = "",
) -> Failure:
    failed = [gate for gate in gates or [] if not gate.get("passed")]
    tests = next((gate for gate in failed if gate.get("name") != "deliverables"), {})
    details = tests.get("details") or {}
    required = details.get("required") or {}
    failing = sorted(
        {*details.get("newly_failing", ()), *(t for t, o in required.items() if o != "passed")}
    )
    return Failure(
        attempt=attempt,
        kind=classify(outcome, message, gates),
        outcome=outcome,
        message=message,
        signature=signature(outcome, message),
        text=_compared(message, feedback),
        model=model,
        feedback=feedback,
        gate_output=(tests.get("output") or "")[-4000:],
        failing_tests=tuple(failing),
        changed_files=tuple(changed_files),
        diff=diff,
        details=details,
    )
