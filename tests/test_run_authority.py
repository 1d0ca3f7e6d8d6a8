"""The database is the one authority for a run: every step starts from the recorded
savepoint, a savepoint is pushed before it is recorded, and only the lease holder
records. A run moves between machines through the remote alone."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from django_q.models import OrmQ

from runs import queue
from runs.executor import execute_step
from runs.models import Run
from runs.states import AttemptState, PhaseState, RunState
from tests.builds import APPROVE, block, config, drive, git, phase, start
from tests.drills import bare_remote
from tests.fake_llm import Reply
from tests.support import step_in_subprocess

pytestmark = pytest.mark.django_db(transaction=True)


def note(name: str) -> str:
    return block(f"inventory/{name}.py", "", f'NOTE = "{name}"\n')


@pytest.fixture
def remote(tmp_path) -> Path:
    """The project's repository, bare, as a team's remote is."""
    return bare_remote(tmp_path)


def on_machine(settings, home: Path) -> None:
    """Stand for another machine: its own AUTOPACK_HOME and environment cache."""
    settings.AUTOPACK_HOME = home
    settings.AUTOPACK_ENVIRONMENTS = home / "environments"


def branch_log(remote: Path, run_id: str) -> list[str]:
    return git(remote, "log", "--format=%s", f"main..autopack/{run_id}").splitlines()


def three_phases(remote: Path, run_id: str) -> dict:
    return config(
        remote,
        [phase("one", 0, ["inventory/"]), phase("two", 1, ["inventory/"])],
        [phase("three", 0, ["inventory/"])],
        run_id=run_id,
    )


def test_a_run_moves_to_a_machine_that_never_saw_it_and_ends_as_on_one_machine(
    engine, fake_llm, remote, tmp_path
):
    fake_llm.script("builder", *(note(n) for n in ("one", "two", "three") * 2))
    fake_llm.script("auditor", *[APPROVE] * 6)
    on_machine(engine, tmp_path / "machine-a")
    moved = start(three_phases(remote, "moved"))

    assert execute_step("moved", 0) is True  # phase one, on machine A
    assert Run.objects.get(pk=moved.pk).phases.get(phase_id="one").state == PhaseState.COMPLETE
    shutil.rmtree(tmp_path / "machine-a")  # nothing shared but the remote and the database
    on_machine(engine, tmp_path / "machine-b")
    moved = drive(moved)
    on_machine(engine, tmp_path / "machine-c")
    alone = drive(start(three_phases(remote, "alone")))

    assert moved.state == alone.state == RunState.DONE_SUCCESS, moved.failure_reason
    assert branch_log(remote, "moved") == branch_log(remote, "alone")
    assert len(branch_log(remote, "moved")) == 3
    tree = git(remote, "rev-parse", "autopack/moved^{tree}")
    assert tree == git(remote, "rev-parse", "autopack/alone^{tree}")
    assert git(remote, "rev-parse", "autopack/moved") == moved.last_savepoint
    savepoints = [p.savepoint for p in moved.phases.order_by("tier__index", "index")]
    assert savepoints[-1] == moved.last_savepoint
    for commit in savepoints:
        git(remote, "cat-file", "-e", f"{commit}^{{commit}}")  # each one is on the remote
    assert str(tmp_path / "machine-b") in moved.worktree_path
    hosts = [e.payload["path"] for e in moved.events.filter(kind="workspace")]
    assert [Path(p).parent.parent.name for p in hosts] == ["machine-a", "machine-b"]


def test_every_step_starts_from_the_recorded_savepoint_not_from_head(
    engine, fake_llm, remote, tmp_path
):
    fake_llm.script("builder", note("one"), note("two"))
    fake_llm.script("auditor", APPROVE, APPROVE)
    run = start(config(remote, [phase("one", 0, ["inventory/"]), phase("two", 1, ["inventory/"])]))
    assert execute_step("build", 0) is True
    run = Run.objects.get(pk=run.pk)
    worktree = Path(run.worktree_path)
    # What a worker that died after committing but before recording leaves behind.
    (worktree / "inventory" / "stray.py").write_text("STRAY = 1\n")
    git(worktree, "add", "-A")
    git(worktree, "-c", "user.name=x", "-c", "user.email=x@l", "commit", "-qm", "unrecorded")
    (worktree / "inventory" / "loose.py").write_text("LOOSE = 1\n")

    run = drive(run)

    assert run.state == RunState.DONE_SUCCESS, run.failure_reason
    assert branch_log(remote, "build") == ["autopack: two: Task two", "autopack: one: Task one"]
    files = git(remote, "ls-tree", "-r", "--name-only", "autopack/build").splitlines()
    assert "inventory/stray.py" not in files and "inventory/loose.py" not in files
    assert git(worktree, "status", "--porcelain") == ""


def test_a_worker_that_lost_its_lease_records_nothing_and_pushes_nothing(engine, fake_llm, remote):
    def taken_over() -> None:  # another worker claims the run while the Auditor thinks
        Run.objects.filter(run_id="build").update(
            lease_owner="another-worker", lease_expires_at=timezone.now() + timedelta(minutes=5)
        )

    fake_llm.script("builder", note("one"), note("one"))
    fake_llm.script("auditor", Reply(APPROVE, before=taken_over), APPROVE)
    run = start(config(remote, [phase("one", 0, ["inventory/"])]))
    base = git(remote, "rev-parse", "main")

    assert execute_step("build", 0) is False

    run = Run.objects.get(pk=run.pk)
    assert run.lease_owner == "another-worker" and run.step == 0
    assert run.last_savepoint == ""
    attempt = run.attempts.get()
    assert attempt.state == AttemptState.RUNNING and attempt.savepoint == ""
    assert run.phases.get().state == PhaseState.EXECUTING
    assert git(remote, "rev-parse", "autopack/build") == base  # no commit reached the remote
    assert not run.events.filter(kind="savepoint").exists()

    # The other worker "dies"; its lease runs out and the run is taken over.
    Run.objects.filter(pk=run.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    run = drive(run)
    assert run.state == RunState.DONE_SUCCESS, run.failure_reason
    first, second = run.attempts.order_by("number")
    assert (first.state, first.outcome) == (AttemptState.ABANDONED, "worker_lost")
    assert second.state == AttemptState.PASSED
    assert branch_log(remote, "build") == ["autopack: one: Task one"]  # one savepoint
    assert run.events.filter(kind="taken_over").count() == 1


# The gate blocks once the Builder's file exists (not at the baseline), and says so.
BLOCKING_GATE = (
    "if [ -f inventory/one.py ]; then touch gate-started; sleep 60; fi; python -m pytest -q"
)


def test_a_worker_whose_lease_is_taken_kills_its_gate_and_stops(engine, fake_llm, remote):
    engine.AUTOPACK_LEASE_SECONDS = 3  # renewed every second
    fake_llm.script("builder", note("one"))
    run = start(config(remote, [phase("one", 0, ["inventory/"], test_command=BLOCKING_GATE)]))
    marker = Path(engine.AUTOPACK_HOME) / "workspaces" / "build" / "gate-started"
    taken = []

    def take_over() -> None:
        deadline = time.monotonic() + 120
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        Run.objects.filter(pk=run.pk).update(
            lease_owner="another-worker", lease_expires_at=timezone.now() + timedelta(minutes=5)
        )
        taken.append(time.monotonic())

    thief = threading.Thread(target=take_over)
    thief.start()
    assert execute_step("build", 0) is False
    stopped = time.monotonic()
    thief.join()

    assert taken and stopped - taken[0] < 15  # not the gate's 60 s
    run = Run.objects.get(pk=run.pk)
    assert run.lease_owner == "another-worker"
    assert run.attempts.get().state == AttemptState.RUNNING  # nothing recorded
    assert not run.events.filter(kind__in=["savepoint", "run_finished"]).exists()


def test_a_phase_whose_gate_kills_its_worker_fails_after_its_attempts(
    engine, fake_llm, remote, tmp_path
):
    """Each attempt's gate takes its worker down (here: SIGKILL once the gate runs);
    abandoned attempts count, so the phase ends instead of looping."""
    engine.AUTOPACK_LEASE_SECONDS = 3
    fake_llm.responder = lambda role, call: Reply(APPROVE if role == "auditor" else note("one"))
    gate = BLOCKING_GATE
    run = start(
        config(remote, [phase("one", 0, ["inventory/"], test_command=gate, max_attempts=2)])
    )
    marker = Path(engine.AUTOPACK_HOME) / "workspaces" / "build" / "gate-started"
    for _ in range(2):
        worker = step_in_subprocess(engine, "build", 0)
        deadline = time.monotonic() + 120
        while not marker.exists() and time.monotonic() < deadline:
            assert worker.poll() is None, "the worker ended before its gate ran"
            time.sleep(0.1)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        marker.unlink()
        held = Run.objects.get(pk=run.pk).lease_expires_at
        time.sleep(max(0.0, (held - timezone.now()).total_seconds()) + 0.2)

    run = drive(run)

    assert (run.state, run.failure_code) == (RunState.DONE_FAILED, "phase_failed")
    assert "worker lost" in run.failure_reason
    attempts = list(run.attempts.order_by("number"))
    assert [(a.state, a.outcome) for a in attempts] == [(AttemptState.ABANDONED, "worker_lost")] * 2
    assert run.phases.get().state == PhaseState.FAILED


def test_the_sweep_requeues_queued_and_running_runs_once_and_leaves_live_ones(
    engine, remote, settings
):
    engine.AUTOPACK_LEASE_SECONDS = 60
    sent = []
    settings.AUTOPACK_SYNC_TASKS = False
    queue._send, original = (lambda run_id, step: sent.append((run_id, step))), queue._send
    try:
        now = timezone.now()
        lost = start(config(remote, [phase("one", 0, ["inventory/"])], run_id="lost"))
        Run.objects.filter(pk=lost.pk).update(enqueued_at=now - timedelta(minutes=5))
        fresh = start(config(remote, [phase("one", 0, ["inventory/"])], run_id="fresh"))
        Run.objects.filter(pk=fresh.pk).update(enqueued_at=now)
        dead = start(config(remote, [phase("one", 0, ["inventory/"])], run_id="dead"))
        Run.objects.filter(pk=dead.pk).update(
            state=RunState.RUNNING,
            step=4,
            lease_owner="gone",
            lease_expires_at=now - timedelta(seconds=1),
            enqueued_at=now - timedelta(seconds=30),
        )
        live = start(config(remote, [phase("one", 0, ["inventory/"])], run_id="live"))
        Run.objects.filter(pk=live.pk).update(
            state=RunState.RUNNING, lease_owner="w", lease_expires_at=now + timedelta(minutes=1)
        )
        waiting = start(config(remote, [phase("one", 0, ["inventory/"])], run_id="waiting"))
        Run.objects.filter(pk=waiting.pk).update(state=RunState.AWAITING_APPROVAL)

        # While the queue has work waiting, a run that waits for a worker may be in it.
        busy = OrmQ.objects.create(key="autopack", payload="waiting", lock=now)
        assert queue.resume_stalled() == 1
        assert sent == [("dead", 4)]
        busy.delete()
        assert queue.resume_stalled() == 1
        assert sent == [("dead", 4), ("lost", 0)]
        assert queue.resume_stalled() == 0  # queued again just now: not twice
    finally:
        queue._send = original


def test_sweepers_racing_queue_a_run_once(engine, remote, settings):
    settings.AUTOPACK_SYNC_TASKS = False
    sent = []
    queue._send, original = (lambda run_id, step: sent.append(run_id)), queue._send
    try:
        start(config(remote, [phase("one", 0, ["inventory/"])], run_id="lost"))
        threads = [threading.Thread(target=queue.resume_stalled) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sent == ["lost"]
    finally:
        queue._send = original
