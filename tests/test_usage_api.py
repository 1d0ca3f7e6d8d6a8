from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from runs import services
from telemetry.models import LlmCall

pytestmark = pytest.mark.django_db


@pytest.fixture
def calls(run_config, tmp_path):
    first = services.create_run(run_config)
    other_repo = tmp_path / "billing"
    other_repo.mkdir()
    second = services.create_run(
        {**run_config, "run_id": "billing-run", "workspace": str(other_repo)}
    )
    rows = [  # run, role, provider/model, day, prompt, completion, cost
        (first, "builder", "anthropic/claude-a", 1, 1000, 200, "0.006"),
        (first, "auditor", "openai/gpt-b", 1, 400, 20, "0.0007"),
        (first, "builder", "anthropic/claude-a", 2, 3000, 100, "0.0105"),
        (second, "builder", "openai/local", 2, 50, 5, None),
    ]
    for run, role, model, day, prompt, completion, cost in rows:
        provider, name = model.split("/")
        call = LlmCall.objects.create(
            run=run,
            role=role,
            provider=provider,
            model=name,
            max_tokens=1000,
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
            cost_usd=Decimal(cost) if cost else None,
            charged_cost_usd=Decimal(cost or "0.01"),
            duration_ms=5,
        )
        LlmCall.objects.filter(pk=call.pk).update(
            created_at=datetime(2026, 11, day, 12, tzinfo=UTC)
        )


def test_usage_groups_by_model_per_day(api, calls):
    body = api.get("/api/usage/?period=day&group_by=model").json()

    rows = [
        (
            r["period_start"],
            r["group"],
            r["calls"],
            r["total_tokens"],
            r["cost_usd"],
            r["unpriced_calls"],
        )
        for r in body["results"]
    ]
    assert rows == [
        ("2026-11-01", "anthropic/claude-a", 1, 1200, "0.006000", 0),
        ("2026-11-01", "openai/gpt-b", 1, 420, "0.000700", 0),
        ("2026-11-02", "anthropic/claude-a", 1, 3100, "0.010500", 0),
        ("2026-11-02", "openai/local", 1, 55, None, 1),
    ]


def test_usage_groups_by_role_project_and_run_per_month(api, calls):
    by_role = api.get("/api/usage/?period=month&group_by=role").json()["results"]
    by_project = api.get("/api/usage/?period=month&group_by=project").json()["results"]
    by_run = api.get("/api/usage/?period=month&group_by=run").json()["results"]
    by_week = api.get("/api/usage/?period=week&group_by=run").json()["results"]

    assert [(r["group"], r["calls"], r["prompt_tokens"]) for r in by_role] == [
        ("auditor", 1, 400),
        ("builder", 3, 4050),
    ]
    assert [(r["period_start"], r["group"], r["total_tokens"]) for r in by_project] == [
        ("2026-11-01", "billing", 55),
        ("2026-11-01", "notes", 4720),
    ]
    assert {r["group"]: r["cost_usd"] for r in by_run} == {
        "billing-run": None,
        "notes-search": "0.017200",
    }
    # 1 November 2026 is a Sunday: the two days fall in different ISO weeks.
    assert [(r["period_start"], r["group"]) for r in by_week] == [
        ("2026-10-26", "notes-search"),
        ("2026-11-02", "billing-run"),
        ("2026-11-02", "notes-search"),
    ]


def test_usage_filters_by_run_and_exports_csv(api, calls):
    response = api.get("/api/usage/?period=month&group_by=model&run=notes-search&format=csv")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "autopack-usage-month-model.csv" in response["Content-Disposition"]
    lines = response.content.decode().strip().splitlines()
    assert lines[0] == (
        "period_start,group,calls,prompt_tokens,completion_tokens,total_tokens,"
        "cost_usd,charged_cost_usd,unpriced_calls"
    )
    assert lines[1:] == [
        "2026-11-01,anthropic/claude-a,2,4000,300,4300,0.016500,0.016500,0",
        "2026-11-01,openai/gpt-b,1,400,20,420,0.000700,0.000700,0",
    ]


def test_usage_rejects_unknown_period_and_grouping(api, calls):
    response = api.get("/api/usage/?period=hour&group_by=colour")

    assert response.status_code == 400
    assert [e["path"] for e in response.json()["errors"]] == ["period", "group_by"]
    assert APIClient().get("/api/usage/").status_code == 401


def test_metrics_are_served_to_allowed_addresses_or_bearer_tokens(client, calls, settings):
    response = client.get("/metrics")
    assert response.status_code == 200
    text = response.content.decode()
    assert 'autopack_runs{state="QUEUED"} 2.0' in text
    assert (
        'autopack_llm_tokens_total{kind="prompt",model="anthropic/claude-a",role="builder"} 4000.0'
    ) in text
    assert 'autopack_llm_cost_usd_total{model="openai/gpt-b",role="auditor"} 0.0007' in text

    settings.AUTOPACK_METRICS_ALLOW = []
    settings.AUTOPACK_METRICS_TOKEN = "scrape-secret"
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret").status_code == 200
