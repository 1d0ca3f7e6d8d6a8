"""Queue tasks of the memory, and the schedule that runs them."""

from __future__ import annotations

import logging

from django.db import connection, transaction
from django_q.models import Schedule

from memory import services

logger = logging.getLogger(__name__)

PRUNE_SCHEDULE = "autopack: prune memory"
# Any fixed number: the advisory lock under which a starting worker writes the schedule
# (Schedule.name is not unique, so two workers starting together could add it twice).
SCHEDULE_LOCK = 4_711_229


def prune_memory() -> int:
    deleted = services.prune()
    logger.info("memory: pruned %d entries not stored again within the TTL", deleted)
    return deleted


def ensure_schedule() -> None:
    """The daily prune, created or brought up to date; called when a worker starts."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SCHEDULE_LOCK])
        Schedule.objects.update_or_create(
            name=PRUNE_SCHEDULE,
            defaults={"func": "memory.tasks.prune_memory", "schedule_type": Schedule.DAILY},
        )
