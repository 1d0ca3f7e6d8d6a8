"""The API keeps to its OpenAPI schema, walked route by route from the generated schema:
hostile text (NUL, lone surrogates) and unknown filter values are refused with a 400 that
names the parameter, bad page numbers get the documented answer, and every answer, normal
or not, has a status code, content type and body the schema documents. Pages refuse
hostile text too, in plain text. (bench/api_fuzz.py fuzzes the same schema at length.)"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from jsonschema import Draft202012Validator
from rest_framework.test import APIClient

from governance.models import GovernanceRequest
from runs import services
from runs.models import Run
from runs.states import RunState
from tests.builds import bench_run, config, git, phase, project_waiting_for_approval
from tests.conftest import token_client

pytestmark = pytest.mark.django_db

SCHEMA = json.loads(
    OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True))
)
OPERATIONS = [
    (method.upper(), path, operation)
    for path, item in SCHEMA["paths"].items()
    for method, operation in item.items()
]
UNSAFE = [(m, p, o) for m, p, o in OPERATIONS if m not in ("GET", "HEAD", "OPTIONS")]
# As sent in a URL: a NUL, and the UTF-8 bytes of half a surrogate pair, which is not
# valid UTF-8 (a lone surrogate cannot be written any other way there).
IN_URL = {"NUL": "a%00b", "lone surrogate": "a%ED%A0%80b"}
# As sent in JSON, which may hold either.
IN_JSON = {"NUL": "a\x00b", "lone surrogate": "a\ud800b"}


def parameters(where: str) -> list[tuple[str, str, str, dict]]:
    return [
        (method, path, parameter["name"], parameter["schema"])
        for method, path, operation in OPERATIONS
        for parameter in operation.get("parameters", [])
        if parameter["in"] == where
    ]


def body_fields() -> list[tuple[str, str, str]]:
    """Top-level fields of each JSON request body that a client may send."""
    fields = []
    for method, path, operation in OPERATIONS:
        content = operation.get("requestBody", {}).get("content", {})
        schema = resolve(content.get("application/json", {}).get("schema", {}))
        fields += [
            (method, path, name)
            for name, field in schema.get("properties", {}).items()
            if not field.get("readOnly")
        ]
    return fields


def resolve(schema: dict) -> dict:
    if "$ref" not in schema:
        return schema
    return SCHEMA["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]


def ids(cases: list[tuple]) -> list[str]:
    return [" ".join(str(part) for part in case if isinstance(part, str)) for case in cases]


QUERY = parameters("query")
PATH = parameters("path")
ENUMS = [case for case in QUERY if "enum" in case[3]]
PAGED = [(method, path) for method, path, name, _ in QUERY if name == "page"]
REQUIRED = {
    (path, parameter["name"])
    for _, path, operation in OPERATIONS
    for parameter in operation.get("parameters", [])
    if parameter["in"] == "query" and parameter.get("required")
}
FIELDS = body_fields()


@pytest.fixture
def world(tmp_path):
    """A project with a run waiting for approval of a protected change, its owner (who
    may approve) and a viewer; a benchmark the owner started, with a task solved by that
    run."""
    users = get_user_model().objects
    owner, viewer = users.create_user("owner"), users.create_user("viewer")
    repo = tmp_path / "shop"
    repo.mkdir()
    project, run, request = project_waiting_for_approval(repo, "shop", owner, viewer)
    bench = bench_run(
        "shop-bench", owner, suite="benchmarks/polyglot", model="scripted", state="running"
    )
    bench.tasks.create(
        task_id="python/cart", language="python", run=run, status="passed", passed_try=1,
        tries_used=1, prompt_tokens=10, completion_tokens=5, cost_usd="0.0010", seconds=1.5,
    )  # fmt: skip
    return {
        "owner": token_client(owner),
        "viewer": token_client(viewer),
        "repo": repo,
        "project": project,
        "run": run,
        "request": request,
        "bench": bench,
    }


def url(world, path: str, query: str = "", **raw: str) -> str:
    """`path` naming the world's objects, or with the raw (percent-encoded) values given;
    required query parameters not in `query` (the benchmarks to compare) name the world's
    benchmark."""
    values = {
        "run_id": world["run"].run_id,
        "username": "viewer",
        "pk": world["request" if path.startswith("/api/governance/") else "project"].pk,
        "bench_id": world["bench"].bench_id,
    }
    given = {pair.split("=", 1)[0] for pair in query.split("&")}
    missing = [f"{name}={world['bench'].bench_id}" for p, name in sorted(REQUIRED) if p == path]
    query = "&".join([query] * bool(query) + [m for m in missing if m.split("=")[0] not in given])
    for name, value in values.items():
        path = path.replace(f"{{{name}}}", raw.get(name, quote(str(value), safe="")))
    return f"{path}?{query}" if query else path


def send(client, method: str, target: str, body: object = None):
    data = "" if body is None else json.dumps(body)
    return client.generic(method, target, data, content_type="application/json")


def documented(method: str, path: str, response) -> None:
    """Fails unless the response's status code, content type and body are documented."""
    responses = SCHEMA["paths"][path][method.lower()]["responses"]
    code = str(response.status_code)
    assert code in responses, f"{method} {path} answered an undocumented {code}"
    content = responses[code].get("content")
    if not content:
        assert not response.content, f"{method} {path}: {code} is documented without a body"
        return
    media_type = response["Content-Type"].split(";")[0]
    assert media_type in content, f"{method} {path}: {code} as undocumented {media_type}"
    if not media_type.endswith("json"):
        return  # CSV: documented as text
    schema = {**content[media_type]["schema"], "components": SCHEMA["components"]}
    problems = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in Draft202012Validator(schema).iter_errors(response.json())
    ]
    assert not problems, f"{method} {path}: {code} body breaks the schema: {problems[:5]}"


def refused(method: str, path: str, response, name: str) -> list[str]:
    """The messages of a documented 400 about `name`; fails if there are none."""
    assert response.status_code == 400, response.content[:300]
    documented(method, path, response)
    messages = [e["message"] for e in response.json()["errors"] if e["path"] == name]
    assert messages, f"no error names {name!r}: {response.json()}"
    return messages


def test_schema_validates_and_generates_without_warnings(tmp_path):
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml")
    )


def test_bad_requests_are_documented_as_an_object_of_errors():
    bad_request = SCHEMA["components"]["schemas"]["BadRequest"]
    error = resolve(bad_request["properties"]["errors"]["items"])

    assert bad_request["type"] == "object" and bad_request["required"] == ["errors"]
    assert set(error["properties"]) == {"path", "message"}
    for method, path, operation in OPERATIONS:
        body = resolve(operation["responses"]["400"]["content"]["application/json"]["schema"])
        # The same errors; an operation may add optional fields (a refused plan's text).
        assert body["required"] == ["errors"], f"{method} {path}"
        assert body["properties"]["errors"] == bad_request["properties"]["errors"]


@pytest.mark.parametrize(("method", "path", "name", "schema"), QUERY, ids=ids(QUERY))
@pytest.mark.parametrize("what", IN_URL)
def test_hostile_text_in_a_query_parameter_is_refused_naming_it(
    world, method, path, name, schema, what
):
    response = send(world["owner"], method, url(world, path, f"{name}={IN_URL[what]}"))

    refused(method, path, response, name)


@pytest.mark.parametrize(("method", "path", "name", "schema"), PATH, ids=ids(PATH))
def test_a_nul_in_a_path_value_is_refused_naming_it(world, method, path, name, schema):
    response = send(world["owner"], method, url(world, path, **{name: IN_URL["NUL"]}))

    (message,) = refused(method, path, response, name)
    assert "NUL" in message


@pytest.mark.parametrize(("method", "path", "name", "schema"), PATH, ids=ids(PATH))
def test_a_lone_surrogate_in_a_path_value_finds_nothing(world, method, path, name, schema):
    # Servers decode the invalid UTF-8 of a path leniently, so it never arrives as a
    # surrogate: it is only a value that names nothing.
    target = url(world, path, **{name: IN_URL["lone surrogate"]})

    response = send(world["owner"], method, target)

    assert response.status_code == 404
    documented(method, path, response)


@pytest.mark.parametrize(("method", "path", "name"), FIELDS, ids=ids(FIELDS))
@pytest.mark.parametrize("what", IN_JSON)
def test_hostile_text_in_a_json_field_is_refused_naming_it(world, method, path, name, what):
    response = send(world["owner"], method, url(world, path), {name: IN_JSON[what]})

    refused(method, path, response, name)


def test_hostile_text_deep_in_a_run_config_is_named_by_its_json_path(world):
    data = config(world["repo"], [phase("a", 0, ["shop/"])], run_id="deep", project="shop")
    data["tiers"][0]["phases"][0]["task_name"] = IN_JSON["lone surrogate"]
    data["tiers"][0]["phases"][0]["scope"]["paths"] = ["shop/", IN_JSON["NUL"]]

    response = send(world["owner"], "POST", "/api/runs/", data)

    refused("POST", "/api/runs/", response, "tiers[0].phases[0].task_name")
    refused("POST", "/api/runs/", response, "tiers[0].phases[0].scope.paths[1]")
    assert not Run.objects.filter(run_id="deep").exists()


def test_a_nul_in_a_header_is_refused_before_the_token_is_looked_up(world):
    response = APIClient().get("/api/runs/", HTTP_AUTHORIZATION="Token a\x00b")

    refused("GET", "/api/runs/", response, "Authorization")


@pytest.mark.parametrize("encoding", ["multipart", "urlencoded"])
def test_hostile_text_in_a_form_field_is_refused_naming_it(world, encoding):
    path = "/api/governance/requests/{pk}/approve/"
    target = url(world, path)
    if encoding == "multipart":
        response = world["owner"].post(target, {"reason": IN_JSON["NUL"]}, format="multipart")
    else:
        form = f"reason={IN_URL['lone surrogate']}"
        response = world["owner"].generic(
            "POST", target, form, content_type="application/x-www-form-urlencoded"
        )

    refused("POST", path, response, "reason")
    world["request"].refresh_from_db()
    assert world["request"].state == GovernanceRequest.State.PENDING


@pytest.mark.parametrize(("method", "path", "name", "schema"), ENUMS, ids=ids(ENUMS))
@pytest.mark.parametrize("value", ["not-a-choice", ""])
def test_unknown_filter_values_are_refused_naming_the_parameter(
    world, method, path, name, schema, value
):
    response = send(world["owner"], method, url(world, path, f"{name}={value}"))

    (message,) = refused(method, path, response, name)
    assert all(choice in message for choice in schema["enum"])


@pytest.mark.parametrize(("method", "path", "name", "schema"), ENUMS, ids=ids(ENUMS))
def test_every_documented_filter_value_is_accepted(world, method, path, name, schema):
    for value in schema["enum"]:
        response = send(world["owner"], method, url(world, path, f"{name}={value}"))

        assert response.status_code == 200, (value, response.content[:300])
        documented(method, path, response)


@pytest.mark.parametrize(("method", "path"), PAGED, ids=ids(PAGED))
@pytest.mark.parametrize("page", ["abc", "0", "-1", "1.5", "", "%EF%BC%91"])
def test_a_page_that_is_not_a_page_number_is_refused(world, method, path, page):
    response = send(world["owner"], method, url(world, path, f"page={page}"))

    refused(method, path, response, "page")


@pytest.mark.parametrize(("method", "path"), PAGED, ids=ids(PAGED))
def test_a_page_past_the_last_is_a_documented_404(world, method, path):
    response = send(world["owner"], method, url(world, path, "page=999999"))

    assert response.status_code == 404
    documented(method, path, response)
    assert "Invalid page" in response.json()["detail"]


def _new_run(world) -> dict:
    return config(world["repo"], [phase("b", 0, ["shop/"])], run_id="second", project="shop")


def _run_state(state: str) -> Callable[[dict], None]:
    return lambda world: Run.objects.filter(pk=world["run"].pk).update(state=state)


def _decided(world) -> None:
    GovernanceRequest.objects.filter(pk=world["request"].pk).update(
        state=GovernanceRequest.State.APPROVED
    )


@dataclass
class Change:
    """A normal request to an operation that changes something."""

    body: object = None  # or a function of the world that makes it
    setup: Callable[[dict], None] | None = None  # makes the request possible
    conflict: Callable[[dict], None] | None = None  # makes it conflict (409)

    def data(self, world: dict) -> object:
        return self.body(world) if callable(self.body) else self.body


def _git_repository(world) -> None:
    (world["repo"] / "cart.py").write_text("PRICES = {}\n")
    git(world["repo"], "init", "-q")


PLAN = {"markdown": "# Tidy the cart\n\n- Round the prices [paths:cart.py]\n", "project": "shop"}

CHANGES = {
    ("POST", "/api/runs/"): Change(
        _new_run, conflict=lambda world: services.create_run(_new_run(world), enqueue=False)
    ),
    ("POST", "/api/runs/{run_id}/cancel/"): Change(conflict=_run_state(RunState.DONE_SUCCESS)),
    ("POST", "/api/runs/{run_id}/resume/"): Change(
        {"extra_attempts": 2},
        setup=_run_state(RunState.CANCELLED),
        conflict=_run_state(RunState.RUNNING),
    ),
    ("POST", "/api/governance/requests/{pk}/approve/"): Change({"reason": "ok"}, conflict=_decided),
    ("POST", "/api/governance/requests/{pk}/deny/"): Change({"reason": "no"}, conflict=_decided),
    ("POST", "/api/projects/{pk}/members/"): Change({"username": "viewer", "role": "member"}),
    ("PATCH", "/api/projects/{pk}/"): Change({"test_command": "make check"}),
    ("DELETE", "/api/projects/{pk}/members/{username}/"): Change(),
    ("POST", "/api/plans/normalize/"): Change(PLAN, setup=_git_repository),
}
CONFLICTS = [key for key, change in CHANGES.items() if change.conflict]


def _body(world, method: str, path: str) -> object:
    return CHANGES.get((method, path), Change()).data(world)


def test_every_operation_that_changes_something_has_a_normal_request_here():
    assert {(m, p) for m, p, _ in UNSAFE} == set(CHANGES)


@pytest.mark.parametrize(("method", "path", "operation"), OPERATIONS, ids=ids(OPERATIONS))
def test_a_normal_request_gets_a_documented_success(world, method, path, operation):
    change = CHANGES.get((method, path), Change())
    if change.setup:
        change.setup(world)

    response = send(world["owner"], method, url(world, path), change.data(world))

    assert 200 <= response.status_code < 300, response.content[:300]
    documented(method, path, response)


@pytest.mark.parametrize(("method", "path"), CONFLICTS, ids=ids(CONFLICTS))
def test_a_request_in_conflict_with_the_state_of_things_is_a_documented_409(world, method, path):
    change = CHANGES[(method, path)]
    change.conflict(world)

    response = send(world["owner"], method, url(world, path), change.data(world))

    assert response.status_code == 409, response.content[:300]
    documented(method, path, response)


@pytest.mark.parametrize(("method", "path", "operation"), OPERATIONS, ids=ids(OPERATIONS))
def test_a_request_without_credentials_is_a_documented_401(world, method, path, operation):
    response = send(APIClient(), method, url(world, path), _body(world, method, path))

    assert response.status_code == 401
    documented(method, path, response)


@pytest.mark.parametrize(("method", "path", "name", "schema"), PATH, ids=ids(PATH))
def test_a_path_value_naming_nothing_is_a_documented_404(world, method, path, name, schema):
    target = url(world, path, **{name: "999999" if name == "pk" else "nothing-here"})

    response = send(world["owner"], method, target, _body(world, method, path))

    assert response.status_code == 404
    documented(method, path, response)


FORBIDDEN = [(m, p) for m, p, _ in UNSAFE if p != "/api/runs/"]


@pytest.mark.parametrize(("method", "path"), FORBIDDEN, ids=ids(FORBIDDEN))
def test_a_change_a_viewer_may_not_make_is_a_documented_403(world, method, path):
    change = CHANGES[(method, path)]
    if change.setup:
        change.setup(world)

    response = send(world["viewer"], method, url(world, path), change.data(world))

    assert response.status_code == 403, response.content[:300]
    documented(method, path, response)


@pytest.mark.parametrize(("method", "path", "operation"), UNSAFE, ids=ids(UNSAFE))
def test_a_session_change_without_its_csrf_token_is_a_documented_403(
    world, method, path, operation
):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(get_user_model().objects.get(username="owner"))

    response = send(client, method, url(world, path), _body(world, method, path))

    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    documented(method, path, response)


PAGES = [
    "/",
    "/runs/fragments/",
    "/runs/new/",
    "/runs/{run_id}/",
    "/runs/{run_id}/fragments/",
    "/projects/",
    "/projects/{pk}/",
    "/governance/",
    "/usage/",
    "/bench/",
    "/bench/{bench_id}/",
    "/bench/compare/",
    "/accounts/login/",
    "/admin/",
    "/admin/runs/run/",
    "/healthz",
    "/metrics",
]


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("what", IN_URL)
def test_pages_refuse_hostile_text_in_the_query_in_plain_text(world, page, what):
    client = Client()
    client.force_login(get_user_model().objects.get(username="owner"))

    response = client.get(url(world, page, f"q={IN_URL[what]}"))

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode().startswith("q: ")


@pytest.mark.parametrize("what", IN_JSON)
def test_hostile_text_escaped_in_the_run_config_of_the_page_form_is_refused(world, what):
    # Escaped in JSON, it passes the door as text; the run config refuses it.
    client = Client()
    client.force_login(get_user_model().objects.get(username="owner"))
    data = config(world["repo"], [phase("x", 0, ["shop/"])], run_id="via-form", project="shop")
    data["goal"] = IN_JSON[what]

    response = client.post("/runs/new/", {"config": json.dumps(data)})

    assert response.status_code == 400
    assert "goal" in response.content.decode()
    assert not Run.objects.filter(run_id="via-form").exists()
