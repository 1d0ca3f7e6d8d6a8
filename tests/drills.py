"""Several `autopack worker` processes, each with its own AUTOPACK_HOME (standing for a
machine), against one database and one bare git repository as the remote. Used by the
kill drill (tests/test_kill_drill.py) and the scale-out bench (bench/scale_out.py).
Needs Django set up."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.builds import APPROVE, block, config, git, make_repo, phase
from tests.fake_llm import Reply, Seen

ROOT = Path(__file__).resolve().parent.parent
PHASES = ("one", "two", "three")
_TASK = re.compile(r"# Your task: Write note (\w+)")


def bare_remote(folder: Path) -> Path:
    """The demo project as a bare repository: the team's remote."""
    source = make_repo(folder / "source")
    bare = folder / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(source), str(bare)], check=True)
    return bare


def three_phase_run(remote: Path, run_id: str) -> dict:
    """A run of three phases in two tiers, each writing one file."""

    def note(phase_id: str, index: int) -> dict:
        return phase(phase_id, index, ["inventory/"], task_name=f"Write note {phase_id}")

    return config(remote, [note("one", 0), note("two", 1)], [note("three", 0)], run_id=run_id)


def responder(delay: float):
    """The fake model for such runs: the Builder writes the phase's file, the Auditor
    approves; each answer after `delay` seconds."""

    def answer(role: str, call: Seen) -> Reply:
        if role == "auditor":
            return Reply(APPROVE, delay=delay)
        name = _TASK.search(call.prompt).group(1)
        return Reply(block(f"inventory/{name}.py", "", f'NOTE = "{name}"\n'), delay=delay)

    return answer


class Fleet:
    """`count` workers, machine-0 ... machine-N, each its own AUTOPACK_HOME."""

    def __init__(
        self, base: Path, count: int, env: dict[str, str], environments: Path | None = None
    ) -> None:
        self.base = base
        self.env = env
        self.environments = environments  # shared project environments, else per machine
        self.processes: list[subprocess.Popen | None] = [None] * count
        self.kills = 0

    def home(self, index: int) -> Path:
        return self.base / f"machine-{index}"

    def start(self, index: int) -> None:
        home = self.home(index)
        home.mkdir(parents=True, exist_ok=True)
        env = {**self.env, "AUTOPACK_HOME": str(home)}
        env["AUTOPACK_ENVIRONMENTS"] = str(self.environments or home / "environments")
        with (self.base / f"worker-{index}.log").open("a") as log:
            self.processes[index] = subprocess.Popen(
                [sys.executable, "-m", "autopack_site.cli", "worker"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start_all(self, wait: float = 0) -> None:
        """Start every worker; with `wait`, until each says its cluster runs."""
        for index in range(len(self.processes)):
            self.start(index)
        deadline = time.monotonic() + wait
        logs = [self.base / f"worker-{i}.log" for i in range(len(self.processes))]
        while time.monotonic() < deadline:
            if all("running." in log.read_text() for log in logs):
                return
            time.sleep(0.2)

    def kill(self, index: int) -> None:
        """SIGKILL the worker: the machine dies. Its queue processes and commands die
        with it (they must: nothing outlives its parent)."""
        process = self.processes[index]
        if process is None:
            return
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        self.processes[index] = None
        self.kills += 1

    def stop(self) -> None:
        for index, process in enumerate(self.processes):
            if process is not None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                self.processes[index] = None

    def survivors(self) -> list[str]:
        """Processes running under the fleet's homes (by their AUTOPACK_HOME) that descend
        from no live worker: orphans. Their pids and command lines."""
        live = {p.pid for p in self.processes if p is not None}
        parents, mine = {}, {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                environ = (entry / "environ").read_bytes()
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            pid = int(entry.name)
            parents[pid] = int(stat[1])
            if stat[0] != "Z" and f"AUTOPACK_HOME={self.base}".encode() in environ:
                mine[pid] = command
        orphans = []
        for pid, command in mine.items():
            ancestor = pid
            while ancestor > 1 and ancestor not in live:
                ancestor = parents.get(ancestor, 1)
            if ancestor not in live:
                orphans.append(f"{pid} {command}")
        return orphans

    def logs(self) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text()[-3000:]}"
            for log in sorted(self.base.glob("worker-*.log"))
        )


def wait_until_final(run_ids: list[str], timeout: float) -> bool:
    from runs.models import Run
    from runs.states import RunState

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if Run.objects.filter(run_id__in=run_ids, state__in=RunState.FINAL).count() == len(run_ids):
            return True
        time.sleep(0.5)
    return False


def branch_commits(remote: Path, run_id: str) -> list[str]:
    return git(remote, "log", "--format=%H %s", f"main..autopack/{run_id}").splitlines()
