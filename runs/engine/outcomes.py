"""Why an attempt ended. Each failure carries what the next attempt needs to hear."""

from __future__ import annotations

from dataclasses import dataclass, field


class Outcome:
    PASSED = "passed"
    FORMAT_ERROR = "format_error"
    APPLY_ERROR = "apply_error"
    POLICY_VIOLATION = "policy_violation"
    GATE_FAILED = "gate_failed"
    AUDITOR_REJECTED = "auditor_rejected"
    TRUNCATED = "truncated"
    PROVIDER_ERROR = "provider_error"
    BUDGET_EXHAUSTED = "budget_exhausted"
    CANCELLED = "cancelled"


class AttemptFailure(Exception):
    """The attempt failed; the phase may retry with `feedback` in the next prompt."""

    outcome = "failed"

    def __init__(self, message: str, feedback: str | None = None) -> None:
        super().__init__(message)
        self.feedback = feedback or message


class FormatError(AttemptFailure):
    outcome = Outcome.FORMAT_ERROR


class ApplyError(AttemptFailure):
    outcome = Outcome.APPLY_ERROR


class PolicyViolation(AttemptFailure):
    outcome = Outcome.POLICY_VIOLATION

    def __init__(self, path: str, rule: str) -> None:
        super().__init__(f"{path}: {rule}")
        self.path = path
        self.rule = rule


class GateFailure(AttemptFailure):
    outcome = Outcome.GATE_FAILED


class AuditorRejection(AttemptFailure):
    outcome = Outcome.AUDITOR_REJECTED

    def __init__(self, reasons: list[str]) -> None:
        text = "; ".join(reasons) or "no reason given"
        super().__init__(
            f"Auditor rejected the change: {text}",
            "The Auditor rejected your change:\n" + "\n".join(f"- {r}" for r in reasons),
        )
        self.reasons = reasons


class AuditorUnreadable(AttemptFailure):
    outcome = "auditor_error"


class TruncatedOutput(AttemptFailure):
    outcome = Outcome.TRUNCATED


class ProviderError(AttemptFailure):
    outcome = Outcome.PROVIDER_ERROR

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message, "The model provider failed on the last attempt; try again.")
        self.status = status


class RunStopped(Exception):
    """Not the attempt's fault: the whole run must stop (budget, cancel, environment)."""

    outcome = "stopped"


class BudgetExhausted(RunStopped):
    outcome = Outcome.BUDGET_EXHAUSTED


class Cancelled(RunStopped):
    outcome = Outcome.CANCELLED


class EnvironmentProblem(RunStopped):
    outcome = "environment"


class AwaitingApproval(RunStopped):
    """The change waits for a person; the attempt continues once it is decided."""

    outcome = "awaiting_approval"

    def __init__(self, request_id: int, diff: str, summary: str) -> None:
        super().__init__(summary)
        self.request_id = request_id
        self.diff = diff


LOG_TAIL_CHARS = 6000


class SetupFailed(Exception):
    """The project's environment could not be prepared. A user error: the message says
    what failed, `output` what the installer printed, `hint` what to change."""

    def __init__(self, message: str, output: str = "", hint: str = "") -> None:
        super().__init__(message)
        self.output = output
        self.hint = hint or (
            "Set `setup_command` (on the project, the run config or the phase) to install "
            "what the project needs, or `test_command` to run its tests another way."
        )

    def report(self) -> str:
        text = str(self)
        if self.output:
            text += "\n\nInstaller output (last lines):\n" + self.output[-LOG_TAIL_CHARS:]
        return f"{text}\n\n{self.hint}"


@dataclass
class AttemptResult:
    outcome: str
    message: str = ""
    feedback: str = ""
    diff: str = ""
    savepoint: str = ""
    changed_files: list[str] = field(default_factory=list)
    gates: list[dict] = field(default_factory=list)
    gate_outcomes: list = field(default_factory=list)
    auditor: dict | None = None
    context_files: list[str] = field(default_factory=list)
    omitted_files: list[str] = field(default_factory=list)
    truncations: int = 0

    @property
    def passed(self) -> bool:
        return self.outcome == Outcome.PASSED
