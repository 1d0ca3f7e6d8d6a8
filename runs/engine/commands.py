"""Run a command in a worktree with a timeout, killing its whole process group on timeout."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

OUTPUT_TAIL_CHARS = 20_000


@dataclass(frozen=True)
class CommandResult:
    command: str
    exit_code: int | None  # None when killed on timeout
    output: str  # the tail of stdout and stderr together
    duration: float
    timed_out: bool


def run_command(
    command: str | list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None
) -> CommandResult:
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
        )
        timed_out = False
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            # Test runners spawn children; killing only the shell would leave them running.
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
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
