"""`make up` really comes up, serves the API, stops on SIGTERM and keeps its data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from autopack_site import embedded_db
from tests.support import ROOT, autopack, autopack_env, free_port

STOP_WITHIN_SECONDS = 15


class Product:
    def __init__(self, home: Path, port: int, log: Path) -> None:
        self.env = autopack_env(home, PORT=str(port))
        self.env.pop("AUTOPACK_ADMIN_PASSWORD", None)
        self.base = f"http://127.0.0.1:{port}"
        self.log = log
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("a") as out:
            # Own process group, like a terminal's foreground job that Ctrl-C signals.
            self.process = subprocess.Popen(
                ["make", "up"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                healthy = self.request("GET", "/healthz")[0] == 200
            except OSError:
                healthy = False
            if healthy and "Press Ctrl-C to stop." in self.log.read_text():
                return
            time.sleep(0.3)
        pytest.fail(f"make up did not answer /healthz:\n{self.log.read_text()}")

    def stop(self) -> float:
        assert self.process is not None
        began = time.monotonic()
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(STOP_WITHIN_SECONDS)
        return time.monotonic() - began

    def wait_final(self, run_id: str, token: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            run = self.request("GET", f"/api/runs/{run_id}/", token=token)[1]
            if run["state"] in ("DONE_SUCCESS", "DONE_FAILED", "CANCELLED"):
                return run
            if time.monotonic() > deadline:
                return run
            time.sleep(0.3)

    def request(
        self, method: str, path: str, body: dict | None = None, token: str = ""
    ) -> tuple[int, dict]:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Token {token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")


@pytest.fixture
def product(tmp_path):
    home = tmp_path / "home"
    product = Product(home, free_port(), tmp_path / "make-up.log")
    yield product
    if product.process and product.process.poll() is None:
        os.killpg(product.process.pid, signal.SIGKILL)
    embedded_db.stop(home / "pgdata")


def test_make_up_serves_stops_cleanly_and_keeps_data(product, run_config):
    product.start()
    output = product.log.read_text()
    assert f"Admin      {product.base}/admin/" in output
    assert "admin_password" in output
    token = autopack("token", "admin", env=product.env).stdout.strip()
    assert product.request("GET", "/api/runs/")[0] == 401

    status, created = product.request("POST", "/api/runs/", run_config, token)
    assert status == 201, created
    # The worker picks the run up; its workspace is not a git repository, so it fails.
    run = product.wait_final(created["run_id"], token)
    assert (run["state"], run["failure_code"]) == ("DONE_FAILED", "repository")
    assert run["failure_kind"] == "user"
    assert "is not a git repository" in run["failure_reason"]

    elapsed = product.stop()
    assert elapsed < STOP_WITHIN_SECONDS
    # make itself reports the signal it was sent, after waiting for its recipe to finish.
    assert product.process.returncode in (0, -signal.SIGTERM), product.log.read_text()
    assert "Embedded database stopped; data kept" in product.log.read_text()
    assert "Traceback" not in product.log.read_text()
    with pytest.raises(OSError):
        product.request("GET", "/healthz")
    pgdata = Path(product.env["AUTOPACK_HOME"]) / "pgdata"
    assert embedded_db._running_pid(pgdata) is None, "the embedded database was left running"

    product.start()
    status, run = product.request("GET", f"/api/runs/{created['run_id']}/", token=token)
    assert status == 200
    assert run["state"] == "DONE_FAILED"
    assert product.stop() < STOP_WITHIN_SECONDS


def processes(home: Path, marker: str, parent: int | None = None) -> list[int]:
    """Live processes of this product (by AUTOPACK_HOME) whose command line has `marker`
    (and whose parent is `parent`, when given)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            environ = (entry / "environ").read_bytes()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, ValueError):
            continue
        if stat[0] == "Z" or f"AUTOPACK_HOME={home}".encode() not in environ:
            continue
        if marker in command and parent in (None, int(stat[1])):
            found.append(int(entry.name))
    return found


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_make_up_starts_a_killed_worker_again_and_leaves_no_orphans(product, run_config):
    product.start()
    home = Path(product.env["AUTOPACK_HOME"])
    supervisor = parent_of(processes(home, "autopack_site.cli serve")[0])
    (worker,) = processes(home, "autopack_site.cli worker", supervisor)
    deadline = time.monotonic() + 60  # the worker starts its cluster after its own checks
    while time.monotonic() < deadline:
        queue = [pid for pid in processes(home, "") if parent_of(pid) == worker]  # the cluster
        if queue:
            break
        time.sleep(0.2)
    assert queue, product.log.read_text()

    os.kill(worker, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        restarted = [
            p for p in processes(home, "autopack_site.cli worker", supervisor) if p != worker
        ]
        if restarted:
            break
        time.sleep(0.2)
    assert restarted, product.log.read_text()
    assert "worker exited with code -9; starting it again in 1 s" in product.log.read_text()
    assert product.request("GET", "/healthz")[0] == 200  # the web server was never stopped
    time.sleep(1)
    assert not set(queue) & set(processes(home, "")), "queue processes outlived their worker"

    token = autopack("token", "admin", env=product.env).stdout.strip()
    status, created = product.request("POST", "/api/runs/", run_config, token)
    assert status == 201, created
    run = product.wait_final(created["run_id"], token)
    assert run["state"] == "DONE_FAILED"  # the new worker took it (its folder is no repository)
    assert product.stop() < STOP_WITHIN_SECONDS
