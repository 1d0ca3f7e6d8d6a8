"""Who sees and does what, on every API route and page, with ready-made users: the
project's owner, member, viewer and approver (a member who may approve), a stranger
(a user of the installation, not of the project) and staff."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from governance.models import GovernanceRequest
from runs import services
from runs.models import Project, ProjectMember, Run
from telemetry.models import LlmCall
from tests.builds import awaiting_approval, bench_run, config, phase
from tests.conftest import token_client

pytestmark = pytest.mark.django_db

USERS = ("owner", "member", "viewer", "approver", "stranger", "staff")
ALL_OK = dict.fromkeys(USERS, 200) | {"stranger": 404}
# Benchmarks belong to no project: whoever started one, and staff.
CREATOR_OK = dict.fromkeys(USERS, 404) | {"owner": 200, "staff": 200}


@pytest.fixture
def world(tmp_path):
    """A project with a run waiting for approval of a protected change, a model call and
    an issue, a benchmark the owner started and one started from the command line, and
    one user of each kind."""
    users_model = get_user_model()
    users = {name: users_model.objects.create_user(name) for name in USERS}
    users["staff"].is_staff = True
    users["staff"].save()
    approve = Permission.objects.get(codename="approve_governancerequest")
    users["approver"].user_permissions.add(approve)
    repo = tmp_path / "shop"
    repo.mkdir()
    project = Project.objects.create(name="shop", repository=str(repo))
    for name, role in (
        ("owner", "owner"),
        ("member", "member"),
        ("viewer", "viewer"),
        ("approver", "member"),
    ):
        ProjectMember.objects.create(project=project, user=users[name], role=role)
    run = services.create_run(
        config(repo, [phase("cart", 0, ["shop/"])], run_id="shop-run", project="shop"),
        created_by=users["owner"],
        enqueue=False,
    )
    awaiting_approval(run)
    LlmCall.objects.create(
        run=run,
        role="builder",
        provider="anthropic",
        model="claude-shop-model",
        max_tokens=100,
        total_tokens=42,
        cost_usd=Decimal("0.01"),
        duration_ms=5,
    )
    project.issues.create(scope="project", signature="x", severity="low", title="flaky cart")
    for bench_id, creator in (("shop-bench", users["owner"]), ("cli-bench", None)):
        bench_run(bench_id, creator, suite="polyglot", model="scripted", state="running")
    return {"users": users, "project": project, "run": run, "repo": repo}


def call(world, user: str, method: str, url: str, data=None):
    client = token_client(world["users"][user])
    return getattr(client, method)(url, data, format="json")


def page(world, user: str, method: str, url: str, data=None):
    client = Client()
    client.force_login(world["users"][user])
    return client.get(url) if method == "get" else client.post(url, data or {})


def _url(world, template: str) -> str:
    request = GovernanceRequest.objects.get()
    return template.format(
        run=world["run"].run_id, project=world["project"].pk, request=request.pk, bench="shop-bench"
    )


API = [
    ("get", "/api/runs/{run}/", None, ALL_OK),
    ("get", "/api/runs/{run}/events/", None, ALL_OK),
    ("get", "/api/runs/{run}/llm-calls/", None, ALL_OK),
    ("get", "/api/projects/{project}/", None, ALL_OK),
    ("get", "/api/projects/{project}/issues/", None, ALL_OK),
    ("get", "/api/projects/{project}/members/", None, ALL_OK),
    ("get", "/api/governance/requests/{request}/", None, ALL_OK),
    ("get", "/api/bench/{bench}/", None, CREATOR_OK),
    ("get", "/api/bench/{bench}/tasks.csv", None, CREATOR_OK),
    ("get", "/api/bench/compare/?a={bench}&b={bench}", None, CREATOR_OK),
    (
        "post",
        "/api/runs/{run}/cancel/",
        None,
        {
            "owner": 200,
            "member": 403,
            "viewer": 403,
            "approver": 403,
            "stranger": 404,
            "staff": 200,
        },
    ),
    (
        "patch",
        "/api/projects/{project}/",
        {"test_command": "make check"},
        {
            "owner": 200,
            "member": 403,
            "viewer": 403,
            "approver": 403,
            "stranger": 404,
            "staff": 200,
        },
    ),
    (
        "post",
        "/api/projects/{project}/members/",
        {"username": "stranger", "role": "viewer"},
        {
            "owner": 200,
            "member": 403,
            "viewer": 403,
            "approver": 403,
            "stranger": 404,
            "staff": 200,
        },
    ),
    (
        "delete",
        "/api/projects/{project}/members/viewer/",
        None,
        {
            "owner": 204,
            "member": 403,
            "viewer": 403,
            "approver": 403,
            "stranger": 404,
            "staff": 204,
        },
    ),
    (
        "post",
        "/api/governance/requests/{request}/approve/",
        {},
        {
            "owner": 403,
            "member": 403,
            "viewer": 403,
            "approver": 200,
            "stranger": 404,
            "staff": 403,
        },
    ),
]


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize(
    ("method", "template", "data", "expected"), API, ids=[f"{m} {t}" for m, t, _, _ in API]
)
def test_api_routes(world, user, method, template, data, expected):
    response = call(world, user, method, _url(world, template), data)

    assert response.status_code == expected[user], response.content[:300]


@pytest.mark.parametrize("user", USERS)
def test_api_lists_show_only_the_projects_a_user_is_in(world, user):
    visible = user != "stranger"
    runs = call(world, user, "get", "/api/runs/").json()["results"]
    projects = call(world, user, "get", "/api/projects/").json()["results"]
    requests = call(world, user, "get", "/api/governance/requests/").json()["results"]
    usage = call(world, user, "get", "/api/usage/?group_by=project").json()["results"]

    assert [r["run_id"] for r in runs] == (["shop-run"] if visible else [])
    assert [p["name"] for p in projects] == (["shop"] if visible else [])
    assert len(requests) == (1 if visible else 0)
    assert [u["group"] for u in usage] == (["shop"] if visible else [])


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("owner", 201),
        ("member", 201),
        ("approver", 201),
        ("staff", 201),
        ("viewer", 400),
        ("stranger", 400),
    ],
)
def test_creating_runs_needs_a_member_role(world, user, expected):
    data = config(
        world["repo"], [phase("more", 0, ["shop/"])], run_id=f"new-{user}", project="shop"
    )

    response = call(world, user, "post", "/api/runs/", data)

    assert response.status_code == expected, response.content[:300]
    if expected == 400:
        (error,) = response.json()["errors"]
        assert error["path"] == "project" and "you may not create runs for shop" in error["message"]


def test_only_those_allowed_make_projects_and_only_where_they_may(world, tmp_path, settings):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    data = config(elsewhere, [phase("x", 0, ["a/"])], run_id="elsewhere")
    creator = world["users"]["member"]

    refused = call(world, "member", "post", "/api/runs/", data)
    creator.user_permissions.add(Permission.objects.get(codename="add_project"))
    creator = get_user_model().objects.get(pk=creator.pk)  # permissions are cached
    outside = token_client(creator).post("/api/runs/", data, format="json")
    settings.AUTOPACK_REPO_ROOTS = [str(tmp_path)]
    inside = token_client(creator).post("/api/runs/", data, format="json")

    assert refused.status_code == 400 and "you may not create runs" in refused.content.decode()
    assert outside.status_code == 400
    assert "not under the folders projects may use (AUTOPACK_REPO_ROOTS" in outside.content.decode()
    assert inside.status_code == 201, inside.content[:300]
    project = Run.objects.get(run_id="elsewhere").project
    assert project.members.get().user == creator and project.members.get().role == "owner"


PAGES = [
    ("get", "/runs/{run}/", ALL_OK),
    ("get", "/runs/{run}/fragments/?after=0", ALL_OK),
    ("get", "/projects/{project}/", ALL_OK),
    ("get", "/bench/{bench}/", CREATOR_OK),
    ("get", "/bench/compare/?a={bench}&b={bench}", CREATOR_OK),
    (
        "post",
        "/runs/{run}/cancel/",
        {
            "owner": 302,
            "member": 403,
            "viewer": 403,
            "approver": 403,
            "stranger": 404,
            "staff": 302,
        },
    ),
    (
        "post",
        "/governance/{request}/approve/",
        {
            "owner": 403,
            "member": 403,
            "viewer": 403,
            "approver": 302,
            "stranger": 404,
            "staff": 403,
        },
    ),
]


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize(
    ("method", "template", "expected"), PAGES, ids=[f"{m} {t}" for m, t, _ in PAGES]
)
def test_pages(world, user, method, template, expected):
    response = page(world, user, method, _url(world, template))

    assert response.status_code == expected[user]


@pytest.mark.parametrize("user", USERS)
def test_page_lists_show_only_the_projects_a_user_is_in(world, user):
    visible = user != "stranger"
    shown = {
        url: page(world, user, "get", url).content.decode()
        for url in ("/", "/runs/fragments/", "/projects/", "/governance/", "/usage/")
    }

    for url, text in shown.items():
        marker = "claude-shop-model" if url == "/usage/" else "shop"
        assert (marker in text) is visible, url
    assert ("Approve #" in shown["/governance/"]) is (user == "approver")


@pytest.mark.parametrize("user", USERS)
def test_benchmarks_are_listed_to_whoever_started_them_and_staff(world, user):
    expected = {"owner": ["shop-bench"], "staff": ["cli-bench", "shop-bench"]}.get(user, [])

    listed = call(world, user, "get", "/api/bench/").json()["results"]
    shown = page(world, user, "get", "/bench/").content.decode()

    assert [b["bench_id"] for b in listed] == expected
    assert [b for b in ("cli-bench", "shop-bench") if f'href="/bench/{b}/"' in shown] == expected


def test_a_non_member_cannot_create_a_run_through_the_form(world):
    data = config(world["repo"], [phase("x", 0, ["shop/"])], run_id="via-form", project="shop")

    response = page(world, "stranger", "post", "/runs/new/", {"config": json.dumps(data)})

    assert response.status_code == 400
    assert "you may not create runs for shop" in response.content.decode()
    assert not Run.objects.filter(run_id="via-form").exists()
