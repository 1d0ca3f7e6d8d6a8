"""The recovery policy: what happens after an attempt of a phase fails. One pure
function, `decide`, reads the phase's whole history and what has been done about its
last failure so far, and names the next step with its reason. The phase runner carries
steps out and asks again until the answer is one that ends the failure's handling (a
retry of some kind, a skip, a rollback or the end of the phase).

In order, for the last failure:

1. A phase with no attempts left fails (the Doctor's `mark_fatal` ends it too, with its
   reason). A budget failure stopped the run when it happened; decided again after a
   resume, it is retried.
2. A deterministic fix (mitigations.py) that matches the failure is applied first; a
   fixed failure is retried with the fix's hint and makes no Doctor call.
3. The Doctor's advice, once given, decides: a hint for the next attempt, a replan, a
   skip (when no later phase depends on this one), a rollback to an earlier savepoint,
   an allowlisted fix command, or the end of the run. Advice from the cheap model below
   `min_confidence_for_cheap` is asked again of the strong model while calls are left.
4. An approach flaw replans the phase (at most `max_replans_per_phase`): a failure of
   one of `replan.fatal_error_types`, or `trigger_threshold` consecutive failures of one
   kind whose normalised messages are at least `similarity_threshold` alike (difflib
   ratio; messages shorter than `min_message_length` are not compared) and that made no
   progress (the failing tests did not shrink).
5. The Doctor is asked after `doctor.min_failures` failures, for failures that are not
   deterministic (provider errors, truncation, a lost worker, a person's denial and the
   budget have fixed answers), within its budgets (per phase and per run): the strong
   model directly for `high_risk_categories` and for a health budget past
   `health_budget_near_limit_ratio`.
6. Otherwise: retry with the failure's feedback, on the model escalation chooses (the
   same model, the next in the chain, or the next complexity).

Skipping a phase: a later phase depends on it, and so forbids the skip, when its scope
or read-only context overlaps the skipped phase's scope (it would build on what the
skipped phase did not write).
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field

from runs.engine.escalation import Choice, choose
from runs.engine.failures import Failure, FailureKind
from runs.engine.routing import ModelsConfig


class Action:
    RETRY = "retry"
    RETRY_WITH_HINT = "retry_with_hint"
    NEXT_MODEL = "next_model"
    NEXT_COMPLEXITY = "next_complexity"
    ASK_DOCTOR = "ask_doctor"
    REPLAN = "replan"
    RUN_DIAGNOSTICS = "run_diagnostics"
    APPLY_FIX = "apply_fix"  # a deterministic fix from the registry
    EXECUTE_FIX = "execute_fix"  # the Doctor's allowlisted command
    SKIP_PHASE = "skip_phase"
    ROLLBACK_RUN = "rollback_run"
    FAIL = "fail"

    ALL = (
        RETRY,
        RETRY_WITH_HINT,
        NEXT_MODEL,
        NEXT_COMPLEXITY,
        ASK_DOCTOR,
        REPLAN,
        RUN_DIAGNOSTICS,
        APPLY_FIX,
        EXECUTE_FIX,
        SKIP_PHASE,
        ROLLBACK_RUN,
        FAIL,
    )
    CHOICES = [(action, action.replace("_", " ")) for action in ALL]
    # Steps after which the phase runner asks again; the others end a failure's handling.
    INTERIM = (ASK_DOCTOR, REPLAN, RUN_DIAGNOSTICS, APPLY_FIX, EXECUTE_FIX)


# Failures with a fixed answer: no Doctor call is worth it.
DETERMINISTIC = (
    FailureKind.PROVIDER_ERROR,
    FailureKind.TRUNCATED,
    FailureKind.WORKER_LOST,
    FailureKind.PROTECTED_DENIED,
    FailureKind.BUDGET,
)
# The seeds' names for groups of failure kinds, accepted in high_risk_categories.
CATEGORY_ALIASES = {
    "import": (FailureKind.IMPORT_ERROR, FailureKind.SYNTAX_ERROR),
    "logic": (FailureKind.TEST_REGRESSION, FailureKind.TARGET_FAILING),
    "patch": (FailureKind.EDIT_NOT_APPLIED, FailureKind.MALFORMED_REPLY),
}
DOCTOR_ACTIONS = ("retry_with_fix", "replan", "skip_phase", "mark_fatal", "rollback_run")


@dataclass(frozen=True)
class Advice:
    """The Doctor's answer."""

    action: str  # one of DOCTOR_ACTIONS or "execute_fix"
    confidence: float
    reasoning: str
    model: str
    strong: bool  # from the strong model
    hint: str = ""
    rollback_to: str = ""  # a phase id whose savepoint to return to, or "base"
    fix: dict | None = None  # {"type": "git" | "file", "args": [...]}


@dataclass(frozen=True)
class Situation:
    """Everything the decision reads. `failures` are the phase's counted failed attempts
    (oldest first); the fields after them say what was done about the last one."""

    failures: tuple[Failure, ...]
    max_attempts: int
    complexity: str
    category: str
    policy: str | tuple[str, ...] = "progressive"
    doctor_calls_phase: int = 0
    doctor_calls_run: int = 0
    replans: int = 0
    fixes: int = 0  # the Doctor's commands executed in this phase
    rollbacks: int = 0  # in this run
    health_ratio: float = 0.0  # the fullest health budget's use, 0..1
    dependants: tuple[str, ...] = ()  # later phases that build on this one
    rollback_targets: tuple[str, ...] = ()  # phase ids with a savepoint, then "base"
    # About the last failure:
    mitigation: object | None = None  # a mitigations.Mitigation that matches it
    mitigated: bool = False
    advice: tuple[Advice, ...] = ()  # answers so far, in order
    replanned: bool = False
    fix_ran: bool = False
    doctor_unavailable: bool = False  # its provider is not configured (or has no replies)


@dataclass(frozen=True)
class Decision:
    action: str
    reason: str
    kind: str
    hint: str = ""
    model: str = ""  # the Doctor's model to ask, or the next attempt's Builder
    choice: Choice | None = None  # the next attempt's models (retries)
    inputs: dict = field(default_factory=dict)

    @property
    def interim(self) -> bool:
        return self.action in Action.INTERIM


def decide(situation: Situation, config: ModelsConfig) -> Decision:
    """The next step after the phase's last failure."""
    s, last = situation, situation.failures[-1]
    inputs = _inputs(s)

    def make(action: str, reason: str, **extra) -> Decision:
        return Decision(action, reason, last.kind, inputs=inputs, **extra)

    left = s.max_attempts - len(s.failures)
    advice = s.advice[-1] if s.advice else None
    if advice is not None and advice.action == "mark_fatal":
        return make(Action.FAIL, f"the Doctor marked the failure fatal: {advice.reasoning}")
    if left <= 0:
        return make(
            Action.FAIL, f"{len(s.failures)} of {s.max_attempts} attempts failed; none left"
        )
    if last.kind == FailureKind.BUDGET:
        # The run stopped there; it is being decided again because it was resumed.
        return _retry(s, config, make, "", "a budget stopped the run, which was resumed")
    if s.mitigation is not None:
        pattern = s.mitigation.pattern
        if not s.mitigated:
            return make(Action.APPLY_FIX, f"the failure matches the known pattern {pattern}")
        return _retry(s, config, make, s.mitigation.hint, f"fixed by the known pattern {pattern}")
    if advice is not None:
        asked = _ask_doctor(s, config, make, last, again=True)
        if asked is not None:
            return asked
        return _follow(s, config, make, advice)
    if s.replanned:
        return _retry(s, config, make, "", "the phase was replanned")
    flaw = approach_flaw(s.failures, config)
    if flaw and s.replans < config.replan.max_replans_per_phase and config.replan.enabled:
        return make(Action.REPLAN, flaw)
    asked = _ask_doctor(s, config, make, last, again=False)
    if asked is not None:
        return asked
    why = f"{flaw}, but " if flaw else ""
    return _retry(s, config, make, "", f"{why}retry with the failure's feedback")


def _retry(s: Situation, config: ModelsConfig, make, hint: str, why: str) -> Decision:
    failures = len(s.failures)
    choice = choose(config, s.complexity, failures, s.policy)
    before = choose(config, s.complexity, failures - 1, s.policy)
    if hint:
        action = Action.RETRY_WITH_HINT
    elif choice.level != before.level:
        action = Action.NEXT_COMPLEXITY
    elif choice.builder != before.builder:
        action = Action.NEXT_MODEL
    else:
        action = Action.RETRY
    return make(action, f"{why}; {choice.reason}", hint=hint, model=choice.builder, choice=choice)


def _ask_doctor(s: Situation, config: ModelsConfig, make, last: Failure, again: bool):
    """ASK_DOCTOR with the model to ask, or None when the Doctor is not to be asked."""
    doctor, models = config.doctor, config.doctor_models
    if not doctor.enabled or last.kind in DETERMINISTIC or s.doctor_unavailable:
        return None
    if s.doctor_calls_phase >= doctor.max_calls_per_phase:
        return None
    if s.doctor_calls_run >= doctor.max_calls_per_run:
        return None
    if again:
        advice = s.advice[-1]
        if advice.strong or advice.confidence >= models.min_confidence_for_cheap:
            return None
        return make(
            Action.ASK_DOCTOR,
            f"the cheap Doctor's confidence {advice.confidence:.2f} is below "
            f"{models.min_confidence_for_cheap}: asking the strong model",
            model=models.strong,
        )
    if len(s.failures) < doctor.min_failures:
        return None
    if high_risk(last.kind, s.category, models.high_risk_categories):
        why, model = f"{last.kind.replace('_', ' ')} is a high-risk category", models.strong
    elif s.health_ratio >= models.health_budget_near_limit_ratio:
        why = (
            f"the health budget is {s.health_ratio:.0%} used "
            f"(near its limit at {models.health_budget_near_limit_ratio:.0%})"
        )
        model = models.strong
    else:
        why, model = "a routine failure", models.cheap
    return make(
        Action.ASK_DOCTOR,
        f"{len(s.failures)} failure(s), the last {last.kind.replace('_', ' ')}: "
        f"diagnosis by {model} ({why})",
        model=model,
    )


def _follow(s: Situation, config: ModelsConfig, make, advice: Advice) -> Decision:
    said = (
        f"the Doctor ({advice.model}, confidence {advice.confidence:.2f}) advised {advice.action}"
    )
    hint = advice.hint or advice.reasoning
    if advice.action == "replan":
        if config.replan.enabled and s.replans < config.replan.max_replans_per_phase:
            return make(Action.REPLAN, said)
        return _retry(s, config, make, hint, f"{said}, but the phase's replans are used up")
    if advice.action == "skip_phase":
        if not s.dependants:
            return make(Action.SKIP_PHASE, f"{said}: {advice.reasoning}")
        later = ", ".join(s.dependants)
        return _retry(s, config, make, hint, f"{said}, but later phases depend on it ({later})")
    if advice.action == "rollback_run":
        target = advice.rollback_to or (s.rollback_targets[0] if s.rollback_targets else "")
        if target not in s.rollback_targets:
            why = f"{said}, but there is no earlier savepoint {target or ''} to return to"
            return _retry(s, config, make, hint, why.replace("  ", " "))
        if s.rollbacks >= config.doctor.max_rollbacks_per_run:
            return _retry(s, config, make, hint, f"{said}, but the run's rollbacks are used up")
        return make(Action.ROLLBACK_RUN, f"{said}: back to {target}", hint=target)
    if advice.action == "execute_fix":
        refused = _fix_refused(s, config, advice)
        if refused:
            return _retry(s, config, make, hint, f"{said}, but {refused}")
        if not s.fix_ran:
            return make(Action.EXECUTE_FIX, said)
        return _retry(s, config, make, hint, f"{said}; the fix ran")
    return _retry(s, config, make, hint, said)


def _fix_refused(s: Situation, config: ModelsConfig, advice: Advice) -> str:
    doctor = config.doctor
    if not doctor.allow_execute_fix_global:
        return "execute_fix is off (doctor.allow_execute_fix_global)"
    kind = (advice.fix or {}).get("type")
    if kind not in doctor.allowed_fix_types:
        return f"fix type {kind!r} is not allowed (doctor.allowed_fix_types)"
    if s.fixes >= doctor.max_execute_fix_per_phase and not s.fix_ran:
        return "the phase's fixes are used up (doctor.max_execute_fix_per_phase)"
    return ""


def approach_flaw(failures: tuple[Failure, ...], config: ModelsConfig) -> str:
    """Why the failures show a flaw in the approach (not a slip a retry fixes), or ""."""
    replan = config.replan
    last = failures[-1]
    for fatal in replan.fatal_error_types:
        if last.kind == fatal or fatal in last.message:
            return f"the failure is of a fatal type ({fatal})"
    run = failures[-replan.trigger_threshold :]
    if len(run) < replan.trigger_threshold or len({f.kind for f in run}) != 1:
        return ""
    if last.kind in DETERMINISTIC:
        return ""
    for before, after in zip(run, run[1:], strict=False):
        if after.failing_tests and set(after.failing_tests) < set(before.failing_tests):
            return ""  # fewer tests fail: progress
        if before.signature == after.signature:
            continue
        if not replan.message_similarity_enabled:
            return ""
        shortest = min(len(before.text), len(after.text))
        if shortest < replan.min_message_length:
            return ""
        ratio = similarity(before.text, after.text)
        if ratio < replan.similarity_threshold:
            return ""
    return (
        f"{len(run)} consecutive {last.kind.replace('_', ' ')} failures with the same or "
        f"similar messages (similarity at least {replan.similarity_threshold})"
    )


def similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b).ratio()


def high_risk(kind: str, category: str, categories: list[str]) -> bool:
    for entry in categories:
        if entry in (kind, category) or kind in CATEGORY_ALIASES.get(entry, ()):
            return True
    return False


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:300] if text.strip() else ""


def _inputs(s: Situation) -> dict:
    """What led to a decision, stored with it."""
    return {
        "failures": [
            {
                "attempt": f.attempt,
                "kind": f.kind,
                "signature": f.signature,
                "model": f.model,
                "message": _first_line(f.message),
            }
            for f in s.failures
        ],
        "attempts_left": s.max_attempts - len(s.failures),
        "doctor_calls": {"phase": s.doctor_calls_phase, "run": s.doctor_calls_run},
        "replans": s.replans,
        "fixes": s.fixes,
        "rollbacks": s.rollbacks,
        "health_ratio": round(s.health_ratio, 3),
        "dependants": list(s.dependants),
        "mitigation": getattr(s.mitigation, "pattern", None),
        "advice": [asdict(a) for a in s.advice],
    }
