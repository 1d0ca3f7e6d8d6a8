"""Background work for runs, executed by django-q workers (`autopack worker`)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from django_q.tasks import async_task

from runs.executor import execute_step
from runs.models import Run
from runs.states import RunState

logger = logging.getLogger(__name__)


def enqueue_advance(run: Run) -> None:
    async_task(
        "runs.tasks.advance",
        run.run_id,
        run.step,
        sync=settings.AUTOPACK_SYNC_TASKS,
        task_name=f"advance {run.run_id} step {run.step}",
    )


def advance(run_id: str, step: int) -> bool:
    """Execute `step` of the run and queue the next one. A duplicate delivery, or a step
    another worker holds, does nothing and returns False."""
    if not execute_step(run_id, step):
        return False
    enqueue_advance(Run.objects.get(run_id=run_id))
    return True


def resume_stalled() -> int:
    """Re-queue runs whose worker died (lease expired or never taken). Scheduled every
    minute by `autopack worker`."""
    stale = Run.objects.filter(state=RunState.RUNNING).filter(
        Q(lease_expires_at__lt=timezone.now()) | Q(lease_expires_at__isnull=True)
    )
    count = 0
    for run in stale:
        logger.info("re-queueing %s at step %s", run.run_id, run.step)
        enqueue_advance(run)
        count += 1
    return count
