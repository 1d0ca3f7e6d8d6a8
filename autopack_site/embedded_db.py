"""The embedded PostgreSQL 16 (with pgvector) used when DATABASE_URL is unset.

The server lives in $AUTOPACK_HOME/pgdata and outlives the process that started it
(pgserver's default cleanup mode would let any exiting process stop a server it did not
start). `make up` stops it on shutdown when it was the one that started it.
"""

from __future__ import annotations

import atexit
import logging
import os
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg
from psycopg import sql

# platformdirs warns on every import when XDG_RUNTIME_DIR is unset (containers, CI);
# pgserver only uses it for a lock file, so the warning is noise.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

import pgserver  # noqa: E402
from pgserver import postgres_server  # noqa: E402
from pgserver._commands import pg_ctl  # noqa: E402

logger = logging.getLogger(__name__)

CONNECT_DEADLINE_SECONDS = 15.0


class EmbeddedDatabaseError(RuntimeError):
    pass


@dataclass(frozen=True)
class EmbeddedServer:
    pgdata: Path
    socket_dir: Path
    port: int
    pid: int
    started_here: bool

    def conninfo(self, dbname: str = "postgres") -> str:
        return psycopg.conninfo.make_conninfo(
            host=str(self.socket_dir), port=self.port, user="postgres", dbname=dbname
        )


def _running_pid(pgdata: Path) -> int | None:
    info = postgres_server.PostmasterInfo.read_from_pgdata(pgdata)
    if info is None or not info.is_running():
        return None
    return info.pid


def _drop_stale_pidfile(pgdata: Path) -> None:
    """After a hard kill the PID in postmaster.pid may belong to an unrelated process."""
    info = postgres_server.PostmasterInfo.read_from_pgdata(pgdata)
    if info is None or info.process is None:
        return
    try:
        name = info.process.name()
    except psutil.Error:
        return
    if name != "postgres":
        logger.warning("removing stale postmaster.pid (pid %s is %r)", info.pid, name)
        (pgdata / "postmaster.pid").unlink(missing_ok=True)


def start(pgdata: Path) -> EmbeddedServer:
    """Start the server in `pgdata` or reuse the one already running there."""
    pgdata = pgdata.expanduser().resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    pid_before = _running_pid(pgdata)
    deadline = time.monotonic() + CONNECT_DEADLINE_SECONDS
    while True:
        _forget_handle(pgdata)
        try:
            server = pgserver.get_server(pgdata, cleanup_mode=None)
            info = server.get_postmaster_info()
            found = EmbeddedServer(
                pgdata=pgdata,
                socket_dir=Path(info.socket_dir),
                port=info.port or 5432,
                pid=info.pid,
                started_here=info.pid != pid_before,
            )
            with psycopg.connect(found.conninfo(), connect_timeout=3):
                return found
        except (
            psycopg.OperationalError,
            subprocess.SubprocessError,
            AssertionError,
            OSError,
        ) as exc:
            # Right after a hard kill the old PID can still look alive; retry briefly.
            if time.monotonic() > deadline:
                raise EmbeddedDatabaseError(
                    f"The embedded PostgreSQL in {pgdata} did not accept connections: {exc}. "
                    f"Its log is {pgdata / 'log'}."
                ) from exc
            _drop_stale_pidfile(pgdata)
            time.sleep(0.25)


def ensure_database(server: EmbeddedServer, name: str) -> None:
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            except psycopg.errors.DuplicateDatabase:
                pass  # another process created it between our check and our CREATE


def running_pid(pgdata: Path) -> int | None:
    """The server's process id when one runs in `pgdata`; never starts one."""
    return _running_pid(pgdata.expanduser().resolve())


def stop(pgdata: Path) -> bool:
    """Stop the server in `pgdata`; return False when none was running."""
    pgdata = pgdata.expanduser().resolve()
    if _running_pid(pgdata) is None:
        return False
    server = postgres_server.PostgresServer._instances.get(pgdata)
    user = server.system_user if server else _system_user()
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user, timeout=30)
    return True


def _forget_handle(pgdata: Path) -> None:
    """pgserver caches one handle per data directory; drop it so the next start re-reads
    postmaster.pid instead of trusting a server that may have died."""
    handle = postgres_server.PostgresServer._instances.pop(pgdata, None)
    if handle is not None:
        atexit.unregister(handle._cleanup)


def _system_user() -> str | None:
    # pgserver runs postgres as the "pgserver" account when started by root.
    return "pgserver" if os.geteuid() == 0 else None
