"""Why an attempt or a run ended: one enumeration of attempt outcomes and one of run
failure codes, used by the engine, the models (as choices) and the API. Each failure
carries what the next attempt needs to hear, or what the user must change.

Errors are of two kinds. A user error (bad configuration, a missing key, an unreachable
repository, an environment that cannot be installed, tests that cannot run) has a stable
code and a sentence saying what to change. An application error is a bug in Autopack:
it is recorded with its traceback and shown as "Autopack failed: ... (please report)".
"""

from __future__ import annotations

from dataclasses import dataclass, field


def _choices(*values: str) -> list[tuple[str, str]]:
    return [(value, value.replace("_", " ")) for value in values]


class Outcome:
    """How an attempt ended."""

    PASSED = "passed"
    FORMAT_ERROR = "format_error"
    APPLY_ERROR = "apply_error"
    POLICY_VIOLATION = "policy_violation"
    GATE_FAILED = "gate_failed"
    AUDITOR_REJECTED = "auditor_rejected"
    AUDITOR_ERROR = "auditor_error"
    GOAL_DRIFT = "goal_drift"  # refused: the change is too far from the run's intention
    TRUNCATED = "truncated"
    PROVIDER_ERROR = "provider_error"
    AWAITING_APPROVAL = "awaiting_approval"
    DENIED = "denied"
    WORKER_LOST = "worker_lost"  # its worker died or lost the run's lease
    # The run stopped during the attempt; the attempt ends with the run's failure code.
    BUDGET_EXHAUSTED = "budget_exhausted"
    CANCELLED = "cancelled"
    CONFIGURATION = "configuration"
    REPOSITORY = "repository"
    SETUP_FAILED = "setup_failed"
    TESTS_CANNOT_RUN = "tests_cannot_run"
    INTERNAL_ERROR = "internal_error"

    CHOICES = _choices(
        PASSED,
        FORMAT_ERROR,
        APPLY_ERROR,
        POLICY_VIOLATION,
        GATE_FAILED,
        AUDITOR_REJECTED,
        AUDITOR_ERROR,
        GOAL_DRIFT,
        TRUNCATED,
        PROVIDER_ERROR,
        AWAITING_APPROVAL,
        DENIED,
        WORKER_LOST,
        BUDGET_EXHAUSTED,
        CANCELLED,
        CONFIGURATION,
        REPOSITORY,
        SETUP_FAILED,
        TESTS_CANNOT_RUN,
        INTERNAL_ERROR,
    )


class FailureCode:
    """Why a run ended DONE_FAILED. Every code but INTERNAL_ERROR is the user's to fix."""

    BUDGET_EXHAUSTED = "budget_exhausted"
    POLICY_VIOLATION = "policy_violation"
    PHASE_FAILED = "phase_failed"
    CANCELLED = "cancelled"
    CONFIGURATION = "configuration"  # a config file, a key, a provider, the sandbox
    REPOSITORY = "repository"  # not a repository, cannot be cloned, no base branch
    SETUP_FAILED = "setup_failed"  # the project environment could not be prepared
    TESTS_CANNOT_RUN = "tests_cannot_run"  # the project's tests do not run at baseline
    INTERNAL_ERROR = "internal_error"  # a bug in Autopack
    # A propose-first run whose proposal a person denied (or let expire), or that could
    # not be merged into its branch.
    PROPOSAL_REJECTED = "proposal_rejected"

    CHOICES = _choices(
        BUDGET_EXHAUSTED,
        POLICY_VIOLATION,
        PHASE_FAILED,
        CANCELLED,
        CONFIGURATION,
        REPOSITORY,
        SETUP_FAILED,
        TESTS_CANNOT_RUN,
        INTERNAL_ERROR,
        PROPOSAL_REJECTED,
    )

    @classmethod
    def kind(cls, code: str) -> str:
        """ "user" or "application" (empty for no failure)."""
        if not code:
            return ""
        return "application" if code == cls.INTERNAL_ERROR else "user"


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


class GoalDrift(AttemptFailure):
    outcome = Outcome.GOAL_DRIFT


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
    outcome = Outcome.AUDITOR_ERROR


class TruncatedOutput(AttemptFailure):
    outcome = Outcome.TRUNCATED


class ProviderError(AttemptFailure):
    outcome = Outcome.PROVIDER_ERROR

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message, "The model provider failed on the last attempt; try again.")
        self.status = status


class RunStopped(Exception):
    """Not the attempt's fault: the whole run must stop. `outcome` is the failure code
    the run ends with (and the outcome of an attempt it interrupts)."""

    outcome = FailureCode.INTERNAL_ERROR

    def report(self) -> str:
        return str(self)


class BudgetExhausted(RunStopped):
    outcome = FailureCode.BUDGET_EXHAUSTED


class Cancelled(RunStopped):
    outcome = FailureCode.CANCELLED


class ConfigurationError(RunStopped):
    """A user error in Autopack's setup: a config file, a key, a provider, the sandbox."""

    outcome = FailureCode.CONFIGURATION


class RepositoryError(RunStopped):
    """The project's repository cannot be used: not a repository, unreachable, no base
    branch."""

    outcome = FailureCode.REPOSITORY


class TestsCannotRun(RunStopped):
    """The project's tests cannot run on the commit a phase starts from: no change could
    be verified, so the run stops before spending anything on models."""

    __test__ = False  # not a pytest test class
    outcome = FailureCode.TESTS_CANNOT_RUN


class AwaitingApproval(RunStopped):
    """The change waits for a person; the attempt continues once it is decided."""

    outcome = Outcome.AWAITING_APPROVAL

    def __init__(self, request_id: int, diff: str, summary: str) -> None:
        super().__init__(summary)
        self.request_id = request_id
        self.diff = diff


LOG_TAIL_CHARS = 6000


class SetupFailed(RunStopped):
    """The project's environment could not be prepared. A user error: the message says
    what failed, `output` what the installer printed, `hint` what to change."""

    outcome = FailureCode.SETUP_FAILED

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
    context: dict = field(default_factory=dict)  # Context.record(): whole, map, left out
    drift: dict | None = None  # the change's similarity to the intention anchor
    truncations: int = 0
    kind: str = ""  # the failure's kind (failures.FailureKind)
    diagnostics: list[dict] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.outcome == Outcome.PASSED
