"""Background work for runs, executed by django-q workers (`autopack worker`)."""

from __future__ import annotations

from runs.executor import execute_step
from runs.models import Run
from runs.queue import enqueue_advance


def advance(run_id: str, step: int) -> bool:
    """Execute `step` of the run and queue the next one. A duplicate delivery, or a step
    another worker holds, does nothing and returns False."""
    if not execute_step(run_id, step):
        return False
    enqueue_advance(Run.objects.get(run_id=run_id))
    return True
