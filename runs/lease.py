"""A worker's lease on a run: the right to execute its current step and to record what
the step did.

A worker claims the run for one step, renews the lease while it works, and records state
changes only inside `fence()`, which locks the run's row and checks the lease is still
its own. A worker that lost its lease (it stalled, another worker took the run over)
records nothing: the run's state never moves backwards and no phase gets two savepoints.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from runs.engine import commands
from runs.models import Run
from runs.states import RunState

logger = logging.getLogger(__name__)


class LeaseLost(Exception):
    """Another worker holds the run now; this one must stop without recording."""


def duration() -> timedelta:
    return timedelta(seconds=settings.AUTOPACK_LEASE_SECONDS)


class Lease:
    def __init__(self, run: Run, owner: str) -> None:
        self.run_pk = run.pk
        self.run_id = run.run_id
        self.owner = owner
        self.expires_at: datetime = run.lease_expires_at
        self.lost = threading.Event()

    @classmethod
    def claim(cls, run_id: str, step: int) -> tuple[Lease, Run, datetime | None] | None:
        """Take the run's lease for `step`. None if another worker holds it or the step
        is done (a duplicate delivery). Also returns when the lease this one replaces
        expired, if a worker died holding it (None when the run was free)."""
        owner = uuid.uuid4().hex
        now = timezone.now()
        with transaction.atomic():
            run = (
                Run.objects.select_for_update()
                .filter(
                    Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now),
                    run_id=run_id,
                    step=step,
                    state__in=RunState.ACTIVE,
                )
                .first()
            )
            if run is None:
                return None
            stalled = run.lease_expires_at if run.lease_owner else None
            Run.objects.filter(pk=run.pk).update(
                lease_owner=owner, lease_expires_at=now + duration()
            )
        run.refresh_from_db()
        return cls(run, owner), run, stalled

    @contextmanager
    def fence(self) -> Iterator[None]:
        """A transaction in which this worker still holds the lease: the run's row is
        locked (nobody can claim it meanwhile) and checked. Raises LeaseLost otherwise."""
        with transaction.atomic():
            held = (
                Run.objects.select_for_update()
                .filter(pk=self.run_pk, lease_owner=self.owner)
                .exists()
            )
            if not held or self.lost.is_set():
                self._lose("another worker holds the run" if not held else "renewal failed")
                raise LeaseLost(f"run {self.run_id}: this worker no longer holds its lease")
            yield

    def release(self, next_step: int) -> bool:
        """The step is done: move the run on to `next_step` and free it."""
        return bool(
            Run.objects.filter(pk=self.run_pk, lease_owner=self.owner).update(
                step=next_step, lease_owner="", lease_expires_at=None
            )
        )

    def renew(self) -> bool:
        """Extend the lease; False when it is no longer this worker's."""
        expires = timezone.now() + duration()
        renewed = Run.objects.filter(pk=self.run_pk, lease_owner=self.owner).update(
            lease_expires_at=expires
        )
        if renewed:
            self.expires_at = expires
        return bool(renewed)

    @contextmanager
    def kept(self) -> Iterator[None]:
        """Renew the lease in the background while the body runs. When renewal fails
        (the lease went to another worker, or the database stayed unreachable until the
        lease ran out), the step's commands are killed and the lease counts as lost."""
        stop = threading.Event()

        def beat() -> None:
            try:
                while not stop.wait(settings.AUTOPACK_LEASE_SECONDS / 3):
                    try:
                        if not self.renew():
                            self._lose("another worker holds the run")
                            return
                    except DatabaseError as exc:
                        logger.warning("lease renewal for %s failed: %s", self.run_id, exc)
                        connection.close()  # a fresh connection on the next try
                        if timezone.now() >= self.expires_at:
                            self._lose(f"the database was unreachable until it expired ({exc})")
                            return
            finally:
                connection.close()

        thread = threading.Thread(target=beat, name=f"lease-{self.run_id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _lose(self, why: str) -> None:
        if self.lost.is_set():
            return
        self.lost.set()
        killed = commands.stop_all()
        logger.warning(
            "lost the lease on run %s (%s); stopping the step (%d command(s) killed)",
            self.run_id,
            why,
            killed,
        )
