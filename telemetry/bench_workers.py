"""What executes a benchmark's runs: the bench process itself, one step at a time
(`--workers 0`, and tests), or a pool of queue workers started for the benchmark."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Protocol

from django.conf import settings
from django.db import connection

from runs.executor import execute_step
from runs.models import Run
from runs.states import RunState

POLL_SECONDS = 0.5
STOP_SECONDS = 30


class Runner(Protocol):
    slots: int  # how many task runs may be under way at once
    enqueue: bool  # whether new runs go on the task queue

    def start(self) -> None: ...
    def submitted(self, run: Run) -> None: ...
    def wait(self, active: dict) -> None: ...
    def stop(self) -> None: ...


class InProcess:
    """Steps each run in this process until it ends, one run at a time."""

    slots = 1
    enqueue = False

    def __init__(self) -> None:
        self.runs: list[str] = []

    def start(self) -> None:
        return None

    def submitted(self, run: Run) -> None:
        self.runs.append(run.run_id)

    def wait(self, active: dict) -> None:
        for run_id in list(self.runs):
            run = Run.objects.get(run_id=run_id)
            if run.state in RunState.FINAL or not execute_step(run_id, run.step):
                self.runs.remove(run_id)

    def stop(self) -> None:
        return None


class WorkerPool:
    """An `autopack worker` with `count` queue processes, for the benchmark's duration;
    its log is AUTOPACK_HOME/bench/worker.log. Workers already running help too."""

    enqueue = True

    def __init__(self, count: int, env: dict[str, str] | None = None) -> None:
        self.slots = count
        self.env = env
        self.process: subprocess.Popen | None = None

    @property
    def log(self) -> Path:
        return Path(settings.AUTOPACK_HOME) / "bench" / "worker.log"

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        env = dict(self.env if self.env is not None else os.environ)
        env["AUTOPACK_WORKERS"] = str(self.slots)
        connection.close()  # the worker opens its own; nothing is shared across the fork
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "autopack_site.cli", "worker"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def submitted(self, run: Run) -> None:
        return None

    def wait(self, active: dict) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(
                f"the benchmark's worker stopped (exit {self.process.returncode}); see {self.log}"
            )
        time.sleep(POLL_SECONDS)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
