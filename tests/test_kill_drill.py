"""Kill drill: three workers, each its own machine (AUTOPACK_HOME), one database, one
bare remote; many three-phase runs against the fake model; a random worker killed with
SIGKILL every few seconds and started again. Every run must finish, with exactly one
savepoint per phase on its branch, every recorded savepoint on the remote, no residue in
any worktree, no orphaned process, and takeovers queued within lease plus sweep."""

from __future__ import annotations

import os
import random
import time

import pytest

from runs import services
from runs.models import Run, RunEvent
from runs.states import PhaseState, RunState
from tests.builds import git
from tests.drills import (
    PHASES,
    Fleet,
    bare_remote,
    branch_commits,
    responder,
    three_phase_run,
    wait_until_final,
)
from tests.support import database_url

pytestmark = pytest.mark.django_db(transaction=True)

RUNS = 30
WORKERS = 3
LEASE_SECONDS = 4
SWEEP_SECONDS = 1
MAX_KILLS = 8
CHAOS_SECONDS = 90


def test_runs_survive_workers_killed_at_random(engine, fake_llm, tmp_path, settings):
    settings.AUTOPACK_SYNC_TASKS = False
    fake_llm.responder = responder(delay=0.2)
    remote = bare_remote(tmp_path)
    env = dict(
        os.environ,
        DATABASE_URL=database_url(),
        SECRET_KEY=settings.SECRET_KEY,  # tasks are signed: every machine shares the key
        AUTOPACK_MODELS=str(engine.AUTOPACK_MODELS),
        AUTOPACK_LEASE_SECONDS=str(LEASE_SECONDS),
        AUTOPACK_SWEEP_SECONDS=str(SWEEP_SECONDS),
        AUTOPACK_WORKERS="1",
        AUTOPACK_GATE_TIMEOUT="120",
    )
    fleet = Fleet(tmp_path / "fleet", WORKERS, env)
    fleet.base.mkdir()
    run_ids = [f"drill-{i:02d}" for i in range(RUNS)]
    chance = random.Random(int(os.environ.get("AUTOPACK_DRILL_SEED", "7")))
    try:
        fleet.start_all()
        for run_id in run_ids:
            services.create_run(three_phase_run(remote, run_id))
        began = time.monotonic()
        while fleet.kills < MAX_KILLS and time.monotonic() - began < CHAOS_SECONDS:
            time.sleep(chance.uniform(2, 6))
            if wait_until_final(run_ids, 0):
                break
            victim = chance.randrange(WORKERS)
            fleet.kill(victim)
            orphans = fleet.survivors()
            deadline = time.monotonic() + 5  # SIGKILL takes effect when IO returns
            while orphans and time.monotonic() < deadline:
                time.sleep(0.1)
                orphans = fleet.survivors()
            assert orphans == [], "processes outlived their killed worker"
            fleet.start(victim)
        finished = wait_until_final(run_ids, 400)
        fleet.stop()
    finally:
        fleet.stop()

    assert finished, fleet.logs()
    assert fleet.kills >= 3
    runs = list(Run.objects.filter(run_id__in=run_ids))
    assert {run.state for run in runs} == {RunState.DONE_SUCCESS}, [
        (run.run_id, run.failure_reason) for run in runs if run.state != RunState.DONE_SUCCESS
    ]
    for run in runs:
        commits = branch_commits(remote, run.run_id)
        subjects = sorted(line.split(" ", 1)[1] for line in commits)
        # One savepoint commit per phase on the branch, none twice.
        assert subjects == sorted(f"autopack: {p}: Write note {p}" for p in PHASES), commits
        assert commits[0].split()[0] == run.last_savepoint
        for phase in run.phases.all():
            assert phase.state == PhaseState.COMPLETE
            git(remote, "cat-file", "-e", f"{phase.savepoint}^{{commit}}")
    for worktree in fleet.base.glob("machine-*/workspaces/*/"):
        assert git(worktree, "status", "--porcelain") == "", worktree
    # Each stall (a worker's lease that expired) was queued again within the sweep
    # interval of its expiry: the first re-queue after it counts.
    takeovers = RunEvent.objects.filter(run__in=runs, kind="taken_over")
    requeues: dict[tuple, float] = {}
    for event in RunEvent.objects.filter(run__in=runs, kind="requeued"):
        if event.payload["lease_expired_at"]:
            stall = (event.run_id, event.payload["lease_expired_at"])
            requeues[stall] = min(requeues.get(stall, 1e9), event.payload["seconds_after_expiry"])
    assert takeovers.exists() and requeues
    late = {stall: after for stall, after in requeues.items() if after > SWEEP_SECONDS + 2}
    assert not late, late
    print(
        f"drill: {RUNS} runs, {fleet.kills} kills, {takeovers.count()} takeovers, "
        f"slowest re-queue {max(requeues.values()):.1f} s after a lease expired, "
        f"{sum(run.attempts.filter(state='ABANDONED').count() for run in runs)} abandoned attempts"
    )
