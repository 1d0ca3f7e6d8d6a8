"""Helpers for tests that run Autopack in real subprocesses."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def autopack_env(home: Path, **extra: str) -> dict[str, str]:
    from django.conf import settings

    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEY")}
    env.update(
        AUTOPACK_HOME=str(home),
        AUTOPACK_ENVIRONMENTS=str(settings.AUTOPACK_ENVIRONMENTS),
        DJANGO_SETTINGS_MODULE="autopack_site.settings",
        **extra,
    )
    return env


def run_python(code: str, env: dict[str, str], timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def autopack(*args: str, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "autopack"), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def database_url() -> str:
    """The test database, for subprocesses that must see what the test wrote."""
    from django.db import connection

    db = connection.settings_dict
    return f"postgresql://{db['USER']}@/{db['NAME']}?host={db['HOST']}&port={db['PORT']}"


def step_in_subprocess(engine, run_id: str, step: int, lease_seconds: int = 3):
    """A worker process executing one step of a run, with the test's settings and
    database, in its own session (so the test can SIGKILL it and what it started)."""
    env = dict(
        os.environ,
        DATABASE_URL=database_url(),
        AUTOPACK_HOME=str(engine.AUTOPACK_HOME),
        AUTOPACK_ENVIRONMENTS=str(engine.AUTOPACK_ENVIRONMENTS),
        AUTOPACK_MODELS=str(engine.AUTOPACK_MODELS),
        AUTOPACK_LEASE_SECONDS=str(lease_seconds),
        DJANGO_SETTINGS_MODULE="autopack_site.settings",
    )
    code = (
        "import django; django.setup(); "
        f"from runs.executor import execute_step; execute_step({run_id!r}, {step})"
    )
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, start_new_session=True)


def shared_data(name: str) -> Path:
    """A file of the team's shared data (`../shared/` beside the repository, or
    AUTOPACK_SHARED_DATA). Missing: the test is skipped, unless CI asks for it
    (AUTOPACK_REQUIRE_SHARED_DATA=1), where a missing file fails the test."""
    import pytest

    roots = [os.environ.get("AUTOPACK_SHARED_DATA", ""), ROOT.parent / "shared", "/work/shared"]
    for root in filter(None, roots):
        if (Path(root) / name).exists():
            return Path(root) / name
    message = f"shared data {name} not found under {', '.join(map(str, filter(None, roots)))}"
    if os.environ.get("AUTOPACK_REQUIRE_SHARED_DATA") == "1":
        pytest.fail(message)
    pytest.skip(message)
