"""A benchmark's table, with aider's columns where they apply, per language, exported as
JSON or CSV, and two benchmarks side by side."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

from telemetry.models import BenchRun, BenchTask

# (key, heading) in the order the table shows them; pass_rate_N and pass_num_N for each try
# are inserted after "tasks".
COLUMNS = [
    ("tasks", "tasks"),
    ("errors", "not tried (errors)"),
    ("percent_cases_well_formed", "percent well formed"),
    ("num_malformed_responses", "malformed replies"),
    ("num_with_malformed_responses", "tasks with malformed replies"),
    ("syntax_errors", "syntax errors"),
    ("test_timeouts", "test timeouts"),
    ("exhausted_context_windows", "exhausted context windows"),
    ("prompt_tokens", "prompt tokens"),
    ("completion_tokens", "completion tokens"),
    ("total_cost", "total cost (USD)"),
    ("seconds_per_case", "seconds per task"),
    ("model", "model"),
    ("edit_format", "edit format"),
    ("autopack_version", "Autopack version"),
    ("date", "date"),
]
# What does not depend on timing: two runs of one scripted model agree on all of these.
TIMING = ("seconds_per_case", "date", "wall_seconds")


def summarise(bench: BenchRun, tasks: list[BenchTask] | None = None) -> dict:
    """The benchmark's figures over `tasks` (default: all of them). Pass rates are over
    the tasks that were tried; tasks whose environment or repository could not be
    prepared are counted as errors, not as failures."""
    tasks = list(bench.tasks.all()) if tasks is None else tasks
    tried = [t for t in tasks if t.status in (BenchTask.Status.PASSED, BenchTask.Status.FAILED)]
    row: dict = {
        "tasks": len(tasks),
        "errors": sum(t.status == BenchTask.Status.ERROR for t in tasks),
    }
    for attempt in range(1, bench.tries + 1):
        passed = sum(1 for t in tried if t.passed_try is not None and t.passed_try <= attempt)
        row[f"pass_rate_{attempt}"] = round(100 * passed / len(tried), 1) if tried else 0.0
        row[f"pass_num_{attempt}"] = passed
    timed = [t.seconds for t in tried if t.seconds is not None]
    row |= {
        "percent_cases_well_formed": (
            round(100 * sum(t.well_formed for t in tried) / len(tried), 1) if tried else 0.0
        ),
        "num_malformed_responses": sum(t.malformed for t in tried),
        "num_with_malformed_responses": sum(1 for t in tried if t.malformed),
        "syntax_errors": sum(t.syntax_errors for t in tried),
        "test_timeouts": sum(t.test_timeouts for t in tried),
        "exhausted_context_windows": sum(t.context_exhausted for t in tried),
        "prompt_tokens": sum(t.prompt_tokens for t in tried),
        "completion_tokens": sum(t.completion_tokens for t in tried),
        "total_cost": str(sum((t.cost_usd for t in tried), Decimal(0)).quantize(Decimal("0.0001"))),
        "seconds_per_case": round(sum(timed) / len(timed), 1) if timed else None,
        "model": bench.model,
        "edit_format": bench.edit_format,
        "autopack_version": bench.autopack_version,
        "date": bench.created_at.date().isoformat(),
    }
    return row


def columns(bench: BenchRun) -> list[tuple[str, str]]:
    tries = []
    for attempt in range(1, bench.tries + 1):
        tries += [
            (f"pass_rate_{attempt}", f"pass rate after try {attempt} (%)"),
            (f"pass_num_{attempt}", f"tasks passed by try {attempt}"),
        ]
    return [COLUMNS[0], *tries, *COLUMNS[1:]]


def by_language(bench: BenchRun) -> dict[str, dict]:
    tasks = list(bench.tasks.all())
    languages = sorted({t.language for t in tasks})
    return {lang: summarise(bench, [t for t in tasks if t.language == lang]) for lang in languages}


def as_json(bench: BenchRun) -> dict:
    return {
        "bench_id": bench.bench_id,
        "suite": bench.suite,
        "suite_kind": bench.suite_kind,
        "state": bench.state,
        "tries": bench.tries,
        "workers": bench.workers,
        "wall_seconds": bench.wall_seconds,
        "replay_of": bench.replay_of.bench_id if bench.replay_of else None,
        "summary": summarise(bench),
        "languages": by_language(bench),
        "tasks": [
            {
                "task_id": t.task_id,
                "language": t.language,
                "status": t.status,
                "passed_try": t.passed_try,
                "tries_used": t.tries_used,
                "well_formed": t.well_formed,
                "malformed": t.malformed,
                "syntax_errors": t.syntax_errors,
                "test_timeouts": t.test_timeouts,
                "context_exhausted": t.context_exhausted,
                "prompt_tokens": t.prompt_tokens,
                "completion_tokens": t.completion_tokens,
                "cost_usd": f"{t.cost_usd:f}",
                "seconds": t.seconds,
                "run_id": t.run.run_id if t.run else None,
                "error": t.error,
                "tests": t.tests,
            }
            for t in bench.tasks.select_related("run")
        ],
    }


CSV_FIELDS = [
    "task_id", "language", "status", "passed_try", "tries_used", "well_formed", "malformed",
    "syntax_errors", "test_timeouts", "context_exhausted", "prompt_tokens",
    "completion_tokens", "cost_usd", "seconds", "run_id", "error",
]  # fmt: skip


def as_csv(bench: BenchRun) -> str:
    """One row per task."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for task in as_json(bench)["tasks"]:
        writer.writerow(task)
    return out.getvalue()


def compare(first: BenchRun, second: BenchRun) -> list[tuple[str, object, object]]:
    """(heading, first's value, second's value) for every column either has."""
    a, b = summarise(first), summarise(second)
    headings = dict(columns(first)) | dict(columns(second))
    keys = [k for k, _ in columns(first if first.tries >= second.tries else second)]
    return [(headings[k], a.get(k), b.get(k)) for k in keys]


def pass_rates(bench: BenchRun, summary: dict) -> list[float]:
    """The pass rate (%) after each try, from a summary of `bench`."""
    return [summary[f"pass_rate_{attempt}"] for attempt in range(1, bench.tries + 1)]


def languages_compared(first: BenchRun, second: BenchRun) -> list[dict]:
    """Each language of either benchmark with both pass rates after each try; None for a
    benchmark without tasks in that language."""
    a, b = by_language(first), by_language(second)
    return [
        {
            "language": language,
            "a": pass_rates(first, a[language]) if language in a else None,
            "b": pass_rates(second, b[language]) if language in b else None,
        }
        for language in sorted(a.keys() | b.keys())
    ]


def table(bench: BenchRun) -> str:
    """The summary as the command prints it, then one line per language."""
    row = summarise(bench)
    cols = columns(bench)
    width = max(len(heading) for _, heading in cols)
    lines = [f"Benchmark {bench.bench_id} ({bench.suite_kind}: {bench.suite})"]
    lines += [f"  {heading:<{width}}  {row[key]}" for key, heading in cols]
    if bench.wall_seconds is not None:
        lines.append(f"  {'wall time (s)':<{width}}  {bench.wall_seconds:.1f}")
    rates = [k for k, _ in cols if k.startswith("pass_rate_")]
    lines.append("")
    lines.append("  language     tasks  errors  " + "  ".join(f"try {k[10:]}" for k in rates))
    for language, figures in by_language(bench).items():
        rates_text = "  ".join(f"{figures[k]:>5}%" for k in rates)
        lines.append(
            f"  {language:<11} {figures['tasks']:>6}  {figures['errors']:>6}  {rates_text}"
        )
    return "\n".join(lines)


def comparison(first: BenchRun, second: BenchRun) -> str:
    rows = compare(first, second)
    width = max(len(h) for h, _, _ in rows)
    lines = [f"  {'':<{width}}  {first.bench_id:<30}  {second.bench_id}"]
    lines += [f"  {h:<{width}}  {str(a):<30}  {b}" for h, a, b in rows]
    return "\n".join(lines)
