"""Budgets hold: every cap stops the run before the call that would cross it; cost is
exact; a stopped run resumes with raised budgets."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from runs.executor import execute_step
from runs.models import Run
from runs.states import PhaseState, RunState
from telemetry.models import LlmCall
from tests.builds import APPROVE, block, config, drive, phase, start, write_models
from tests.fake_llm import Reply
from tests.test_engine_runs import QUANTITY, REGRESSION, script_two_providers

pytestmark = pytest.mark.django_db(transaction=True)

PRICES = {
    "models": {
        "anthropic/claude-low-1": {
            "input": 3,
            "output": 15,
            "cache_read": 0.3,
            "cache_write": 3.75,
        },
        "anthropic/claude-audit": {
            "input": 3,
            "output": 15,
            "cache_read": 0.3,
            "cache_write": 3.75,
        },
        "openai/gpt-a": {"input": 1.25, "output": 10, "cache_read": 0.125},
        "anthropic/claude-b": {"input": 3, "output": 15, "cache_read": 0.3, "cache_write": 3.75},
    }
}


def _someone():
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user("reader", is_staff=True)


UNMATCHED = block("inventory/stock.py", "def nothing_like_this():\n    pass\n", "x = 1\n")


@pytest.fixture
def priced(engine, tmp_path):
    engine.AUTOPACK_PRICES = tmp_path / "prices.yaml"
    engine.AUTOPACK_PRICES.write_text(json.dumps(PRICES))
    engine.AUTOPACK_MODELS = write_models(
        tmp_path / "models.yaml", builder={"max_output_tokens": 4096}
    )
    return engine


def one_phase(repo, **extra) -> dict:
    phase_extra = extra.pop("phase", {})
    return config(repo, [phase("count", 0, ["inventory/"], **phase_extra)], **extra)


def test_cost_is_exact_for_both_providers_including_cached_tokens(priced, fake_llm, repo, tmp_path):
    script_two_providers(priced, fake_llm, tmp_path)

    run = drive(start(one_phase(repo)))

    builder, auditor = LlmCall.objects.filter(run=run).order_by("id")
    listed = APIClient()
    listed.force_authenticate(run.created_by or _someone())
    calls = listed.get(f"/api/runs/{run.run_id}/llm-calls/").json()["results"]
    assert [(c["role"], c["cost_usd"]) for c in calls] == [
        ("builder", "0.00871500"),
        ("auditor", "0.00094900"),
    ]
    # (1200 x 3 + 300 x 15 + 800 x 0.30 + 100 x 3.75) / 1e6
    assert builder.cost_usd == Decimal("0.008715")
    # ((900 - 512) x 1.25 + 512 x 0.125 + 40 x 10) / 1e6
    assert auditor.cost_usd == Decimal("0.000949")
    assert run.cost_usd == Decimal("0.009664")
    phase_row = run.phases.get()
    assert phase_row.cost_usd == run.cost_usd and phase_row.tokens_used == run.tokens_used
    attempt = run.api_attempt = run.attempts.get()
    from runs.serializers import AttemptSerializer

    usage = AttemptSerializer(attempt).data["usage"]
    assert usage == {
        "calls": 2,
        "prompt_tokens": 2100,
        "completion_tokens": 340,
        "total_tokens": 3340,
        "cost_usd": "0.009664",
    }
    assert sorted(attempt.context_files) == ["inventory/__init__.py", "inventory/stock.py"]


def test_unknown_model_cost_is_null_with_a_warning(priced, fake_llm, repo, tmp_path):
    priced.AUTOPACK_MODELS = write_models(
        tmp_path / "models.yaml",
        chains={
            "builder": {level: ["openai/mystery-model"] for level in ("low", "medium", "high")},
            "auditor": {level: ["openai/gpt-a"] for level in ("low", "medium", "high")},
        },
    )
    fake_llm.script("builder", QUANTITY)
    fake_llm.script("auditor", APPROVE)

    run = drive(start(one_phase(repo)))

    assert run.state == RunState.DONE_SUCCESS
    builder = LlmCall.objects.get(run=run, role="builder")
    assert builder.cost_usd is None and builder.total_tokens is not None
    warnings = [e.payload["message"] for e in run.events.filter(kind="warning")]
    assert any("openai/mystery-model call is unknown" in w for w in warnings)


def test_a_cost_capped_run_refuses_a_model_without_a_price(priced, fake_llm, repo, tmp_path):
    priced.AUTOPACK_MODELS = write_models(
        tmp_path / "models.yaml",
        chains={
            "builder": {level: ["openai/mystery-model"] for level in ("low", "medium", "high")},
            "auditor": {level: ["openai/gpt-a"] for level in ("low", "medium", "high")},
        },
    )

    run = drive(start(one_phase(repo, cost_cap=5)))

    assert (run.state, run.failure_code) == (RunState.DONE_FAILED, "configuration")
    assert "Model openai/mystery-model has no price" in run.failure_reason
    assert fake_llm.seen == []


def test_run_token_cap_stops_the_call_that_would_cross_it(priced, fake_llm, repo):
    fake_llm.script("builder", Reply(QUANTITY, output_tokens=3900))
    fake_llm.script("auditor", APPROVE)

    run = drive(start(one_phase(repo, token_cap=5500)))

    assert (run.state, run.failure_code) == (RunState.DONE_FAILED, "budget_exhausted")
    spent = LlmCall.objects.get(run=run).total_tokens
    assert run.failure_reason.startswith(f"run token cap 5,500 reached: {spent:,} used")
    assert run.tokens_used == spent <= 5500
    assert fake_llm.calls("auditor") == []


def test_run_cost_cap_stops_the_call_that_would_cross_it(priced, fake_llm, repo):
    fake_llm.script("builder", Reply(QUANTITY, output_tokens=3900))
    fake_llm.script("auditor", APPROVE)

    run = drive(start(one_phase(repo, cost_cap=0.07)))

    assert (run.state, run.failure_code) == (RunState.DONE_FAILED, "budget_exhausted")
    spent = LlmCall.objects.get(run=run).cost_usd
    assert run.failure_reason.startswith(f"run cost cap $0.0700 reached: ${spent:.4f} spent")
    assert run.cost_usd == spent <= Decimal("0.07")
    assert fake_llm.calls("auditor") == []


def test_phase_token_cap_stops_the_call_that_would_cross_it(priced, fake_llm, repo):
    fake_llm.script("builder", Reply(QUANTITY, output_tokens=3900))

    run = drive(start(one_phase(repo, phase={"token_cap": 5500})))

    assert run.failure_code == "budget_exhausted"
    assert run.failure_reason.startswith("phase count token cap 5,500 reached")
    assert run.phases.get().tokens_used <= 5500
    assert fake_llm.calls("auditor") == []


def test_max_output_is_lowered_to_fit_when_a_useful_reply_still_fits(priced, fake_llm, repo):
    fake_llm.script("builder", QUANTITY)
    fake_llm.script("auditor", APPROVE)

    run = drive(start(one_phase(repo, token_cap=4000)))

    assert run.state == RunState.DONE_SUCCESS
    asked = fake_llm.calls("builder")[0].body["max_tokens"]
    assert 1024 <= asked < 4096
    lowered = run.events.get(kind="max_tokens_lowered", payload__role="builder").payload
    assert (lowered["requested"], lowered["allowed"]) == (4096, asked)
    assert run.tokens_used <= 4000


def test_maximum_duration_stops_before_the_next_call(priced, fake_llm, repo):
    fake_llm.script("builder", QUANTITY, QUANTITY)
    fake_llm.script("auditor", APPROVE, APPROVE)
    run = start(
        config(
            repo,
            [phase("count", 0, ["inventory/"])],
            [phase("again", 0, ["inventory/"])],
            max_duration_minutes=1,
        )
    )
    assert execute_step(run.run_id, 0)
    Run.objects.filter(pk=run.pk).update(active_since=timezone.now() - timedelta(minutes=2))

    run = drive(run)

    assert (run.state, run.failure_code) == (RunState.DONE_FAILED, "budget_exhausted")
    assert "maximum duration of 60 s reached" in run.failure_reason
    assert len(fake_llm.calls("builder")) == 1


@pytest.mark.parametrize(
    "limit, replies, expected",
    [
        ({"server_errors": 2}, [Reply(status=500)] * 6, "2 provider server errors"),
        ({"patch_failures": 2}, [UNMATCHED, UNMATCHED], "2 edits that could not be applied"),
        ({"total_failures": 2}, [REGRESSION, UNMATCHED], "2 failed attempts"),
        ({"repeated_failures": 2}, [REGRESSION, REGRESSION], "the same failure 2 times in a row"),
    ],
)
def test_each_health_budget_stops_the_run_before_the_next_attempt(
    priced, fake_llm, repo, limit, replies, expected
):
    fake_llm.script("builder", *replies, QUANTITY)

    run = drive(start(one_phase(repo, health_budget=limit, phase={"max_attempts": 5})))

    assert (run.state, run.failure_code) == (RunState.DONE_FAILED, "budget_exhausted")
    assert f"health budget: {expected}" in run.failure_reason
    assert len(fake_llm.calls("builder")) == len(replies)  # the next call was never sent
    assert fake_llm.replies["builder"]  # QUANTITY is still waiting


def test_resume_with_a_raised_cap_finishes_from_the_last_savepoint(priced, fake_llm, repo, api):
    fake_llm.script("builder", Reply(QUANTITY, output_tokens=3900), QUANTITY)
    fake_llm.script("auditor", APPROVE)
    run = drive(start(one_phase(repo, token_cap=5500)))
    assert run.failure_code == "budget_exhausted"

    low = api.post(f"/api/runs/{run.run_id}/resume/", {"token_cap": 10}, format="json")
    assert low.status_code == 400
    assert low.json()["errors"][0]["path"] == "token_cap"
    assert "above the" in low.json()["errors"][0]["message"]
    unknown = api.post(f"/api/runs/{run.run_id}/resume/", {"tokens": 1}, format="json")
    assert unknown.status_code == 400
    assert unknown.json() == {"errors": [{"path": "tokens", "message": "unknown field"}]}
    response = api.post(f"/api/runs/{run.run_id}/resume/", {"token_cap": 50000}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["state"] == RunState.QUEUED
    run = drive(Run.objects.get(pk=run.pk))

    assert run.state == RunState.DONE_SUCCESS, run.failure_reason
    assert run.tokens_used <= 50000
    assert "run_resumed" in run.events.values_list("kind", flat=True)
    again = api.post(f"/api/runs/{run.run_id}/resume/", {}, format="json")
    assert again.status_code == 409


def test_resume_gives_a_failed_phase_more_attempts(priced, fake_llm, repo, api):
    fake_llm.script("builder", REGRESSION, QUANTITY)
    fake_llm.script("auditor", APPROVE)
    run = drive(start(one_phase(repo, phase={"max_attempts": 1})))
    assert run.failure_code == "phase_failed"

    response = api.post(f"/api/runs/{run.run_id}/resume/", {"extra_attempts": 2}, format="json")
    run = drive(Run.objects.get(pk=run.pk))

    assert response.status_code == 200
    assert run.state == RunState.DONE_SUCCESS
    phase_row = run.phases.get()
    assert (phase_row.state, phase_row.max_attempts, phase_row.attempt_count) == (
        PhaseState.COMPLETE,
        3,
        2,
    )


def test_a_call_that_cannot_be_recorded_does_not_stop_the_build(priced, fake_llm, repo):
    # A stop reason longer than any the column was made for: storing the call fails.
    odd = Reply("Here you go.\n\n" + QUANTITY, stop="an_unheard_of_stop_reason_" * 3)
    fake_llm.script("builder", odd)
    fake_llm.script("auditor", APPROVE)

    run = drive(start(one_phase(repo)))

    assert run.state == RunState.DONE_SUCCESS
    assert list(LlmCall.objects.filter(run=run).values_list("role", flat=True)) == ["auditor"]
    warning = run.events.filter(kind="warning").first().payload
    assert "an LLM call could not be recorded" in warning["message"]
    assert run.tokens_used > LlmCall.objects.get(run=run).total_tokens  # builder still counted


def test_nul_characters_a_model_sends_are_dropped_from_the_record(priced, fake_llm, repo):
    # PostgreSQL text cannot hold NUL: the record keeps the rest of the reply.
    fake_llm.script("builder", "Here you go.\x00\n\n" + QUANTITY)
    fake_llm.script("auditor", APPROVE)

    run = drive(start(one_phase(repo)))

    assert run.state == RunState.DONE_SUCCESS
    builder = LlmCall.objects.get(run=run, role="builder")
    assert builder.response_text.startswith("Here you go.\n")
