"""Who sees which benchmarks, and what the benchmark pages show of them.

Benchmarks belong to no project: staff see them all, other users the ones they started.
The command line starts them with no user, so those are for staff only. A benchmark
outside what a user sees is a 404, in pages and the API alike."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.http import Http404

from telemetry import bench_report
from telemetry.bench_charts import language_charts
from telemetry.models import BenchRun

COMPARED = ("a", "b")


def benchmarks(user: AbstractBaseUser) -> QuerySet[BenchRun]:
    if user.is_staff:
        return BenchRun.objects.all()
    return BenchRun.objects.filter(created_by=user)


def find(user: AbstractBaseUser, bench_id: str) -> BenchRun:
    found = (
        benchmarks(user).select_related("replay_of", "created_by").filter(bench_id=bench_id).first()
    )
    if found is None:
        raise Http404(f"No benchmark {bench_id!r} among yours.")
    return found


def missing_compared(params: Mapping[str, str]) -> dict[str, str]:
    """The parameters naming the two benchmarks to compare that are absent or empty."""
    return {
        name: "missing: give a benchmark id, as in ?a=bench-1&b=bench-2"
        for name in COMPARED
        if not params.get(name)
    }


def suite_name(bench: BenchRun) -> str:
    return PurePath(bench.suite).name or bench.suite


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    whole = round(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def list_rows(benches: list[BenchRun]) -> list[dict]:
    """A row per benchmark for the list (tasks prefetched: a summary reads them)."""
    rows = []
    for bench in benches:
        summary = bench_report.summarise(bench)
        rows.append(
            {
                "bench": bench,
                "suite": suite_name(bench),
                "tasks": summary["tasks"],
                "rates": bench_report.pass_rates(bench, summary),
                "wall": duration(bench.wall_seconds),
            }
        )
    return rows


def detail_context(bench: BenchRun) -> dict:
    summary = bench_report.summarise(bench)
    languages = bench_report.by_language(bench)
    return {
        "bench": bench,
        "suite": suite_name(bench),
        "wall": duration(bench.wall_seconds),
        "summary": [(heading, summary[key]) for key, heading in bench_report.columns(bench)],
        "charts": language_charts(bench, languages, summary) if languages else [],
        "tasks": bench.tasks.select_related("run"),
    }


def compare_context(first: BenchRun, second: BenchRun) -> dict:
    tries = max(first.tries, second.tries)
    return {
        "a": first,
        "b": second,
        "rows": bench_report.compare(first, second),
        "tries": range(1, tries + 1),
        "columns": 2 * tries + 1,
        "languages": [
            {
                "language": row["language"],
                "a": padded(row["a"], tries),
                "b": padded(row["b"], tries),
            }
            for row in bench_report.languages_compared(first, second)
        ],
    }


def padded(rates: list[float] | None, tries: int) -> list[float | None]:
    """A benchmark's pass rates in a table of `tries` columns, None where it has none."""
    rates = rates or []
    return rates + [None] * (tries - len(rates))
