"""aider's polyglot benchmark through `autopack bench`, with the scripted models that
validate the harness: the table per model, wall time with 1 and 2 workers, and a replay.

    .venv/bin/python bench/polyglot.py [--suite ../shared/bench/polyglot]
        [--languages python] [--models oracle,mutant] [--limit N] [--no-replay]

Uses AUTOPACK_HOME's database (the embedded one by default) and starts its own queue
workers. Prints each benchmark's table, then the wall times: the first (cold) benchmark,
and the first model again with 1 and 2 workers (warm, one after the other, with their
ratio), then the replay's comparison with its recording.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autopack_site.settings")

import django  # noqa: E402

django.setup()

from autopack_site.readiness import ensure_migrated  # noqa: E402
from telemetry import bench_report, benchmarks  # noqa: E402
from telemetry.models import BenchRun  # noqa: E402


def run(suite: Path, options: benchmarks.Options) -> BenchRun:
    bench = benchmarks.create(suite, options)
    print(f"== {bench.bench_id}: {bench.tasks.count()} task(s), {options.workers} worker(s)")
    bench = benchmarks.execute(
        bench,
        benchmarks.WorkerPool(options.workers),
        options,
        lambda task: print(f"  {task.task_id}: {task.status} (try {task.passed_try})", flush=True),
    )
    print(bench_report.table(bench), flush=True)
    return bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", type=Path, default=ROOT.parent / "shared/bench/polyglot")
    parser.add_argument("--languages", default="python")
    parser.add_argument("--models", default="oracle,mutant")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--no-replay", action="store_true")
    args = parser.parse_args()
    logging.getLogger("django-q").setLevel(logging.WARNING)
    ensure_migrated(sys.stdout)
    languages = args.languages.split(",")
    common = {"languages": languages, "limit": args.limit}
    results = {}
    for model in args.models.split(","):
        results[model] = run(args.suite, benchmarks.Options(model=model, workers=1, **common))
    one = results.get("oracle") or next(iter(results.values()))
    # Timed warm: the first benchmark built the task repositories and environments and
    # took each task's baseline, which later benchmarks of the suite reuse.
    warm = {
        workers: run(args.suite, benchmarks.Options(model=one.model, workers=workers, **common))
        for workers in (1, 2)
    }
    print(
        f"\nwall time, {one.model}, {one.tasks.count()} task(s): cold (first) 1 worker "
        f"{one.wall_seconds:.1f} s; warm: 1 worker {warm[1].wall_seconds:.1f} s, 2 workers "
        f"{warm[2].wall_seconds:.1f} s, ratio {warm[2].wall_seconds / warm[1].wall_seconds:.2f}"
    )
    differing = [h for h, a, b in bench_report.compare(warm[1], warm[2]) if a != b]
    print(f"1 vs 2 workers, columns that differ: {', '.join(differing) or 'none'}")
    if args.no_replay:
        return
    replayed = run(
        args.suite, benchmarks.Options(model=one.model, workers=2, replay_of=one, **common)
    )
    differing = [h for h, a, b in bench_report.compare(one, replayed) if a != b]
    print(
        f"\nreplay of {one.bench_id} as {replayed.bench_id}: columns that differ: "
        f"{', '.join(differing) or 'none'}"
    )


if __name__ == "__main__":
    main()
