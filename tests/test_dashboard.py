"""The dashboard pages and their live channel, without a browser."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from runs import services
from runs.models import ProjectMember
from runs.routing import websocket_urlpatterns
from tests.builds import APPROVE, config, drive, phase, start
from tests.test_engine_runs import QUANTITY, REGRESSION

# The channel layer keeps its group table behind a database alias of its own.
pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "channels_postgres"])


def test_pages_need_a_login(client):
    for url in ("/", "/runs/new/", "/governance/", "/projects/", "/usage/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(
            "/accounts/login/"
        ), url
    assert client.get("/accounts/login/").status_code == 200


def test_run_page_shows_attempts_diffs_gates_and_calls(engine, fake_llm, repo, client, alice):
    fake_llm.script("builder", REGRESSION, QUANTITY)
    fake_llm.script("auditor", APPROVE)
    deliverable = {"deliverables": ["inventory/stock.py::quantity_of"]}
    run = drive(start(config(repo, [phase("count", 0, ["inventory/"], scope=deliverable)])))
    client.force_login(alice)

    page = client.get(f"/runs/{run.run_id}/").content.decode()

    assert "Done Success" in page
    assert "Attempt 1" in page and "Attempt 2" in page
    assert "gate_failed" in page and "1 test(s) that passed before now fail" in page
    assert "Diff: inventory/stock.py" in page and 'class="gi"' in page  # highlighted
    assert page.index("tests: FAILED") < page.index("deliverables: passed")  # failing first
    assert "Auditor:</strong> approve" in page
    assert "2 model calls" in page
    assert 'class="bar FAILED"' in page and 'class="bar PASSED"' in page
    assert "savepoint" in page  # the event log


def test_runs_list_filters_and_shows_progress(engine, fake_llm, repo, client, alice):
    fake_llm.script("builder", QUANTITY)
    fake_llm.script("auditor", APPROVE)
    done = drive(start(config(repo, [phase("count", 0, ["inventory/"])], run_id="finished")))
    start(config(repo, [phase("count", 0, ["inventory/"])], run_id="queued-one"))
    client.force_login(alice)

    everything = client.get("/").content.decode()
    only_done = client.get("/?state=DONE_SUCCESS").content.decode()

    assert everything.index("/runs/queued-one/") < everything.index("/runs/finished/")
    assert "1/1" in everything and "0/1" in everything
    assert "/runs/finished/" in only_done and "/runs/queued-one/" not in only_done
    assert done.state == "DONE_SUCCESS"


def test_new_run_form_names_each_bad_field_and_creates_good_ones(engine, repo, client, alice):
    client.force_login(alice)
    bad = config(repo, [phase("count", 0, ["inventory/"], complexity="huge")])
    bad["colour"] = "blue"

    response = client.post("/runs/new/", {"config": json.dumps(bad)})

    page = response.content.decode()
    assert response.status_code == 400
    assert "<code>tiers[0].phases[0].complexity</code>" in page
    assert "<code>colour</code>: unknown field" in page
    assert "&quot;colour&quot;" in page  # the pasted text is kept
    broken = client.post("/runs/new/", {"config": "{not json"})
    assert "not valid JSON" in broken.content.decode()

    good = client.post(
        "/runs/new/", {"config": json.dumps(config(repo, [phase("count", 0, ["inventory/"])]))}
    )
    assert good.status_code == 302 and good["Location"] == "/runs/build/"


def test_cancel_button_only_for_users_who_may_cancel(engine, repo, client, alice, charlie):
    run = services.create_run(
        config(repo, [phase("count", 0, ["inventory/"])]), created_by=alice, enqueue=False
    )
    client.force_login(charlie)
    assert client.get(f"/runs/{run.run_id}/").status_code == 404  # not a member
    ProjectMember.objects.create(project=run.project, user=charlie, role="member")
    assert "Cancel run" not in client.get(f"/runs/{run.run_id}/").content.decode()
    assert client.post(f"/runs/{run.run_id}/cancel/").status_code == 403

    client.force_login(alice)
    assert "Cancel run" in client.get(f"/runs/{run.run_id}/").content.decode()
    client.post(f"/runs/{run.run_id}/cancel/")
    run.refresh_from_db()
    assert run.state == "CANCELLED"
    assert "Resume from the last savepoint" in client.get(f"/runs/{run.run_id}/").content.decode()


def test_fragments_endpoint_serves_the_live_parts_after_an_event(engine, repo, client, alice):
    run = start(config(repo, [phase("count", 0, ["inventory/"])]))
    client.force_login(alice)
    first = client.get(f"/runs/{run.run_id}/fragments/?after=0").json()
    services.record_event(run, "warning", message="disk nearly full")

    later = client.get(f"/runs/{run.run_id}/fragments/?after={first['last_id']}").json()

    unchanged = client.get(f"/runs/{run.run_id}/fragments/?after={later['last_id']}").json()
    assert unchanged == {"last_id": later["last_id"]}
    assert set(first["html"]) == {"run-header", "phases", "timeline"}
    assert "disk nearly full" in later["log"] and "run_created" not in later["log"]
    assert later["last_id"] > first["last_id"]


def test_usage_and_projects_pages_render(engine, fake_llm, repo, client, alice):
    fake_llm.script("builder", REGRESSION, QUANTITY)
    fake_llm.script("auditor", APPROVE)
    run = drive(start(config(repo, [phase("count", 0, ["inventory/"])])))
    client.force_login(alice)

    usage = client.get("/usage/").content.decode()
    project = client.get(f"/projects/{run.project_id}/").content.decode()

    assert "Tokens by model" in usage and "anthropic/claude-low-1" in usage and "<rect" in usage
    assert "Open issues" in project and "test_cannot_remove_more_than_on_hand" in project


def _socket(path: str, user) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
    communicator.scope["user"] = user
    return communicator


def test_run_socket_catches_up_then_pushes_events_through_the_real_layer(engine, repo, alice):
    run = start(config(repo, [phase("count", 0, ["inventory/"])]))

    async def scenario() -> tuple[dict, dict]:
        socket = _socket(f"/ws/runs/{run.run_id}/?after=0", alice)
        connected, _ = await socket.connect()
        assert connected
        caught_up = await socket.receive_json_from(timeout=10)
        await database_sync_to_async(services.record_event)(
            run, "warning", message="from another process"
        )
        pushed = await socket.receive_json_from(timeout=10)
        await socket.disconnect()
        return caught_up, pushed

    caught_up, pushed = async_to_sync(scenario)()

    assert "run_created" in caught_up["log"] and caught_up["html"]["phases"]
    assert "from another process" in pushed["log"] and pushed["last_id"] > caught_up["last_id"]


def test_sockets_refuse_anonymous_visitors(engine, repo):
    from django.contrib.auth.models import AnonymousUser

    run = start(config(repo, [phase("count", 0, ["inventory/"])]))

    async def scenario() -> bool:
        socket = _socket(f"/ws/runs/{run.run_id}/", AnonymousUser())
        connected, _ = await socket.connect()
        return connected

    assert async_to_sync(scenario)() is False


def test_runs_list_socket_hears_about_new_runs(engine, repo, alice):
    async def scenario() -> dict:
        socket = _socket("/ws/runs/", alice)
        assert (await socket.connect())[0]
        await database_sync_to_async(start)(
            config(repo, [phase("count", 0, ["inventory/"])], run_id="fresh-run")
        )
        update = await socket.receive_json_from(timeout=10)
        await socket.disconnect()
        return update

    assert "fresh-run" in async_to_sync(scenario)()["html"]["run-rows"]
