"""Run a command in a worktree with a timeout, killing its whole process group on timeout,
when the process that started it dies, or when told to (`stop_all`)."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

OUTPUT_TAIL_CHARS = 20_000
_PR_SET_PDEATHSIG = 1
_running: set[subprocess.Popen] = set()
_running_lock = threading.Lock()


try:  # resolved once: a forked child must not load libraries
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None


def die_with_parent(signum: int = signal.SIGKILL) -> None:
    """In a child process: receive `signum` when the parent dies, so no command outlives
    the worker that started it. (Linux; elsewhere a no-op.)"""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signum)


def stop_all() -> int:
    """Kill every command this process is running (with its process group): the step
    they belong to must not go on. Returns how many were killed."""
    with _running_lock:
        processes = list(_running)
    for process in processes:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(processes)


@dataclass(frozen=True)
class CommandResult:
    command: str
    exit_code: int | None  # None when killed on timeout
    output: str  # the tail of stdout and stderr together
    duration: float
    timed_out: bool


def run_command(
    command: str | list[str],
    cwd: Path,
    timeout: float,
    env: dict[str, str] | None = None,
    keep: Path | None = None,
) -> CommandResult:
    """Run a command to its end or its timeout; the result holds the tail of its output,
    and `keep`, when given, gets all of it (for readers of per-test results)."""
    started = time.monotonic()
    shown = command if isinstance(command, str) else " ".join(command)
    with tempfile.TemporaryFile() as out:
        # A file, not a pipe: a chatty test suite cannot block on a full pipe buffer.
        process = subprocess.Popen(
            command,
            shell=isinstance(command, str),
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        with _running_lock:
            _running.add(process)
        timed_out = False
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            # Test runners spawn children; killing only the shell would leave them running.
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        finally:
            with _running_lock:
                _running.discard(process)
        if keep is not None:
            out.seek(0)
            with keep.open("wb") as whole:
                shutil.copyfileobj(out, whole)
        out.seek(0, os.SEEK_END)
        size = out.tell()
        out.seek(max(0, size - OUTPUT_TAIL_CHARS * 2))
        text = out.read().decode("utf-8", errors="replace")[-OUTPUT_TAIL_CHARS:]
    return CommandResult(
        command=shown,
        exit_code=None if timed_out else process.returncode,
        output=text,
        duration=time.monotonic() - started,
        timed_out=timed_out,
    )
