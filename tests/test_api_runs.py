from __future__ import annotations

import copy

import pytest
from rest_framework.test import APIClient

from runs.models import Phase, Run, RunEvent
from runs.states import RunState

pytestmark = pytest.mark.django_db


def test_creates_run_from_seed_format_config(api, run_config):
    response = api.post("/api/runs/", run_config, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["run_id"] == "notes-search"
    assert body["state"] == RunState.QUEUED
    assert body["token_cap"] == 400000
    assert body["integration_branch"] == "autopack/notes-search"
    assert body["created_by"] == "alice"
    assert [t["name"] for t in body["tiers"]] == ["Storage", "API"]
    phases = [p["phase_id"] for t in body["tiers"] for p in t["phases"]]
    assert phases == ["search-index", "search-endpoint", "search-docs"]
    first = body["tiers"][0]["phases"][0]
    assert first["complexity"] == "medium"
    assert first["max_attempts"] == 3
    assert first["scope_paths"] == ["notes/storage/", "notes/migrations/"]
    endpoint = body["tiers"][1]["phases"][0]
    assert endpoint["approval_required"] is True
    assert endpoint["max_attempts"] == 5  # the run's default
    assert endpoint["test_command"] == "pytest -q tests/test_api.py"


def test_created_run_stays_queued_with_a_creation_event(api, run_config):
    api.post("/api/runs/", run_config, format="json")

    run = Run.objects.get(run_id="notes-search")
    assert run.state == RunState.QUEUED
    assert list(run.events.values_list("kind", flat=True)) == ["run_created"]


def test_relative_workspace_is_resolved_against_server_directory(
    api, run_config, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    run_config["workspace"] = "notes"

    response = api.post("/api/runs/", run_config, format="json")

    assert response.status_code == 201, response.json()
    assert Run.objects.get().project.repository == str(tmp_path / "notes")


def test_git_url_repository_is_accepted_without_a_local_directory(api, run_config):
    del run_config["workspace"]
    run_config["repo"] = "https://example.invalid/team/notes.git"

    response = api.post("/api/runs/", run_config, format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["project"] == "notes"


def _errors(response) -> dict[str, str]:
    assert response.status_code == 400, response.content
    return {e["path"]: e["message"] for e in response.json()["errors"]}


@pytest.mark.parametrize(
    "mutate, path, words",
    [
        (
            lambda c: c["tiers"][1]["phases"][0].update(complexity="extreme"),
            "tiers[1].phases[0].complexity",
            "low",
        ),
        (
            lambda c: c["tiers"][0]["phases"][0].update(aproval_required=True),
            "tiers[0].phases[0].aproval_required",
            "unknown field",
        ),
        (lambda c: c.update(budget=5), "budget", "unknown field"),
        (
            lambda c: c["tiers"][0]["phases"][0]["scope"].update(paths=[]),
            "tiers[0].phases[0].scope.paths",
            "at least 1",
        ),
        (
            lambda c: c["tiers"][0]["phases"][0]["scope"].update(
                read_only_context=[{"reason": "x"}]
            ),
            "tiers[0].phases[0].scope.read_only_context[0].path",
            "required",
        ),
        (lambda c: c["tiers"][0]["phases"][0].pop("scope"), "tiers[0].phases[0].scope", "required"),
        (lambda c: c.update(run_id="has spaces"), "run_id", "pattern"),
        (lambda c: c.pop("goal"), "goal", "required"),
        (lambda c: c.update(token_cap=0), "token_cap", "greater than or equal to 1"),
        (lambda c: c.update(token_cap="lots"), "token_cap", "integer"),
        (
            lambda c: c["tiers"][0]["phases"][0].update(max_attempts=0),
            "tiers[0].phases[0].max_attempts",
            "greater than or equal to 1",
        ),
        (lambda c: c.update(tiers=[]), "tiers", "at least 1"),
        (lambda c: c["tiers"][1].update(tier_index=0), "(root)", "tier_index 0 appears twice"),
        (
            lambda c: c["tiers"][1]["phases"][1].update(phase_id="search-index"),
            "(root)",
            "phase_id 'search-index' appears twice",
        ),
        (
            lambda c: c["tiers"][1]["phases"][1].update(phase_index=0),
            "tiers[1]",
            "phase_index 0 appears twice",
        ),
        (lambda c: c.pop("workspace"), "(root)", "set `workspace` or `repo`"),
        (lambda c: c.update(workspace="/nonexistent/notes"), "workspace", "does not exist"),
    ],
)
def test_rejects_invalid_config_naming_the_json_path(api, run_config, mutate, path, words):
    mutate(run_config)

    errors = _errors(api.post("/api/runs/", run_config, format="json"))

    assert path in errors, errors
    assert words in errors[path]
    assert not Run.objects.exists()


def test_reports_every_bad_field_at_once(api, run_config):
    run_config["tiers"][0]["phases"][0]["complexity"] = "huge"
    scope = run_config["tiers"][1]["phases"][1]["scope"]
    scope["pathz"] = scope.pop("paths")

    errors = _errors(api.post("/api/runs/", run_config, format="json"))

    assert "tiers[0].phases[0].complexity" in errors
    assert errors["tiers[1].phases[1].scope.pathz"] == "unknown field 'pathz'"
    assert "tiers[1].phases[1].scope.paths" in errors


def test_rejects_a_body_that_is_not_an_object(api):
    errors = _errors(api.post("/api/runs/", [1, 2], format="json"))

    assert errors == {"(root)": "a run config must be a JSON object"}


def test_requires_authentication(run_config, db):
    client = APIClient()
    for method, url in [
        ("get", "/api/runs/"),
        ("post", "/api/runs/"),
        ("get", "/api/projects/"),
        ("get", "/api/schema/"),
    ]:
        response = getattr(client, method)(
            url, run_config if method == "post" else None, format="json"
        )
        assert response.status_code == 401, url
    assert not Run.objects.exists()


def test_rejects_a_wrong_token(run_config, db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    assert client.get("/api/runs/").status_code == 401


def test_duplicate_run_id_conflicts(api, run_config):
    assert api.post("/api/runs/", run_config, format="json").status_code == 201

    response = api.post("/api/runs/", run_config, format="json")

    assert response.status_code == 409
    assert "notes-search" in response.json()["detail"]
    assert Run.objects.count() == 1


def test_detail_includes_tiers_phases_and_attempts(api, run_config):
    api.post("/api/runs/", run_config, format="json")

    body = api.get("/api/runs/notes-search/").json()

    assert body["tiers"][0]["phases"][0]["attempts"] == []
    assert body["tiers"][0]["phases"][0]["read_only_context"] == [
        {"path": "notes/models.py", "reason": ""},
        {"path": "docs/schema.md", "reason": "current table layout"},
    ]
    assert api.get("/api/runs/unknown/").status_code == 404


def test_cancel_a_queued_run_then_refuse_again(api, run_config):
    api.post("/api/runs/", run_config, format="json")

    response = api.post("/api/runs/notes-search/cancel/")

    assert response.status_code == 200
    assert response.json()["state"] == RunState.CANCELLED
    run = Run.objects.get()
    assert run.finished_at is not None
    assert "alice" in run.failure_reason
    again = api.post("/api/runs/notes-search/cancel/")
    assert again.status_code == 409
    assert "already CANCELLED" in again.json()["detail"]


def test_list_is_newest_first_and_filters_by_state_and_project(api, run_config):
    for name in ("first", "second", "third"):
        config = copy.deepcopy(run_config)
        config["run_id"] = name
        assert api.post("/api/runs/", config, format="json").status_code == 201
    api.post("/api/runs/second/cancel/")

    listed = api.get("/api/runs/").json()
    assert listed["count"] == 3
    assert [r["run_id"] for r in listed["results"]] == ["third", "second", "first"]
    cancelled = api.get("/api/runs/", {"state": "cancelled"}).json()["results"]
    assert [r["run_id"] for r in cancelled] == ["second"]
    assert api.get("/api/runs/", {"project": "notes"}).json()["count"] == 3
    assert api.get("/api/runs/", {"project": "other"}).json()["count"] == 0
    bad = api.get("/api/runs/", {"state": "sleeping"})
    assert bad.status_code == 400
    ((error),) = bad.json()["errors"]
    assert error["path"] == "state" and "sleeping" in error["message"]


def test_list_is_paginated(api, run_config):
    for number in range(27):
        config = copy.deepcopy(run_config)
        config["run_id"] = f"run-{number}"
        api.post("/api/runs/", config, format="json")

    page = api.get("/api/runs/").json()

    assert page["count"] == 27
    assert len(page["results"]) == 25
    assert len(api.get(page["next"]).json()["results"]) == 2


def test_events_page_after_an_id(api, run_config):
    api.post("/api/runs/", run_config, format="json")
    run = Run.objects.get()
    extra = [RunEvent.objects.create(run=run, kind="note", payload={"n": n}) for n in range(3)]
    first_id = run.events.order_by("id").first().id

    everything = api.get("/api/runs/notes-search/events/").json()
    later = api.get(f"/api/runs/notes-search/events/?after={extra[0].id}").json()
    nothing = api.get(f"/api/runs/notes-search/events/?after={extra[-1].id}").json()

    assert [e["id"] for e in everything["results"]] == [first_id] + [e.id for e in extra]
    assert everything["last_id"] == extra[-1].id
    assert [e["payload"]["n"] for e in later["results"]] == [1, 2]
    assert nothing == {"results": [], "last_id": extra[-1].id, "more": False}
    assert api.get("/api/runs/notes-search/events/?after=x").status_code == 400


def test_events_are_served_in_pages(api, run_config):
    api.post("/api/runs/", run_config, format="json")
    run = Run.objects.get()
    RunEvent.objects.bulk_create(RunEvent(run=run, kind="note") for _ in range(600))

    first = api.get("/api/runs/notes-search/events/").json()
    second = api.get(f"/api/runs/notes-search/events/?after={first['last_id']}").json()

    assert len(first["results"]) == 500 and first["more"] is True
    assert len(second["results"]) == 101 and second["more"] is False


def test_projects_are_listed(api, run_config):
    api.post("/api/runs/", run_config, format="json")

    projects = api.get("/api/projects/").json()["results"]

    assert [(p["name"], p["repository"]) for p in projects] == [("notes", run_config["workspace"])]


def test_same_project_name_with_another_repository_is_refused(api, run_config, tmp_path):
    api.post("/api/runs/", {**run_config, "project": "notes"}, format="json")
    other = tmp_path / "elsewhere" / "notes"
    other.mkdir(parents=True)
    run_config.update(run_id="second", workspace=str(other), project="notes")

    errors = _errors(api.post("/api/runs/", run_config, format="json"))

    assert "already uses repository" in errors["project"]
    assert str(other) in errors["project"]


def test_schema_describes_run_creation(api):
    response = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    schema = response.json()
    assert "/api/runs/" in schema["paths"]
    assert "/api/runs/{run_id}/cancel/" in schema["paths"]
    assert "RunConfig" in schema["components"]["schemas"]


def test_healthz_needs_no_login_and_checks_the_database(client, db):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_phase_rows_keep_the_plan_order(api, run_config):
    api.post("/api/runs/", run_config, format="json")

    ordered = list(Phase.objects.values_list("phase_id", flat=True))

    assert ordered == ["search-index", "search-endpoint", "search-docs"]


def test_only_the_creator_owners_or_staff_may_cancel(api, run_config, charlie):
    from runs.models import ProjectMember
    from tests.conftest import token_client

    api.post("/api/runs/", run_config, format="json")

    hidden = token_client(charlie).post("/api/runs/notes-search/cancel/")
    ProjectMember.objects.create(project=Run.objects.get().project, user=charlie, role="member")
    refused = token_client(charlie).post("/api/runs/notes-search/cancel/")

    assert hidden.status_code == 404
    assert refused.status_code == 403
    assert Run.objects.get().state == RunState.QUEUED
