"""GET /metrics for Prometheus, computed from the database at scrape time, so every web
process reports the same figures. Open to AUTOPACK_METRICS_ALLOW addresses, or to anyone
sending `Authorization: Bearer $AUTOPACK_METRICS_TOKEN`."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.db import connection
from django.db.models import Count, Sum
from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily

from runs.models import Attempt, Run
from runs.states import RunState
from telemetry.models import LlmCall

GATE_DURATIONS = """
    SELECT gate->>'name', count(*), coalesce(sum((gate->>'duration')::float), 0)
    FROM runs_attempt, jsonb_array_elements(gate_results) AS gate
    GROUP BY 1
"""


class AutopackCollector:
    def collect(self):
        runs = GaugeMetricFamily("autopack_runs", "Runs by state", labels=["state"])
        counts = dict(Run.objects.values_list("state").annotate(n=Count("id")))
        for state, _ in RunState.CHOICES:
            runs.add_metric([state], counts.get(state, 0))
        yield runs

        attempts = CounterMetricFamily(
            "autopack_attempts", "Attempts by outcome", labels=["outcome"]
        )
        for outcome, n in Attempt.objects.values_list("outcome").annotate(n=Count("id")):
            attempts.add_metric([outcome or "running"], n)
        yield attempts

        tokens = CounterMetricFamily(
            "autopack_llm_tokens", "Tokens reported by providers", labels=["model", "role", "kind"]
        )
        cost = CounterMetricFamily(
            "autopack_llm_cost_usd", "Known cost of LLM calls (USD)", labels=["model", "role"]
        )
        rows = LlmCall.objects.values("provider", "model", "role").annotate(
            prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens"), cost=Sum("cost_usd")
        )
        for row in rows:
            model = f"{row['provider']}/{row['model']}"
            tokens.add_metric([model, row["role"], "prompt"], row["prompt"] or 0)
            tokens.add_metric([model, row["role"], "completion"], row["completion"] or 0)
            cost.add_metric([model, row["role"]], float(row["cost"] or 0))
        yield tokens
        yield cost

        gates = SummaryMetricFamily(
            "autopack_gate_duration_seconds", "Gate run time", labels=["gate"]
        )
        with connection.cursor() as cursor:
            cursor.execute(GATE_DURATIONS)
            for name, count, total in cursor.fetchall():
                gates.add_metric([name], count_value=count, sum_value=total)
        yield gates


def _allowed(request: HttpRequest) -> bool:
    token = settings.AUTOPACK_METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(header, f"Bearer {token}"):
        return True
    return request.META.get("REMOTE_ADDR", "") in settings.AUTOPACK_METRICS_ALLOW


def metrics(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        return HttpResponse(
            "metrics: send the configured bearer token or scrape from an "
            "allowed address (AUTOPACK_METRICS_ALLOW)\n",
            status=403,
            content_type="text/plain",
        )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AutopackCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
