"""The benchmark pages: the list, one benchmark with its charts, two side by side."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render

from telemetry import bench_dashboard
from telemetry.bench_dashboard import COMPARED

PAGE_SIZE = 50
CHOICES = 500  # benchmarks offered in the comparison form


@login_required
def bench_list(request: HttpRequest) -> HttpResponse:
    visible = bench_dashboard.benchmarks(request.user)
    benches = visible.select_related("replay_of").prefetch_related("tasks")
    page = Paginator(benches, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "telemetry/bench_list.html",
        {
            "rows": bench_dashboard.list_rows(list(page)),
            "page": page,
            "choices": visible.values_list("bench_id", flat=True)[:CHOICES],
        },
    )


@login_required
def bench_detail(request: HttpRequest, bench_id: str) -> HttpResponse:
    bench = bench_dashboard.find(request.user, bench_id)
    return render(request, "telemetry/bench_detail.html", bench_dashboard.detail_context(bench))


@login_required
def bench_compare(request: HttpRequest) -> HttpResponse:
    if problems := bench_dashboard.missing_compared(request.GET):
        return HttpResponseBadRequest(
            "".join(f"{name}: {message}\n" for name, message in problems.items()),
            content_type="text/plain; charset=utf-8",
        )
    first, second = (bench_dashboard.find(request.user, request.GET[name]) for name in COMPARED)
    return render(
        request, "telemetry/bench_compare.html", bench_dashboard.compare_context(first, second)
    )
