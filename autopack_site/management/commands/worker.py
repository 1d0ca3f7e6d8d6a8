"""`autopack worker`: executes runs. Start one on every machine that should do work.

The command supervises a child process that runs the django-q cluster (the queue's
processes) and, beside it and independent of it, runs the sweep: it re-queues runs whose
worker died (lease expired) or whose queued step was lost, expires governance requests
nobody decided, and resets worktrees no step is using.

The cluster runs in a fresh process (started with exec, not forked from this one, whose
sweep thread could hold a lock at the moment of a fork). A queue process that dies
unexpectedly can leave the cluster's internal queues locked (a dead reader holds their
lock), so the whole cluster is restarted, with backoff, instead of replacing the one
process. Every queue process dies with its parent, and every command a step runs dies
with its queue process: nothing outlives this command.
"""

from __future__ import annotations

import logging
import multiprocessing.util
import os
import signal
import subprocess
import sys
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import DatabaseError, connection
from django_q.cluster import Cluster, Sentinel
from django_q.models import Schedule

from autopack_site.backoff import Backoff
from autopack_site.readiness import ensure_migrated
from governance.maintenance import start_waiting
from governance.services import expire_requests
from memory.tasks import ensure_schedule
from runs.engine.commands import die_with_parent
from runs.executor import tidy_workspaces
from runs.queue import resume_stalled

logger = logging.getLogger("autopack.worker")

# Schedules earlier versions kept in the queue; the sweep does their work now.
OLD_SCHEDULES = ("autopack: resume stalled runs", "autopack: expire governance requests")
EXPIRE_EVERY_SECONDS = 60  # and tidy worktrees
STOP_GRACE_SECONDS = 30
CLUSTER_DIED = 3


class _AfterFork:
    """Registered with multiprocessing: every process the cluster forks gets SIGKILL when
    its parent dies, so no queue process is orphaned."""

    def __call__(self, _obj) -> None:
        die_with_parent(signal.SIGKILL)


_AFTER_FORK = _AfterFork()
_REINCARNATE = Sentinel.reincarnate


def _reincarnate(sentinel: Sentinel, process) -> None:
    timer = getattr(process, "timer", None)
    if timer is not None and timer.value in (0, -2):
        # Timed out (django-q kills it while it runs a task) or recycled: the queues are
        # intact and django-q's own replacement is right.
        _REINCARNATE(sentinel, process)
        return
    logger.critical(
        "queue process %s died unexpectedly; restarting the whole cluster", process.name
    )
    os._exit(CLUSTER_DIED)  # the children die with this sentinel


class Command(BaseCommand):
    help = "Run a background worker (a django-q cluster and the stalled-run sweep)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--queue-only",
            action="store_true",
            help="run only the queue's cluster (what `autopack worker` starts and watches)",
        )

    def handle(self, *args, queue_only: bool = False, **options) -> None:
        if queue_only:
            sys.exit(self._cluster())
        ensure_migrated(self.stdout)
        ensure_schedule()
        Schedule.objects.filter(name__in=OLD_SCHEDULES).delete()
        tidied = tidy_workspaces()
        if tidied:
            self.stdout.write(f"reset {tidied} worktree(s) to their runs' last savepoints")
        connection.close()

        stopping = threading.Event()
        child: list[subprocess.Popen] = []

        def stop(signum, frame) -> None:
            stopping.set()
            if child and child[0].poll() is None:
                child[0].send_signal(signal.SIGTERM)

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, stop)
        sweeper = threading.Thread(target=self._sweep, args=(stopping,), daemon=True)
        sweeper.start()
        backoff = Backoff()
        while not stopping.is_set():
            started = time.monotonic()
            child[:] = [
                subprocess.Popen(
                    [sys.executable, "-m", "autopack_site.cli", "worker", "--queue-only"],
                    preexec_fn=die_with_parent,
                )
            ]
            while child[0].poll() is None:
                stopping.wait(0.5)
                if stopping.is_set():
                    self._stop(child[0])
            if stopping.is_set():
                break
            wait = backoff.after(time.monotonic() - started)
            self.stderr.write(
                f"the queue's processes stopped (exit {child[0].returncode}); "
                f"restarting them in {wait:.0f} s"
            )
            stopping.wait(wait)
        sweeper.join(5)

    @staticmethod
    def _stop(process: subprocess.Popen) -> None:
        try:
            process.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    @staticmethod
    def _cluster() -> int:
        """The queue's cluster, in this (fresh) process: 0 when stopped by a signal,
        CLUSTER_DIED when its processes died."""
        multiprocessing.util.register_after_fork(_AFTER_FORK, _AFTER_FORK)
        Sentinel.reincarnate = _reincarnate
        connection.close()  # the cluster's processes open their own
        cluster = Cluster()
        stopped = threading.Event()

        def stop(signum, frame) -> None:
            stopped.set()
            cluster.sig_handler(signum, frame)

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, stop)
        try:
            cluster.start()
        except RuntimeError as exc:
            logger.error("%s", exc)
            return CLUSTER_DIED
        while cluster.sentinel.is_alive():
            cluster.sentinel.join(0.5)
        return 0 if stopped.is_set() else CLUSTER_DIED

    @staticmethod
    def _sweep(stopping: threading.Event) -> None:
        last_expiry = 0.0
        while True:
            try:
                requeued = resume_stalled()
                if requeued:
                    logger.info("sweep: re-queued %d stalled run(s)", requeued)
                if time.monotonic() - last_expiry >= EXPIRE_EVERY_SECONDS:
                    last_expiry = time.monotonic()
                    expire_requests()
                    tidy_workspaces()
                    start_waiting()
            except DatabaseError as exc:
                logger.warning("sweep: database unavailable (%s); trying again", exc)
                connection.close()
            except Exception:  # the sweep must outlive any one bad row
                logger.exception("sweep failed; trying again")
            if stopping.wait(settings.AUTOPACK_SWEEP_SECONDS):
                break
        connection.close()
