"""Workers: at-least-once delivery, leases, and taking over a run whose worker died."""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from runs import queue, tasks
from runs.models import Run
from runs.states import AttemptState, RunState
from tests.builds import APPROVE, config, git, phase, start
from tests.fake_llm import Reply
from tests.support import step_in_subprocess
from tests.test_engine_runs import QUANTITY, REPORT

pytestmark = pytest.mark.django_db(transaction=True)


def test_duplicate_delivery_of_a_step_does_nothing(engine, fake_llm, repo):
    fake_llm.script("builder", QUANTITY, REPORT)
    fake_llm.script("auditor", APPROVE, APPROVE)
    run = start(
        config(
            repo, [phase("count", 0, ["inventory/"])], [phase("report", 0, ["inventory/report.py"])]
        )
    )

    assert tasks.advance(run.run_id, 0) is True
    before = (Run.objects.get(pk=run.pk).step, run.events.count(), len(fake_llm.seen))
    assert tasks.advance(run.run_id, 0) is False

    assert (Run.objects.get(pk=run.pk).step, run.events.count(), len(fake_llm.seen)) == before


def test_a_step_held_by_a_live_worker_is_not_taken(engine, fake_llm, repo):
    run = start(config(repo, [phase("count", 0, ["inventory/"])]))
    Run.objects.filter(pk=run.pk).update(
        lease_owner="elsewhere", lease_expires_at=timezone.now() + timedelta(minutes=1)
    )

    assert tasks.advance(run.run_id, 0) is False
    assert Run.objects.get(pk=run.pk).state == RunState.QUEUED
    assert queue.resume_stalled() == 0


def test_a_killed_workers_run_is_taken_over_and_finishes(engine, fake_llm, repo, settings):
    fake_llm.script("builder", Reply(QUANTITY, delay=60), QUANTITY)
    fake_llm.script("auditor", APPROVE)
    run = start(config(repo, [phase("count", 0, ["inventory/"])]))
    worker = step_in_subprocess(engine, "build", 0)
    deadline = time.monotonic() + 60
    while not fake_llm.calls("builder") and time.monotonic() < deadline:
        assert worker.poll() is None, "the worker ended before calling the model"
        time.sleep(0.1)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    stalled = Run.objects.get(pk=run.pk)
    assert stalled.state == RunState.RUNNING and stalled.lease_owner
    time.sleep(max(0.0, (stalled.lease_expires_at - timezone.now()).total_seconds()) + 0.2)

    settings.AUTOPACK_SYNC_TASKS = True
    assert queue.resume_stalled() == 1

    run = Run.objects.get(pk=run.pk)
    assert run.state == RunState.DONE_SUCCESS, run.failure_reason
    first, second = run.phases.get().attempts.order_by("number")
    assert (first.state, first.outcome) == (AttemptState.ABANDONED, "worker_lost")
    assert second.state == AttemptState.PASSED
    assert git(Path(run.worktree_path), "status", "--porcelain") == ""
    assert "attempt_abandoned" in run.events.values_list("kind", flat=True)
