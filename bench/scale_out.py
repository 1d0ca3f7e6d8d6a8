"""Scale-out: runs per minute with 1, 2 and 4 workers, and a kill drill.

    .venv/bin/python bench/scale_out.py [--runs N] [--delay S] [--workers 1,2,4]
                                        [--drill-runs N] [--drill-kills K]

Each worker is an `autopack worker` process with its own AUTOPACK_HOME (standing for a
machine) and one queue process, against one embedded PostgreSQL and one bare git
repository as the remote. Runs have three phases; the fake model (127.0.0.1) answers
each call after `--delay` seconds, so the work is mostly waiting, as with real models.
Prints runs per minute for each worker count and its ratio to one worker (measured in
this process, one after another), then the drill: a random worker SIGKILLed every few
seconds and started again, with its counts of runs, kills, takeovers, duplicate
savepoints and lost runs (both must be 0).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORK = Path(tempfile.mkdtemp(prefix="autopack-scale-out-"))
os.environ.setdefault("AUTOPACK_HOME", str(WORK / "home"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autopack_site.settings")
os.environ.setdefault("AUTOPACK_LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402

from autopack_site import embedded_db  # noqa: E402
from autopack_site.readiness import ensure_migrated  # noqa: E402
from runs import services  # noqa: E402
from runs.models import Run, RunEvent  # noqa: E402
from runs.states import RunState  # noqa: E402
from tests.builds import write_models  # noqa: E402
from tests.drills import (  # noqa: E402
    PHASES,
    Fleet,
    bare_remote,
    branch_commits,
    responder,
    three_phase_run,
    wait_until_final,
)
from tests.fake_llm import FakeLLM  # noqa: E402

LEASE_SECONDS = 5
SWEEP_SECONDS = 1


def environment(fake: FakeLLM) -> dict[str, str]:
    db = connection.settings_dict
    return dict(
        os.environ,
        DATABASE_URL=f"postgresql://{db['USER']}@/{db['NAME']}?host={db['HOST']}&port={db['PORT']}",
        SECRET_KEY=settings.SECRET_KEY,
        AUTOPACK_MODELS=str(write_models(WORK / "models.yaml")),
        AUTOPACK_LEASE_SECONDS=str(LEASE_SECONDS),
        AUTOPACK_SWEEP_SECONDS=str(SWEEP_SECONDS),
        AUTOPACK_WORKERS="1",
        ANTHROPIC_API_KEY="sk-ant-bench",
        ANTHROPIC_BASE_URL=fake.url,
        OPENAI_API_KEY="sk-bench",
        OPENAI_BASE_URL=fake.url + "/v1",
    )


def batch(name: str, remote: Path, count: int) -> list[str]:
    run_ids = [f"{name}-{i:02d}" for i in range(count)]
    for run_id in run_ids:
        services.create_run(three_phase_run(remote, run_id))
    return run_ids


def throughput(name: str, workers: int, runs: int, remote: Path, env: dict) -> float:
    """Runs per minute with `workers` workers (project environments already built)."""
    fleet = Fleet(WORK / name, workers, env, environments=WORK / "environments")
    fleet.base.mkdir()
    try:
        fleet.start_all(wait=120)
        began = time.monotonic()
        run_ids = batch(name, remote, runs)
        if not wait_until_final(run_ids, 60 * 60):
            raise SystemExit(f"{workers} worker(s): runs did not finish\n{fleet.logs()}")
        elapsed = time.monotonic() - began
    finally:
        fleet.stop()
    done = Run.objects.filter(run_id__in=run_ids, state=RunState.DONE_SUCCESS).count()
    if done != runs:
        raise SystemExit(f"{workers} worker(s): only {done} of {runs} runs succeeded")
    return runs / elapsed * 60


def drill(runs: int, kills: int, remote: Path, env: dict, seed: int) -> dict:
    chance = random.Random(seed)
    fleet = Fleet(WORK / "drill", 3, env, environments=WORK / "environments")
    fleet.base.mkdir()
    try:
        fleet.start_all(wait=120)
        run_ids = batch("drill", remote, runs)
        while fleet.kills < kills and not wait_until_final(run_ids, 0):
            time.sleep(chance.uniform(3, 8))
            victim = chance.randrange(3)
            fleet.kill(victim)
            time.sleep(0.5)
            fleet.start(victim)
        finished = wait_until_final(run_ids, 60 * 60)
    finally:
        fleet.stop()
    chosen = Run.objects.filter(run_id__in=run_ids)
    duplicates = 0
    for run_id in run_ids:
        subjects = [line.split(" ", 1)[1] for line in branch_commits(remote, run_id)]
        duplicates += len(subjects) - len(set(subjects))
    return {
        "finished": finished,
        "runs": runs,
        "kills": fleet.kills,
        "takeovers": RunEvent.objects.filter(run__in=chosen, kind="taken_over").count(),
        "duplicate savepoints": duplicates,
        "lost runs": chosen.exclude(state=RunState.DONE_SUCCESS).count(),
        "phases": len(PHASES),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=8, help="runs per worker count")
    parser.add_argument("--delay", type=float, default=2.0, help="seconds per model answer")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--drill-runs", type=int, default=12)
    parser.add_argument("--drill-kills", type=int, default=6)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    ensure_migrated(sys.stdout)
    fake = FakeLLM().start()
    fake.responder = responder(args.delay)
    remote = bare_remote(WORK)
    env = environment(fake)
    print(f"work folder {WORK}; model delay {args.delay} s; lease {LEASE_SECONDS} s")
    throughput("warm-up", 1, 1, remote, env)  # builds the project environment (shared)

    rates = {}
    for workers in [int(n) for n in args.workers.split(",")]:
        rates[workers] = throughput(f"w{workers}", workers, args.runs, remote, env)
        base = rates[min(rates)]
        print(
            f"{workers} worker(s): {args.runs} runs of {len(PHASES)} phases, "
            f"{rates[workers]:.2f} runs/min, {rates[workers] / base:.2f}x one worker",
            flush=True,
        )
    result = drill(args.drill_runs, args.drill_kills, remote, env, args.seed)
    print("kill drill: " + ", ".join(f"{key} {value}" for key, value in result.items()))
    fake.stop()
    if not result["finished"] or result["duplicate savepoints"] or result["lost runs"]:
        raise SystemExit("the kill drill lost work")


if __name__ == "__main__":
    try:
        main()
    finally:
        if settings.EMBEDDED_PGDATA is not None and settings.EMBEDDED_DB_STARTED_HERE:
            embedded_db.stop(settings.EMBEDDED_PGDATA)
