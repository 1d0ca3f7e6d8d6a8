"""Background work for runs, executed by django-q workers (`autopack worker`)."""

from __future__ import annotations

import logging

from django.conf import settings
from django_q.tasks import async_task

from runs.models import Run

logger = logging.getLogger(__name__)


def enqueue_advance(run: Run) -> None:
    async_task("runs.tasks.advance", run.run_id, sync=settings.AUTOPACK_SYNC_TASKS,
               task_name=f"advance {run.run_id}")


def advance(run_id: str) -> bool:
    """Execute the next step of a run; return whether there was a step to execute.

    Phase execution comes with the engine. Until it exists a queued run stays QUEUED:
    nothing is claimed and nothing is pretended.
    """
    run = Run.objects.filter(run_id=run_id).first()
    if run is None or run.is_final:
        return False
    logger.info("run %s stays %s: this build has no phase executor yet", run_id, run.state)
    return False
