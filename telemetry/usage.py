"""Usage and cost aggregates over LLM calls."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDay, TruncMonth, TruncWeek

from telemetry.models import LlmCall

PERIODS = {"day": TruncDay, "week": TruncWeek, "month": TruncMonth}
GROUPS = {
    "model": ("provider", "model"),
    "role": ("role",),
    "project": ("project__name",),
    "run": ("run__run_id",),
}


def attempt_usage(attempt) -> dict:
    totals = attempt.llm_calls.aggregate(
        calls=Count("id"),
        prompt_tokens=Sum("prompt_tokens"),
        completion_tokens=Sum("completion_tokens"),
        total_tokens=Sum("total_tokens"),
        cost_usd=Sum("cost_usd"),
    )
    totals["cost_usd"] = _money(totals["cost_usd"])
    return totals


def _label(value: object) -> str:
    return "-" if value is None else str(value)  # a call without a run has no run_id


def _money(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.6f}"


def usage(calls: QuerySet[LlmCall], period: str, group_by: str) -> list[dict]:
    """One row per period and group, oldest first."""
    fields = GROUPS[group_by]
    rows = (
        calls.annotate(period_start=PERIODS[period]("created_at"))
        .values("period_start", *fields)
        .annotate(
            n_unpriced=Count("id", filter=Q(cost_usd__isnull=True)),
            n_calls=Count("id"),
            sum_prompt=Sum("prompt_tokens"),
            sum_completion=Sum("completion_tokens"),
            sum_total=Sum("total_tokens"),
            sum_cost=Sum("cost_usd"),
            sum_charged=Sum("charged_cost_usd"),
        )
        .order_by("period_start", *fields)
    )
    return [
        {
            "period_start": row["period_start"].date().isoformat(),
            "group": "/".join(_label(row[field]) for field in fields),
            "calls": row["n_calls"],
            "prompt_tokens": row["sum_prompt"],
            "completion_tokens": row["sum_completion"],
            "total_tokens": row["sum_total"],
            "cost_usd": _money(row["sum_cost"]),
            "charged_cost_usd": _money(row["sum_charged"]),
            "unpriced_calls": row["n_unpriced"],
        }
        for row in rows
    ]
