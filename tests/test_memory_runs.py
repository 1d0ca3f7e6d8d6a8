"""Runs learn from earlier runs of their project, through the fake model server and the
real memory store: an error fixed in one run reaches the Builder's prompt in the next
run of the same project, never in another project's; the intention anchor reaches every
model; goal drift flags or refuses a change unrelated to the run's intention."""

from __future__ import annotations

from pathlib import Path

import pytest

from memory.models import Memory
from runs.models import Attempt, Project
from runs.states import RunState
from tests.builds import APPROVE, QUANTITY, block, config, drive, make_repo, phase, start

pytestmark = pytest.mark.django_db(transaction=True)

# A first try that the tests reject with a distinctive error, then the fix.
BROKEN = block(
    "inventory/stock.py",
    "    stock[item] -= quantity\n",
    "    stock[item] -= quantity\n\n\n"
    "def quantity_of(stock: dict[str, int], item: str) -> int:\n"
    "    return stock.get(item, 0) + undefined_inventory_offset\n",
)
QUANTITY_TEST = block(
    "tests/test_quantity.py",
    "",
    "from inventory.stock import quantity_of\n\n\n"
    "def test_quantity_of():\n"
    "    assert quantity_of({'apple': 3}, 'apple') == 3\n",
)
UNRELATED = block(
    "inventory/forecast.py",
    "",
    "# Chocolate cake recipe\nflour = 200\nsugar = 150\neggs = 3\n\n\n"
    "def bake(minutes=45):\n    print('Preheat the oven to 180 degrees')\n",
)


def count_phase(**extra) -> dict:
    return phase(
        "count",
        0,
        ["inventory/", "tests/"],
        description="Add quantity_of(stock, item) to the inventory ledger, with a test",
        **extra,
    )


def builder_prompts(fake_llm) -> list[str]:
    return [call.prompt for call in fake_llm.calls("builder")]


def test_an_error_fixed_in_one_run_is_remembered_in_the_next_run_of_the_project_only(
    engine, fake_llm, tmp_path: Path
):
    repo = make_repo(tmp_path / "inventory")
    fake_llm.script("builder", BROKEN + QUANTITY_TEST, QUANTITY + QUANTITY_TEST)
    fake_llm.script("auditor", APPROVE)
    first = drive(start(config(repo, [count_phase()], run_id="first")))
    assert first.state == RunState.DONE_SUCCESS
    assert Attempt.objects.filter(run=first).count() == 2
    fixes = Memory.objects.filter(kind=Memory.Kind.ERROR_FIX, run=first)
    assert fixes.count() == 1
    assert "undefined_inventory_offset" in fixes.get().text
    assert Memory.objects.filter(kind=Memory.Kind.PHASE_SUMMARY, run=first).exists()
    assert Memory.objects.filter(kind=Memory.Kind.RUN_SUMMARY, run=first).exists()

    fake_llm.script("builder", QUANTITY + QUANTITY_TEST)
    fake_llm.script("auditor", APPROVE)
    second = drive(start(config(repo, [count_phase()], run_id="second")))
    assert second.state == RunState.DONE_SUCCESS
    prompt = builder_prompts(fake_llm)[-1]
    assert "# From the project's memory" in prompt
    assert "from run first, phase count" in prompt
    assert "undefined_inventory_offset" in prompt

    other = make_repo(tmp_path / "elsewhere")
    fake_llm.script("builder", QUANTITY + QUANTITY_TEST)
    fake_llm.script("auditor", APPROVE)
    third = drive(start(config(other, [count_phase()], run_id="third")))
    assert third.project != first.project
    assert third.state == RunState.DONE_SUCCESS
    prompt = builder_prompts(fake_llm)[-1]
    assert "undefined_inventory_offset" not in prompt
    assert "from run first" not in prompt


def test_projects_that_both_opt_in_share_their_memory(engine, fake_llm, tmp_path: Path):
    repo = make_repo(tmp_path / "inventory")
    fake_llm.script("builder", BROKEN + QUANTITY_TEST, QUANTITY + QUANTITY_TEST)
    fake_llm.script("auditor", APPROVE)
    first = drive(start(config(repo, [count_phase()], run_id="first")))
    Project.objects.filter(pk=first.project.pk).update(share_memory=True)

    other = make_repo(tmp_path / "elsewhere")
    fake_llm.script("builder", QUANTITY + QUANTITY_TEST)
    fake_llm.script("auditor", APPROVE)
    run = start(config(other, [count_phase()], run_id="other"))
    Project.objects.filter(pk=run.project.pk).update(share_memory=True)
    drive(run)
    assert "undefined_inventory_offset" in builder_prompts(fake_llm)[-1]


def test_the_intention_anchor_reaches_the_builder_and_the_auditor(engine, fake_llm, repo):
    fake_llm.script("builder", QUANTITY)
    fake_llm.script("auditor", APPROVE)
    run = drive(start(config(repo, [phase("count", 0, ["inventory/"], complexity="medium")])))
    assert run.intention_anchor.startswith("Goal: Improve the inventory ledger\nPlan:\n- Task")
    assert len(run.intention_anchor.encode()) <= 2048
    for role in ("builder", "auditor"):
        assert f"# Intention of the run\n{run.intention_anchor}" in fake_llm.calls(role)[0].prompt
    assert Memory.objects.filter(kind=Memory.Kind.ANCHOR, run=run).exists()


def test_the_anchor_of_a_long_plan_is_cut_to_two_kilobytes(engine, repo):
    phases = [phase(f"p{i}", i, ["inventory/"], task_name="Ledger " * 30) for i in range(20)]
    run = start(config(repo, phases))
    assert len(run.intention_anchor.encode()) <= 2048
    assert run.intention_anchor.endswith("…")


def test_goal_drift_flags_an_unrelated_change_in_advisory_mode(engine, fake_llm, repo):
    engine.AUTOPACK_GOAL_DRIFT = "advisory"
    fake_llm.script("builder", UNRELATED, QUANTITY)
    fake_llm.script("auditor", APPROVE)
    run = drive(start(config(repo, [phase("count", 0, ["inventory/"])])))
    attempt = Attempt.objects.get(run=run, number=1)
    assert attempt.drift["flagged"] is True and attempt.drift["mode"] == "advisory"
    assert attempt.drift["similarity"] < attempt.drift["threshold"]
    assert attempt.state == "PASSED"  # advisory: flagged, not refused
    assert run.state == RunState.DONE_SUCCESS


def test_goal_drift_refuses_an_unrelated_change_in_blocking_mode(engine, fake_llm, repo):
    engine.AUTOPACK_GOAL_DRIFT = "blocking"
    fake_llm.script("builder", UNRELATED, QUANTITY)
    fake_llm.script("auditor", APPROVE)
    run = drive(start(config(repo, [phase("count", 0, ["inventory/"])])))
    refused, passed = Attempt.objects.filter(run=run).order_by("number")
    assert refused.outcome == "goal_drift" and refused.drift["flagged"] is True
    assert "too far from the run's intention" in refused.error
    assert not (repo / "inventory" / "forecast.py").exists()
    assert passed.state == "PASSED" and passed.drift["flagged"] is False
    assert run.state == RunState.DONE_SUCCESS


def test_the_attempt_records_what_the_builder_was_shown(engine, fake_llm, repo):
    fake_llm.script("builder", QUANTITY)
    fake_llm.script("auditor", APPROVE)
    run = drive(start(config(repo, [phase("count", 0, ["inventory/"])])))
    attempt = Attempt.objects.get(run=run)
    assert attempt.context["budget_tokens"] == 30_000
    assert {entry["path"] for entry in attempt.context["whole"]} == set(attempt.context_files)
    assert "inventory/stock.py" in attempt.context_files
    assert attempt.context["used_tokens"] > 0
    # The fake server speaks Anthropic's token counting: the chosen files were counted.
    assert attempt.context["counted_by"] == "anthropic"


def test_memory_off_means_runs_neither_read_nor_write_it(engine, fake_llm, repo):
    engine.AUTOPACK_MEMORY_ENABLED = False
    fake_llm.script("builder", QUANTITY)
    fake_llm.script("auditor", APPROVE)
    run = drive(start(config(repo, [phase("count", 0, ["inventory/"])])))
    assert run.state == RunState.DONE_SUCCESS
    assert not Memory.objects.filter(project=run.project).exists()


def test_a_project_opts_in_to_shared_memory_over_the_api(engine, repo, alice):
    from rest_framework.test import APIClient

    run = start(config(repo, [phase("count", 0, ["inventory/"])]), created_by=alice)
    client = APIClient()
    client.force_authenticate(alice)
    url = f"/api/projects/{run.project.pk}/"
    assert client.get(url).json()["share_memory"] is False
    answer = client.patch(url, {"share_memory": True}, format="json")
    assert answer.status_code == 200, answer.content
    assert Project.objects.get(pk=run.project.pk).share_memory is True
