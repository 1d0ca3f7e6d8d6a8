"""Schema-driven fuzzing of the REST API: schemathesis generates requests from the API's
own OpenAPI schema (/api/schema/) and checks every response against it.

    .venv/bin/python bench/api_fuzz.py [--examples N] [--seed S]

The app is served by uvicorn, as `autopack serve` serves it, on a free 127.0.0.1 port, over
a throwaway database (created here, dropped at the end) holding a project with a run
waiting for approval, owned by a fresh user whose token the requests carry. Nothing but
loopback is contacted. For each operation:

- N requests with valid input, path values naming the user's objects so requests reach
  the views, and N with input the schema says is invalid, with the same path values and
  with generated ones;
- a NUL character and a lone surrogate in every parameter and every top-level field of
  a JSON body, which must be refused with a 400 naming it (a surrogate cannot travel in
  a URL path, only its invalid UTF-8 bytes, which servers decode leniently: there it
  must only not fail).

Target: no 5xx and no schema violation: no undocumented status code or content type, no
body or header that does not match the schema, no invalid input accepted, no hostile
text let through. The script exits with status 1 when it finds any, and prints each with
a curl command that replays it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autopack_site.settings")

import django  # noqa: E402

django.setup()

import hypothesis  # noqa: E402
import requests  # noqa: E402
import schemathesis  # noqa: E402
import uvicorn  # noqa: E402
from django.conf import settings  # noqa: E402
from django.test.utils import setup_databases, teardown_databases  # noqa: E402
from hypothesis.configuration import set_hypothesis_home_dir  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.core.failures import Failure, FailureGroup  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
POSITIVE, NEGATIVE = schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE
# name: (generation mode, path values of real objects or generated ones, checks)
MODES = {
    "valid input": (POSITIVE, True, CONFORMANCE),
    "invalid input": (NEGATIVE, True, [*CONFORMANCE, negative_data_rejection]),
    "invalid path values": (NEGATIVE, False, [*CONFORMANCE, negative_data_rejection]),
}
# As JSON and as text in a URL: a NUL, and the first half of a UTF-16 surrogate pair
# (JSON may escape it; in a URL it can only be its invalid UTF-8 bytes).
HOSTILE = {"NUL": ("a\x00b", "a\x00b"), "lone surrogate": ("a\ud800b", b"a\xed\xa0\x80b")}


@dataclass
class Figures:
    operations: int = 0
    requests: int = 0
    server_errors: int = 0
    violations: int = 0
    # (operation, what) -> (count, first message, curl command of the first)
    problems: dict[tuple[str, str], tuple[int, str, str]] = field(default_factory=dict)

    def record(self, operation: str, what: str, message: str, curl: str) -> None:
        count, first, first_curl = self.problems.get((operation, what), (0, message, curl))
        self.problems[(operation, what)] = (count + 1, first, first_curl)


def make_world(repo: Path) -> tuple[str, dict[str, object]]:
    """A fresh user's token, and path values of objects that user may see and change."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from tests.builds import project_waiting_for_approval

    users = get_user_model().objects
    owner, viewer = users.create_user("fuzz-owner"), users.create_user("fuzz-viewer")
    project, run, request = project_waiting_for_approval(repo, "fuzz", owner, viewer)
    values = {"run_id": run.run_id, "username": viewer.username}
    values |= {"project": project.pk, "request": request.pk}
    return Token.objects.create(user=owner).key, values


def path_values(path: str, world: dict[str, object]) -> dict[str, object]:
    values = {name: world[name] for name in ("run_id", "username") if f"{{{name}}}" in path}
    if "{pk}" in path:
        values["pk"] = world["request" if path.startswith("/api/governance/") else "project"]
    return values


class Fuzzer:
    def __init__(
        self, base_url: str, raw: dict, token: str, world: dict, figures: Figures, args
    ) -> None:
        self.base_url = base_url
        self.raw = raw
        self.headers = {"Authorization": f"Token {token}"}
        self.session = requests.Session()
        self.world = world
        self.figures = figures
        self.args = args

    def operation(self, operation) -> None:
        label = f"{operation.method.upper()} {operation.path}"
        fixed = path_values(operation.path, self.world)
        for mode, use_fixed, checks in MODES.values():
            if not fixed and not use_fixed:
                continue  # no path values: the same as invalid input
            strategy = operation.as_strategy(
                generation_mode=mode, path_parameters=fixed if use_fixed else None
            )
            try:
                self.examples(strategy, label, checks)
            except hypothesis.errors.Unsatisfiable:
                pass  # nothing left to make invalid: the only inputs are fixed path values
        self.hostile(operation, label, fixed)

    def examples(self, strategy, label: str, checks: list) -> None:
        @hypothesis.seed(self.args.seed)
        @hypothesis.settings(
            max_examples=self.args.examples,
            deadline=None,
            database=None,
            phases=[hypothesis.Phase.generate],
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        @hypothesis.given(case=strategy)
        def send(case) -> None:
            self.send(case, label, checks)

        send()

    def send(self, case, label: str, checks: list) -> None:
        response = case.call(base_url=self.base_url, session=self.session, headers=self.headers)
        self.count(response)
        try:
            case.validate_response(
                response,
                checks=checks,
                headers=self.headers,
                transport_kwargs={"base_url": self.base_url, "session": self.session},
            )
            return
        except FailureGroup as group:
            failures = group.exceptions
        except Failure as failure:
            failures = (failure,)
        self.figures.violations += response.status_code < 500  # a 5xx is counted as such
        curl = case.as_curl_command(headers=self.headers, base_url=self.base_url)
        for failure in failures:
            self.figures.record(label, failure.title, failure.message, curl)

    def hostile(self, operation, label: str, fixed: dict[str, object]) -> None:
        """Each input in turn holds hostile text; the others stay as in `fixed`."""
        definition = self.raw["paths"][operation.path][operation.method.lower()]
        for parameter in definition.get("parameters", []):
            name, where = parameter["name"], parameter["in"]
            for what, (_, url_text) in HOSTILE.items():
                if where == "path":
                    path = {**fixed, name: url_text}
                    self.expect(label, what, name, path, {}, None, must_refuse=what == "NUL")
                else:
                    self.expect(label, what, name, fixed, {name: url_text}, None)
        for name in self.body_fields(definition):
            for what, (text, _) in HOSTILE.items():
                self.expect(label, what, name, fixed, {}, {name: text})

    def body_fields(self, definition: dict) -> list[str]:
        """Top-level fields of the operation's JSON body that a client may send."""
        content = definition.get("requestBody", {}).get("content", {})
        schema = content.get("application/json", {}).get("schema", {})
        if "$ref" in schema:
            schema = self.raw["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        fields = schema.get("properties", {}).items()
        return [name for name, field_schema in fields if not field_schema.get("readOnly")]

    def expect(self, label, what, name, path, query, body, must_refuse: bool = True) -> None:
        url = self.base_url + operation_path(label, path)
        response = self.session.request(
            label.split()[0],
            url,
            params=query,
            data=None if body is None else json.dumps(body),
            headers={**self.headers, "Content-Type": "application/json"},
        )
        self.count(response)
        named = response.status_code == 400 and any(
            error["path"] == name for error in response.json()["errors"]
        )
        if response.status_code < 500 and (named or not must_refuse):
            return
        self.figures.violations += response.status_code < 500
        message = f"{response.status_code} {response.text[:300]}"
        where = "body" if body is not None else "query" if query else "path"
        curl = f"curl -X {label.split()[0]} '{response.request.url}'"
        self.figures.record(label, f"{what} in {where} {name} not refused", message, curl)

    def count(self, response: requests.Response) -> None:
        self.figures.requests += 1
        self.figures.server_errors += response.status_code >= 500


def operation_path(label: str, values: dict[str, object]) -> str:
    path = label.split(maxsplit=1)[1]
    for name, value in values.items():
        raw = value if isinstance(value, bytes) else str(value).encode()
        path = path.replace(f"{{{name}}}", requests.utils.quote(raw, safe=""))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(port: int) -> tuple[uvicorn.Server, threading.Thread]:
    server = uvicorn.Server(
        uvicorn.Config(
            "autopack_site.asgi:application",
            host="127.0.0.1",
            port=port,
            lifespan="off",
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise SystemExit("the server did not start within 30 s")
        time.sleep(0.05)
    return server, thread


def use_channel_layer_on(database: str) -> None:
    """The channel layer copied the database settings before the throwaway database was
    named; events of the runs made here go to that database too."""
    from channels.layers import channel_layers

    layer = settings.CHANNEL_LAYERS["default"]
    if layer["BACKEND"].startswith("channels_postgres"):
        layer["CONFIG"]["NAME"] = database
        channel_layers.backends.clear()


def end_other_sessions() -> None:
    """The server's threads and the channel layer keep connections open; end them so the
    throwaway database can be dropped."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=25, help="per operation and mode")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    settings.DATABASES["default"]["TEST"]["NAME"] = f"autopack_fuzz_{os.getpid()}"
    databases = setup_databases(verbosity=0, interactive=False)
    work = Path(tempfile.mkdtemp(prefix="autopack-fuzz-"))
    repo = work / "repository"
    repo.mkdir()
    # Hypothesis's caches, which it would otherwise write to the working directory.
    set_hypothesis_home_dir(work / "hypothesis")
    server = thread = None
    try:
        use_channel_layer_on(settings.DATABASES["default"]["NAME"])
        token, world = make_world(repo)
        port = free_port()
        server, thread = serve(port)
        # After the server set Django up again: refused requests are the point here, but
        # server errors still print their tracebacks.
        logging.getLogger("django.request").setLevel(logging.ERROR)
        logging.getLogger("django-q").setLevel(logging.WARNING)
        base_url = f"http://127.0.0.1:{port}"
        raw = requests.get(
            f"{base_url}/api/schema/?format=json",
            headers={"Authorization": f"Token {token}"},
            timeout=30,
        ).json()
        schema = schemathesis.openapi.from_dict(raw)
        print(
            f"database: {settings.DATABASES['default']['NAME']} (throwaway), server: {base_url}, "
            f"examples per operation and mode: {args.examples}, seed: {args.seed}"
        )
        figures = Figures()
        fuzzer = Fuzzer(base_url, raw, token, world, figures, args)
        started = time.monotonic()
        for result in schema.get_all_operations():
            figures.operations += 1
            fuzzer.operation(result.ok())
        seconds = time.monotonic() - started
    finally:
        if server is not None:
            server.should_exit = True
            thread.join(timeout=10)
        end_other_sessions()
        teardown_databases(databases, verbosity=0)
        shutil.rmtree(work)
    return report(figures, seconds)


def report(figures: Figures, seconds: float) -> int:
    for (operation, what), (count, message, curl) in sorted(figures.problems.items()):
        print(f"\n{operation}: {what} ({count}x)\n  {message.strip()[:600]}\n  {curl}")
    print(f"\noperations tested:        {figures.operations}")
    print(f"requests sent:            {figures.requests}")
    print(f"server errors (5xx):      {figures.server_errors}")
    print(f"schema violations:        {figures.violations}")
    print(f"seconds:                  {seconds:.1f}")
    clean = figures.server_errors == 0 and figures.violations == 0
    print(f"target: no 5xx and no schema violation -> {'met' if clean else 'NOT met'}")
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
