"""Engine overhead per attempt: attempt wall time minus LLM call time minus gate command
time, over several runs of the demo (scripted replies, real git, real pytest gates).

    .venv/bin/python bench/engine_overhead.py [--runs N]

Target: median under 1 s. The gate command time is printed beside it as the in-process
baseline the overhead is measured against.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autopack_site.settings")

import django  # noqa: E402

django.setup()

from autopack_site.readiness import ensure_migrated  # noqa: E402

ensure_migrated()

from django.conf import settings  # noqa: E402
from django.db.models import Sum  # noqa: E402

from runs.executor import execute_step  # noqa: E402
from runs.management.commands.demo import DEMO, git  # noqa: E402
from runs.management.commands.run import create, load_config  # noqa: E402
from runs.models import Attempt, Run  # noqa: E402
from telemetry.models import LlmCall  # noqa: E402


def one_run(index: int) -> list[tuple[float, float, float]]:
    folder = Path(tempfile.mkdtemp(prefix="autopack-bench-"))
    project = folder / "project"
    shutil.copytree(DEMO / "project", project)
    git("init", "-q", "-b", "main", cwd=project)
    git("add", "-A", cwd=project)
    git("-c", "user.name=b", "-c", "user.email=b@l", "commit", "-qm", "init", cwd=project)
    data = load_config(DEMO / "run.json", str(project))
    data["run_id"] = f"bench-{os.getpid()}-{index}-{int(time.time())}"
    data["project"] = f"bench-{folder.name}"
    run = create(data, DEMO, f"scripted:{DEMO / 'replies.json'}", enqueue=False)
    while execute_step(run.run_id, Run.objects.get(pk=run.pk).step):
        pass
    run = Run.objects.get(pk=run.pk)
    assert run.state == "DONE_SUCCESS", run.failure_reason
    figures = []
    for attempt in Attempt.objects.filter(run=run):
        wall = (attempt.finished_at - attempt.started_at).total_seconds()
        llm = (
            LlmCall.objects.filter(attempt=attempt).aggregate(ms=Sum("duration_ms"))["ms"] or 0
        ) / 1000
        gates = sum(g.get("duration", 0) for g in attempt.gate_results)
        figures.append((wall - llm - gates, gates, wall))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"database: {settings.DATABASES['default']['NAME']}, runs: {args.runs}")
    figures = [f for index in range(args.runs) for f in one_run(index)]
    overhead = [f[0] for f in figures]
    gates = [f[1] for f in figures]
    print(f"attempts measured:        {len(figures)}")
    print(f"engine overhead, median:  {statistics.median(overhead):.3f} s")
    print(f"engine overhead, max:     {max(overhead):.3f} s")
    print(f"gate commands, median:    {statistics.median(gates):.3f} s")
    print(f"overhead / gate time:     {statistics.median(overhead) / statistics.median(gates):.2f}")
    print(
        f"target: median overhead under 1 s -> "
        f"{'met' if statistics.median(overhead) < 1 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
