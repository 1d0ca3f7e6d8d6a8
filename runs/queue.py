"""Putting run steps on the task queue, and the sweep that puts back what a dead worker
dropped. A leaf module: it knows the models and django-q, never the services that call
it, so anything may import it."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.tasks import async_task

from runs.models import Run, RunEvent
from runs.states import RunState

logger = logging.getLogger(__name__)


def enqueue_advance(run: Run) -> None:
    """Queue the run's next step. Delivered at least once: a duplicate does nothing."""
    Run.objects.filter(pk=run.pk).update(enqueued_at=timezone.now())
    _send(run.run_id, run.step)


def _send(run_id: str, step: int) -> None:
    async_task(
        "runs.tasks.advance",
        run_id,
        step,
        sync=settings.AUTOPACK_SYNC_TASKS,
        task_name=f"advance {run_id} step {step}",
    )


def resume_stalled() -> int:
    """Queue again every run that needs a worker and has none:
    - its worker died mid-step: the lease expired after the step was queued (queued
      again at once, so a run continues within lease + sweep interval, and again every
      lease until a worker takes it);
    - its step was never queued, or was queued more than a lease ago and the queue has
      nothing waiting (the task was lost with a killed queue process). While the queue
      is busy, a run waiting in it is not queued twice.
    Every worker sweeps, outside the queue, so a stuck queue cannot stop it; several
    sweepers queue a run once."""
    now = timezone.now()
    quiet = now - timedelta(seconds=settings.AUTOPACK_LEASE_SECONDS)
    lost = (
        Q(enqueued_at__isnull=True)
        | Q(enqueued_at__lt=F("lease_expires_at"))
        | Q(lease_expires_at__isnull=False, enqueued_at__lt=quiet)
    )
    if get_broker().queue_size() == 0:
        lost |= Q(enqueued_at__lt=quiet)
    stale = Run.objects.filter(
        Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now),
        lost,
        state__in=RunState.ACTIVE,
    ).values_list("pk", "run_id", "step", "enqueued_at", "lease_expires_at")
    count = 0
    for pk, run_id, step, enqueued_at, expired in stale:
        # Only the sweeper that moves `enqueued_at` on sends the task.
        if Run.objects.filter(pk=pk, enqueued_at=enqueued_at).update(enqueued_at=now) != 1:
            continue
        logger.info("re-queueing %s at step %s", run_id, step)
        _send(run_id, step)
        # Written directly: this module stays a leaf (no services).
        RunEvent.objects.create(
            run_id=pk,
            kind="requeued",
            payload={
                "step": step,
                "reason": "its worker's lease expired" if expired else "its queued step was lost",
                "lease_expired_at": expired.isoformat() if expired else None,
                "seconds_after_expiry": round((now - expired).total_seconds(), 1)
                if expired
                else None,
            },
        )
        count += 1
    return count
