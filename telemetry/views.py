"""The usage page: tokens and cost over time, by model and by role, as SVG bar charts."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from runs import access
from telemetry.models import LlmCall
from telemetry.usage import PERIODS, usage

COLOURS = ["#1f4f82", "#c2410c", "#146c2e", "#6b21a8", "#a16207", "#0e7490", "#be185d"]
WINDOW = {"day": timedelta(days=30), "week": timedelta(weeks=26), "month": timedelta(days=730)}


def chart(rows: list[dict], value: str, title: str) -> dict:
    """Stacked bars, one per period, one colour per group."""
    periods = sorted({r["period_start"] for r in rows})
    groups = sorted({r["group"] for r in rows})
    totals: dict[str, float] = defaultdict(float)
    cells: dict[tuple[str, str], float] = {}
    for row in rows:
        amount = float(row[value] or 0)
        cells[(row["period_start"], row["group"])] = amount
        totals[row["period_start"]] += amount
    top = max(totals.values(), default=0) or 1
    width = max(1, len(periods))
    bars = []
    for index, period in enumerate(periods):
        y = 100.0
        for colour, group in zip(COLOURS * 10, groups, strict=False):
            height = cells.get((period, group), 0) / top * 90
            y -= height
            bars.append(
                {
                    "x": index * 100 / width + 1,
                    "y": y,
                    "w": 100 / width - 2,
                    "h": height,
                    "colour": colour,
                    "label": f"{period} {group}: {cells.get((period, group), 0):g}",
                }
            )
    return {
        "title": title,
        "bars": bars,
        "periods": periods,
        "top": top,
        "legend": list(zip(groups, COLOURS * 10, strict=False)),
    }


@login_required
def usage_page(request: HttpRequest) -> HttpResponse:
    period = request.GET.get("period", "day")
    if period not in PERIODS:
        period = "day"
    calls = LlmCall.objects.filter(
        created_at__gte=timezone.now() - WINDOW[period],
        project__in=access.projects(request.user),
    )
    by_model = usage(calls, period, "model")
    by_role = usage(calls, period, "role")
    charts = [
        chart(by_model, "total_tokens", "Tokens by model"),
        chart(by_model, "cost_usd", "Known cost (USD) by model"),
        chart(by_role, "total_tokens", "Tokens by role"),
        chart(by_role, "cost_usd", "Known cost (USD) by role"),
    ]
    return render(
        request,
        "telemetry/usage.html",
        {
            "period": period,
            "periods": list(PERIODS),
            "charts": charts if by_model else [],
            "rows": by_model,
            "ever": LlmCall.objects.filter(project__in=access.projects(request.user)).exists(),
        },
    )
