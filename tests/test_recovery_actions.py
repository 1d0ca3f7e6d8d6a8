"""Each recovery action end to end, through the fake model server: the Doctor's hint in
the next prompt, a skipped phase with the run going on, a fatal diagnosis, a rollback to
an earlier savepoint, allowlisted and refused fixes, and a replan that replaces the
phase's plan once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runs.models import Decision, PhasePlan
from runs.states import PhaseState, RunState
from tests.builds import APPROVE, QUANTITY, block, config, drive, git, phase, start, write_models
from tests.recovery_corpus import REJECT, REVISION

pytestmark = pytest.mark.django_db(transaction=True)

REPORT = block("inventory/report.py", "", "def low_stock(stock):\n    return sorted(stock)\n")
BREAK = block("inventory/stock.py", "    stock[item] -= quantity\n", "    pass\n")
UNGUARD = block(
    "inventory/stock.py",
    "    if stock.get(item, 0) < quantity:\n        raise OutOfStock(item)\n",
    "",
)


def doctor(action: str, **extra) -> str:
    return json.dumps(
        {"action": action, "confidence": 0.9, "reasoning": f"diagnosed: {action}", **extra}
    )


@pytest.fixture
def models(engine, tmp_path: Path):
    def set_models(**doctor_settings) -> None:
        engine.AUTOPACK_MODELS = write_models(
            tmp_path / "models.yaml",
            doctor={"enabled": True, **doctor_settings},
            replan={"enabled": True},
            doctor_models={"cheap": "anthropic/doc-cheap", "strong": "anthropic/doc-strong"},
        )

    set_models()
    return set_models


def two_rejections(fake_llm) -> None:
    """The Builder's change is rejected twice for different reasons: the Doctor's turn."""
    fake_llm.script("auditor", REJECT % "no docstring", REJECT % "the name should be count_of")


def test_doctor_hint_reaches_the_next_prompt(models, fake_llm, repo):
    fake_llm.script("builder", QUANTITY, QUANTITY, QUANTITY)
    two_rejections(fake_llm)
    fake_llm.script("auditor", APPROVE)
    fake_llm.script("doctor", doctor("retry_with_fix", hint="Name it quantity_of and document it."))

    run = drive(start(config(repo, [phase("count", 0, ["inventory/"])])))

    assert run.state == RunState.DONE_SUCCESS
    assert "Name it quantity_of and document it." in fake_llm.calls("builder")[2].prompt
    assert "Name it quantity_of" not in fake_llm.calls("builder")[1].prompt
    call = run.llm_calls.get(role="doctor")
    assert call.model == "doc-cheap" and call.attempt.number == 2
    assert "attempt 1" in fake_llm.calls("doctor")[0].prompt  # the history, with signatures
    actions = list(run.decisions.values_list("action", flat=True))
    assert actions == ["retry", "ask_doctor", "retry_with_hint"]
    assert run.events.filter(kind="decision").count() == 3


def test_skip_phase_lets_the_run_go_on_unless_a_later_phase_depends_on_it(models, fake_llm, repo):
    fake_llm.script("builder", QUANTITY, QUANTITY, REPORT)
    two_rejections(fake_llm)
    fake_llm.script("auditor", APPROVE)
    fake_llm.script("doctor", doctor("skip_phase"))
    tiers = [
        [phase("count", 0, ["inventory/stock.py"])],
        [phase("report", 0, ["inventory/report.py"])],
    ]

    run = drive(start(config(repo, *tiers)))

    assert run.state == RunState.DONE_SUCCESS
    states = dict(run.phases.values_list("phase_id", "state"))
    assert states == {"count": PhaseState.SKIPPED, "report": PhaseState.COMPLETE}
    assert "inventory/report.py" in git(repo, "diff", "--name-only", "main", "autopack/build")
    assert "quantity_of" not in git(repo, "show", "autopack/build:inventory/stock.py")


def test_skip_is_refused_when_a_later_phase_builds_on_the_phase(models, fake_llm, repo):
    fake_llm.script("builder", QUANTITY, QUANTITY, QUANTITY, REPORT)
    two_rejections(fake_llm)
    fake_llm.script("auditor", APPROVE, APPROVE)
    fake_llm.script("doctor", doctor("skip_phase"))
    tiers = [[phase("count", 0, ["inventory/"])], [phase("report", 0, ["inventory/report.py"])]]

    run = drive(start(config(repo, *tiers)))

    assert run.state == RunState.DONE_SUCCESS
    refused = run.decisions.get(action="retry_with_hint")
    assert "later phases depend on it (report)" in refused.reason
    assert not run.phases.filter(state=PhaseState.SKIPPED).exists()


def test_mark_fatal_ends_the_run_with_the_doctors_reason(models, fake_llm, repo):
    fake_llm.script("builder", QUANTITY, QUANTITY)
    two_rejections(fake_llm)
    fake_llm.script("doctor", doctor("mark_fatal"))

    run = drive(start(config(repo, [phase("count", 0, ["inventory/"])])))

    assert (run.state, run.failure_code) == (RunState.DONE_FAILED, "phase_failed")
    assert "the Doctor marked the failure fatal: diagnosed: mark_fatal" in run.failure_reason
    assert run.phases.get().attempts.count() == 2  # no attempt after the diagnosis


def test_rollback_resets_the_branch_and_queues_the_later_phases_again(models, fake_llm, repo):
    fake_llm.script("builder", REPORT, QUANTITY, QUANTITY, REPORT, QUANTITY)
    fake_llm.script("auditor", APPROVE)
    two_rejections(fake_llm)
    fake_llm.script("auditor", APPROVE, APPROVE)
    fake_llm.script("doctor", doctor("rollback_run", rollback_to="base"))
    base = git(repo, "rev-parse", "main")
    tiers = [
        [phase("report", 0, ["inventory/report.py"])],
        [phase("count", 0, ["inventory/stock.py"])],
    ]

    run = drive(start(config(repo, *tiers)))

    assert run.state == RunState.DONE_SUCCESS, run.failure_reason
    rolled = run.events.get(kind="rolled_back").payload
    assert rolled["commit"] == base and rolled["requeued"] == ["report", "count"]
    report = run.phases.get(phase_id="report")
    assert report.attempts.count() == 2  # done again after the rollback
    log = git(repo, "log", "--format=%s", "main..autopack/build").splitlines()
    assert log == ["autopack: count: Task count", "autopack: report: Task report"]


def test_execute_fix_runs_an_allowlisted_command_and_refuses_others(models, fake_llm, repo):
    models(allow_execute_fix_global=True, max_execute_fix_per_phase=2)
    fake_llm.script("builder", QUANTITY, QUANTITY, QUANTITY, QUANTITY)
    two_rejections(fake_llm)
    fake_llm.script("auditor", REJECT % "a third reason, about logging", APPROVE)
    fake_llm.script(
        "doctor",
        doctor("execute_fix", fix={"type": "file", "args": ["mkdir", "-p", "inventory/data"]}),
        doctor("execute_fix", fix={"type": "file", "args": ["rm", "-rf", "/etc"]}),
    )

    run = drive(start(config(repo, [phase("count", 0, ["inventory/"])])))

    assert run.state == RunState.DONE_SUCCESS
    ran, refused = Decision.objects.filter(run=run, action="execute_fix").order_by("id")
    assert ran.result["command"] == "mkdir -p -- inventory/data" and ran.result["exit_code"] == 0
    assert "absolute paths are not allowed" in refused.result["refused"]


def test_execute_fix_is_off_by_default(models, fake_llm, repo):
    fake_llm.script("builder", QUANTITY, QUANTITY, QUANTITY)
    two_rejections(fake_llm)
    fake_llm.script("auditor", APPROVE)
    fake_llm.script("doctor", doctor("execute_fix", fix={"type": "git", "args": ["stash"]}))

    run = drive(start(config(repo, [phase("count", 0, ["inventory/"])])))

    assert run.state == RunState.DONE_SUCCESS
    assert not run.decisions.filter(action="execute_fix").exists()
    assert "allow_execute_fix_global" in run.decisions.get(action="retry_with_hint").reason


def test_replan_replaces_the_plan_for_the_next_attempt_once(models, fake_llm, repo):
    # The same regression twice (a replan), then another test broken: the Doctor's
    # replan is refused, one per phase.
    fake_llm.script("builder", BREAK, BREAK, UNGUARD, QUANTITY)
    fake_llm.script("auditor", APPROVE)
    fake_llm.script("planner", REVISION)
    fake_llm.script("doctor", doctor("replan"))

    run = drive(start(config(repo, [phase("count", 0, ["inventory/"])])))

    assert run.state == RunState.DONE_SUCCESS, run.failure_reason
    prompts = [call.prompt for call in fake_llm.calls("builder")]
    assert "returning the quantity on hand" not in prompts[1]
    assert "returning the quantity on hand" in prompts[2]
    assert "One SEARCH/REPLACE block" in prompts[2]  # the approach
    row = run.phases.get()
    assert row.plan_version == 2 and row.acceptance_criteria == [
        "quantity_of returns 0 for an unknown item"
    ]
    versions = list(PhasePlan.objects.filter(phase=row).values_list("version", flat=True))
    assert versions == [1, 2]
    assert run.decisions.filter(action="replan").count() == 1  # the Doctor's replan refused
    assert len(fake_llm.calls("planner")) == 1
    page = run_page(run)
    assert "Plan: version 2" in page and "+criterion: quantity_of returns 0" in page


def run_page(run) -> str:
    from django.contrib.auth import get_user_model
    from django.test import Client

    user = get_user_model().objects.create_superuser("root", password="pw-root-1")
    client = Client()
    client.force_login(user)
    return client.get(f"/runs/{run.run_id}/").content.decode()


def test_a_builder_repeating_its_mistake_stops_within_every_budget(models, fake_llm, repo):
    from tests.fake_llm import Reply

    fake_llm.responder = lambda role, seen: Reply(
        {"builder": BREAK, "planner": REVISION, "doctor": doctor("retry_with_fix", hint="h")}[role]
    )
    data = config(repo, [phase("count", 0, ["inventory/"])], token_cap=400_000)

    run = drive(start(data))

    assert run.state == RunState.DONE_FAILED
    assert run.failure_code in ("phase_failed", "budget_exhausted"), run.failure_reason
    assert run.phases.get().attempts.count() <= 5
    assert run.llm_calls.filter(role="planner").count() <= 1
    assert run.llm_calls.filter(role="doctor").count() <= 2
    assert run.tokens_used <= 400_000


def quantity_change(returns: str) -> str:
    tests = block(
        "tests/test_quantity.py",
        "",
        "from inventory.stock import quantity_of\n\n\n"
        'def test_known():\n    assert quantity_of({"bolt": 3}, "bolt") == 3\n\n\n'
        'def test_unknown():\n    assert quantity_of({}, "nut") == 0\n\n\n'
        'def test_none():\n    assert quantity_of(None, "nut") == 0\n',
    )
    code = block(
        "inventory/stock.py",
        "    stock[item] -= quantity\n",
        f"    stock[item] -= quantity\n\n\ndef quantity_of(stock, item):\n    return {returns}\n",
    )
    return tests + "\n" + code


def test_steady_progress_is_not_flagged_as_stuck(models, fake_llm, repo):
    fake_llm.script(
        "builder",
        quantity_change("stock[item]"),  # two of the three tests fail
        quantity_change("stock.get(item, 0)"),  # one fails
        quantity_change("(stock or {}).get(item, 0)"),
    )
    fake_llm.script("auditor", APPROVE)
    fake_llm.script("doctor", doctor("retry_with_fix", hint="Handle a missing stock."))
    criteria = ["tests/test_quantity.py passes"]
    scope = {"paths": ["inventory/", "tests/"]}

    run = drive(
        start(config(repo, [phase("count", 0, [], scope=scope, acceptance_criteria=criteria)]))
    )

    assert run.state == RunState.DONE_SUCCESS, run.failure_reason
    kinds = list(run.phases.get().attempts.values_list("failure_kind", flat=True))
    assert kinds == ["target_failing", "target_failing", ""]
    assert not run.decisions.filter(action="replan").exists()
