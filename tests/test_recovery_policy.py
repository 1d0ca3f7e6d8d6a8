"""The recovery policy (runs/engine/recovery.py) as a pure function: failure kinds,
signatures, approach flaws, the Doctor's routing and budgets, and following its advice."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from runs.engine.failures import FailureKind, classify, failure_of, normalise
from runs.engine.recovery import Action, Advice, Situation, approach_flaw, decide
from runs.engine.routing import ModelsConfig
from tests.builds import write_models

REGRESSION = (
    "tests: 1 test(s) that passed before now fail: tests/test_stock.py::test_remove at "
    "2026-11-21T10:00:01Z in /tmp/autopack-x1/inventory/stock.py line 14"
)


@pytest.fixture
def config(tmp_path: Path) -> ModelsConfig:
    from runs.engine.routing import load_models_config

    path = write_models(
        tmp_path / "models.yaml",
        doctor={"enabled": True},
        replan={"enabled": True},
        doctor_models={"cheap": "anthropic/cheap-doc", "strong": "anthropic/strong-doc"},
    )
    return load_models_config(path)


def gate(newly_failing=(), required=None, output="", problem="") -> list[dict]:
    return [
        {
            "name": "tests",
            "passed": False,
            "summary": "failed",
            "output": output,
            "details": {
                "newly_failing": list(newly_failing),
                "required": required or {},
                "problem": problem,
            },
        }
    ]


def failed(number: int, message: str = REGRESSION, outcome="gate_failed", **extra):
    gates = extra.pop("gates", gate(newly_failing=["tests/test_stock.py::test_remove"]))
    return failure_of(number, outcome, message, gates=gates, model="anthropic/m", **extra)


def situation(*failures, **extra) -> Situation:
    return Situation(
        failures=tuple(failures),
        max_attempts=extra.pop("max_attempts", 5),
        complexity="low",
        category="feature",
        **extra,
    )


def test_signatures_ignore_paths_numbers_times_and_addresses():
    a = (
        "KeyError at 0x7f3a9c in /tmp/run-1/a.py:12 at 2026-11-21 10:00:01 "
        "id 3f2a1b4c-1111-2222-3333-444455556666"
    )
    b = (
        "KeyError at 0x1b2c3d in /srv/other/b.py:99 at 2025-01-02 23:59:59 "
        "id 9e8d7c6b-aaaa-bbbb-cccc-ddddeeeeffff"
    )
    assert normalise(a) == normalise(b)
    assert "<path>" in normalise(a) and "<addr>" in normalise(a) and "<time>" in normalise(a)
    assert failed(1).signature == failed(2, REGRESSION.replace("10:00:01", "11:12:13")).signature


@pytest.mark.parametrize(
    ("outcome", "gates", "kind"),
    [
        ("format_error", None, FailureKind.MALFORMED_REPLY),
        ("apply_error", None, FailureKind.EDIT_NOT_APPLIED),
        ("policy_violation", None, FailureKind.PATH_REFUSED),
        ("denied", None, FailureKind.PROTECTED_DENIED),
        ("truncated", None, FailureKind.TRUNCATED),
        ("provider_error", None, FailureKind.PROVIDER_ERROR),
        ("auditor_rejected", None, FailureKind.AUDITOR_REJECTED),
        ("worker_lost", None, FailureKind.WORKER_LOST),
        ("budget_exhausted", None, FailureKind.BUDGET),
        ("gate_failed", gate(newly_failing=["t::a"]), FailureKind.TEST_REGRESSION),
        ("gate_failed", gate(required={"t::b": "failed"}), FailureKind.TARGET_FAILING),
        ("gate_failed", gate(output="E   SyntaxError: invalid syntax"), FailureKind.SYNTAX_ERROR),
        (
            "gate_failed",
            gate(problem="no test could be loaded", output="ModuleNotFoundError: x"),
            FailureKind.IMPORT_ERROR,
        ),
        (
            "gate_failed",
            gate(problem="did not finish within 4 s and was killed"),
            FailureKind.TIMEOUT,
        ),
        (
            "gate_failed",
            [{"name": "deliverables", "passed": False, "summary": "missing"}],
            FailureKind.DELIVERABLES_MISSING,
        ),
    ],
)
def test_every_outcome_has_a_kind(outcome, gates, kind):
    assert classify(outcome, "it failed", gates) == kind


def test_the_same_failure_twice_is_an_approach_flaw_and_replans_once(config):
    first, second = failed(1), failed(2, REGRESSION.replace("line 14", "line 15"))
    decision = decide(situation(first, second), config)
    assert decision.action == Action.REPLAN
    assert "2 consecutive test regression failures" in decision.reason
    # A replan made: the next attempt goes ahead on the revised plan.
    assert decide(situation(first, second, replans=1, replanned=True), config).action in (
        Action.RETRY,
        Action.NEXT_MODEL,
    )
    # Replans used up: the Doctor is asked instead.
    assert decide(situation(first, second, replans=1), config).action == Action.ASK_DOCTOR


def test_progress_is_not_a_flaw_even_with_similar_messages(config):
    many = gate(newly_failing=["t::a", "t::b", "t::c"])
    fewer = gate(newly_failing=["t::a"])
    first = failed(1, "tests: 3 test(s) that passed before now fail: t::a, t::b, t::c", gates=many)
    second = failed(2, "tests: 1 test(s) that passed before now fail: t::a", gates=fewer)
    assert approach_flaw((first, second), config) == ""
    assert decide(situation(first, second), config).action != Action.REPLAN


def test_short_and_dissimilar_messages_are_not_compared_as_the_same(config):
    short = [failed(1, "boom", gates=gate()), failed(2, "bang", gates=gate())]
    assert approach_flaw(tuple(short), config) == ""
    other = failed(2, "tests: `python -m pytest` exited with 2 and printed a usage error message")
    assert approach_flaw((failed(1), other), config) == ""


def test_fatal_error_types_replan_at_once(config):
    fatal = failed(1, "Auditor rejected the change: api_contract_wrong: the endpoint differs")
    assert decide(situation(fatal), config).action == Action.REPLAN


def test_deterministic_kinds_never_ask_the_doctor(config):
    for outcome in ("provider_error", "truncated", "worker_lost", "denied"):
        history = [failed(n, f"{outcome} number {n} happened", outcome=outcome) for n in (1, 2, 3)]
        decision = decide(situation(*history), config)
        assert decision.action not in (Action.ASK_DOCTOR, Action.REPLAN), outcome


def test_doctor_routing_cheap_strong_and_budgets(config):
    routine = [failed(1, "Auditor rejected: no docstring", outcome="auditor_rejected")]
    routine.append(
        failed(2, "Auditor rejected: wrong name for the function", outcome="auditor_rejected")
    )
    asked = decide(situation(*routine), config)
    assert (asked.action, asked.model) == (Action.ASK_DOCTOR, "anthropic/cheap-doc")
    near = decide(situation(*routine, health_ratio=0.85), config)
    assert near.model == "anthropic/strong-doc" and "health budget" in near.reason
    risky = [
        failed(1, "E   SyntaxError: a", gates=gate(output="SyntaxError")),
        failed(2, "E   SyntaxError: b in another place entirely", gates=gate(output="SyntaxError")),
    ]
    assert decide(situation(*risky), config).model == "anthropic/strong-doc"
    # Budgets spent: the next model of the chain, without a diagnosis.
    assert decide(situation(*routine, doctor_calls_phase=2), config).action == Action.NEXT_MODEL
    assert decide(situation(*routine, doctor_calls_run=10), config).action == Action.NEXT_MODEL
    assert decide(situation(routine[0]), config).action == Action.RETRY  # one failure: no Doctor
    unsure = Advice("retry_with_fix", 0.4, "maybe", "anthropic/cheap-doc", False, hint="h")
    again = decide(situation(*routine, advice=(unsure,), doctor_calls_phase=1), config)
    assert (again.action, again.model) == (Action.ASK_DOCTOR, "anthropic/strong-doc")
    spent = decide(situation(*routine, advice=(unsure,), doctor_calls_phase=2), config)
    assert (spent.action, spent.hint) == (Action.RETRY_WITH_HINT, "h")


def advised(action: str, **extra) -> Advice:
    return Advice(action, 0.9, f"because {action}", "anthropic/strong-doc", True, **extra)


def test_following_the_doctor(config):
    two = [
        failed(1, "Auditor rejected: a", outcome="auditor_rejected"),
        failed(2, "Auditor rejected: something else entirely", outcome="auditor_rejected"),
    ]
    s = situation(*two, doctor_calls_phase=1)
    hint = decide(replace(s, advice=(advised("retry_with_fix", hint="do X"),)), config)
    assert (hint.action, hint.hint) == (Action.RETRY_WITH_HINT, "do X")
    skip = decide(replace(s, advice=(advised("skip_phase"),)), config)
    assert skip.action == Action.SKIP_PHASE
    blocked = decide(replace(s, advice=(advised("skip_phase"),), dependants=("report",)), config)
    assert blocked.action == Action.RETRY_WITH_HINT and "report" in blocked.reason
    fatal = decide(replace(s, advice=(advised("mark_fatal"),)), config)
    assert fatal.action == Action.FAIL and "because mark_fatal" in fatal.reason
    back = replace(s, advice=(advised("rollback_run", rollback_to="count"),))
    assert decide(back, config).action == Action.RETRY_WITH_HINT  # no savepoint to go to
    assert decide(replace(back, rollback_targets=("count", "base")), config).action == (
        Action.ROLLBACK_RUN
    )
    fix = replace(s, advice=(advised("execute_fix", fix={"type": "git", "args": ["stash"]}),))
    off = decide(fix, config)
    assert off.action == Action.RETRY_WITH_HINT and "allow_execute_fix_global" in off.reason
    on = config.model_copy(
        update={"doctor": config.doctor.model_copy(update={"allow_execute_fix_global": True})}
    )
    assert decide(fix, on).action == Action.EXECUTE_FIX
    assert decide(replace(fix, fix_ran=True, fixes=1), on).action == Action.RETRY_WITH_HINT


def test_out_of_attempts_fails_and_a_resumed_budget_failure_retries(config):
    history = [failed(n, f"apply error {n}", outcome="apply_error") for n in (1, 2)]
    assert decide(situation(*history, max_attempts=2), config).action == Action.FAIL
    budget = failed(1, "token cap reached", outcome="budget_exhausted")
    assert decide(situation(budget), config).action == Action.RETRY


def test_escalation_is_part_of_the_decision(config):
    history = [failed(n, f"apply error number {n}", outcome="apply_error") for n in (1, 2)]
    assert decide(situation(history[0]), config).action == Action.RETRY
    moved = decide(situation(*history, doctor_calls_run=10, replans=1), config)
    assert moved.action == Action.NEXT_MODEL and moved.choice.builder == "anthropic/claude-low-2"
