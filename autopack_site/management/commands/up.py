"""`autopack up` (what `make up` runs): the whole product in the foreground.

This process prepares the database and then supervises two children, the web server and
a worker: a child that dies is started again, with backoff. Only Ctrl-C or SIGTERM stops
the stack: the worker, then the web server, then the embedded database if this process
started it; the data stays for the next start. If this process is killed outright, its
children die with it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from autopack_site import embedded_db
from autopack_site.backoff import Backoff
from autopack_site.env import envstr, generated_secret
from autopack_site.readiness import ensure_migrated
from runs.engine.commands import die_with_parent

STOP_GRACE_SECONDS = 10
READY_TIMEOUT_SECONDS = 60


class Command(BaseCommand):
    help = "Start Autopack on its embedded defaults: database, migrations, web server, worker."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))

    def handle(self, *args, host: str, port: int, **options) -> None:
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())

        try:
            ensure_migrated(self.stdout)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        password_note = self._ensure_admin()

        commands = {
            "worker": ["worker"],
            "web": ["serve", "--host", host, "--port", str(port)],
        }
        children = {name: self._spawn(command) for name, command in commands.items()}
        try:
            base = f"http://{host}:{port}"
            if self._wait_ready(base, children, stop):
                self._announce(base, password_note)
            elif not stop.is_set():
                self.stderr.write(f"{base}/healthz did not answer; see the output above.")
            self._supervise(commands, children, stop)
        finally:
            self._shutdown(children)
            self._stop_database()

    def _ensure_admin(self) -> str:
        users = get_user_model()
        password = envstr("AUTOPACK_ADMIN_PASSWORD")
        stored = Path(settings.AUTOPACK_HOME) / "admin_password"
        admin = users.objects.filter(username="admin").first()
        if password:
            note = "from AUTOPACK_ADMIN_PASSWORD"
        else:
            password = generated_secret(stored, nbytes=12)
            note = f"{password}  (generated once, stored in {stored})"
        if admin is None:
            users.objects.create_superuser("admin", email="", password=password)
        elif envstr("AUTOPACK_ADMIN_PASSWORD"):
            admin.set_password(password)
            admin.save(update_fields=["password"])
        return note

    def _spawn(self, command: list[str]) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "autopack_site.cli", *command],
            # Own session: Ctrl-C reaches only this supervisor, which stops children in order.
            start_new_session=True,
            preexec_fn=die_with_parent,
        )

    def _wait_ready(self, base: str, children: dict, stop: threading.Event) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline and not stop.is_set():
            if any(child.poll() is not None for child in children.values()):
                return False
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
                    if response.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        return False

    def _announce(self, base: str, password_note: str) -> None:
        self.stdout.write(self.style.SUCCESS(f"\nAutopack is up at {base}/"))
        self.stdout.write(f"  Dashboard  {base}/")
        self.stdout.write(f"  Admin      {base}/admin/")
        self.stdout.write(f"  API        {base}/api/  (schema {base}/api/schema/)")
        self.stdout.write(f"  Login      admin / {password_note}")
        self.stdout.write("  API token  autopack token admin")
        self.stdout.write(f"  Data       {settings.AUTOPACK_HOME}")
        self.stdout.write("Press Ctrl-C to stop.\n")
        self.stdout.flush()

    def _supervise(self, commands: dict, children: dict, stop: threading.Event) -> None:
        """Start a child that died again (after its Backoff), until Ctrl-C or SIGTERM."""
        started = {name: time.monotonic() for name in children}
        backoff = {name: Backoff() for name in children}
        due: dict[str, float] = {}
        while not stop.wait(0.2):
            now = time.monotonic()
            for name, child in children.items():
                if name in due:
                    if now >= due[name]:
                        del due[name]
                        children[name] = self._spawn(commands[name])
                        started[name] = now
                    continue
                code = child.poll()
                if code is None:
                    continue
                wait = backoff[name].after(now - started[name])
                self.stderr.write(
                    f"{name} exited with code {code}; starting it again in {wait:.0f} s"
                )
                self._kill_group(child)
                due[name] = now + wait

    @staticmethod
    def _kill_group(child: subprocess.Popen) -> None:
        """What a dead child left in its process group goes with it."""
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _shutdown(self, children: dict) -> None:
        self.stdout.write("Stopping...")
        for name in ("worker", "web"):
            child = children[name]
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
            try:
                child.wait(STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                self.stderr.write(f"{name} did not stop in {STOP_GRACE_SECONDS}s; killing it.")
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()

    def _stop_database(self) -> None:
        if settings.EMBEDDED_PGDATA is not None and settings.EMBEDDED_DB_STARTED_HERE:
            embedded_db.stop(settings.EMBEDDED_PGDATA)
            self.stdout.write(
                f"Embedded database stopped; data kept in {settings.EMBEDDED_PGDATA}."
            )
