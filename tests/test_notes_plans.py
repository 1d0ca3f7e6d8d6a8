"""Plans from notes: the Planner (the fake model server, through the real SDK) turns notes
into a markdown plan; a valid plan is accepted, an invalid one is sent back once with its
problems by line and then accepted or refused; the calls are budgeted and recorded against
the project, with no run; and nothing runs before a person accepts the plan, whether from
`autopack plan --from-notes`, the API or the new-run form."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client

from runs.models import Project, ProjectMember, Run
from runs.states import RunState
from telemetry.models import LlmCall
from tests.builds import APPROVE, QUANTITY, write_models
from tests.conftest import token_client
from tests.fake_llm import Reply
from tests.test_api_contract import documented
from tests.test_notes_plans_engine import INVALID, NOTES, VALID, fenced

PLANNER = "anthropic/claude-planner"


@pytest.fixture
def planner(engine, fake_llm, tmp_path):
    """The Planner is anthropic/claude-planner on the fake server, with a price."""
    engine.AUTOPACK_MODELS = write_models(tmp_path / "models.yaml", planning={"model": PLANNER})
    engine.AUTOPACK_PRICES = tmp_path / "prices.yaml"
    engine.AUTOPACK_PRICES.write_text(json.dumps({"models": {PLANNER: {"input": 3, "output": 15}}}))
    return fake_llm


@pytest.fixture
def notes(tmp_path) -> Path:
    path = tmp_path / "NOTES.md"
    path.write_text(NOTES)
    return path


def plan_command(notes: Path, repo: Path, *options: str) -> None:
    call_command("plan", str(notes), "--from-notes", "--repo", str(repo), *options)


@pytest.mark.django_db
def test_autopack_plan_from_notes_prints_the_plan_and_records_the_call(
    planner, repo, notes, capsys
):
    planner.script("planner", fenced(VALID))

    plan_command(notes, repo)

    out, err = capsys.readouterr()
    assert out == VALID
    assert f"asking the planner {PLANNER} …" in err
    call = LlmCall.objects.get()
    assert (call.role, call.run, call.project.repository) == ("planner", None, str(repo))
    assert call.model == "claude-planner" and call.response_text == fenced(VALID)
    assert call.prompt_tokens > 0 and call.completion_tokens > 0
    assert call.cost_usd == Decimal(call.prompt_tokens * 3 + call.completion_tokens * 15) / 10**6
    assert f"1 call, {call.total_tokens:,} tokens, ${call.cost_usd:.4f}" in err
    assert "inventory/stock.py" in planner.calls("planner")[0].prompt
    assert "`python -m pytest` runs for every phase" in planner.calls("planner")[0].prompt
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_a_plan_corrected_once_is_written_with_its_warnings(planner, repo, notes, tmp_path, capsys):
    planner.script("planner", fenced(INVALID), VALID)
    out = tmp_path / "PLAN.md"

    plan_command(notes, repo, "--out", str(out))

    err = capsys.readouterr().err
    assert out.read_text() == VALID
    assert "the plan had 6 problems; sent back to the planner once" in err
    first, second = planner.calls("planner")
    assert second.body["messages"][1] == {"role": "assistant", "content": fenced(INVALID)}
    assert "- line 3: unknown tag [size]" in second.body["messages"][2]["content"]
    assert LlmCall.objects.filter(role="planner", run=None).count() == 2
    assert "2 calls" in err
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_a_plan_wrong_twice_exits_non_zero_listing_its_problems(planner, repo, notes, capsys):
    planner.script("planner", INVALID, INVALID)

    with pytest.raises(CommandError, match="refused after one correction: 6 problems"):
        plan_command(notes, repo, "--run", "--yes")

    out, err = capsys.readouterr()
    assert out == INVALID
    assert "plan:3: error: unknown tag [size]" in err
    assert "plan:6: error: no acceptance criteria" in err
    assert len(planner.calls("planner")) == 2 and LlmCall.objects.count() == 2
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_run_without_a_terminal_or_yes_starts_nothing_and_says_how_to_accept(
    planner, repo, notes, capsys
):
    planner.script("planner", VALID)

    with pytest.raises(CommandError) as refused:
        plan_command(notes, repo, "--run", "--run-id", "counted")

    assert "run counted not started" in str(refused.value)
    assert "--yes" in str(refused.value) and "--out FILE" in str(refused.value)
    assert capsys.readouterr().out == VALID
    assert not Run.objects.exists()


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.django_db
def test_run_on_a_terminal_asks_and_a_no_starts_nothing(planner, repo, notes, monkeypatch, capsys):
    planner.script("planner", VALID)
    monkeypatch.setattr("sys.stdin", Terminal("n\n"))

    plan_command(notes, repo, "--run", "--run-id", "counted")

    out, err = capsys.readouterr()
    assert out.endswith("Start run counted with this plan? [y/N] ")
    assert "run counted not started" in err
    assert not Run.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_run_with_yes_builds_the_accepted_plan(planner, repo, notes, capsys):
    planner.script("planner", VALID)
    planner.script("builder", QUANTITY)
    planner.script("auditor", APPROVE)

    plan_command(notes, repo, "--run", "--yes", "--run-id", "counted")

    run = Run.objects.get(run_id="counted")
    assert run.state == RunState.DONE_SUCCESS
    assert run.goal == "Count the stock" and run.project.repository == str(repo)
    assert LlmCall.objects.get(role="planner").project == run.project
    assert "Run counted: DONE_SUCCESS" in capsys.readouterr().out


@pytest.mark.django_db
def test_the_planning_budget_refuses_before_anything_is_sent(
    planner, engine, repo, notes, tmp_path
):
    engine.AUTOPACK_MODELS = write_models(
        tmp_path / "tight.yaml", planning={"model": PLANNER, "token_cap": 500}
    )

    with pytest.raises(CommandError, match="planning token cap 500 reached"):
        plan_command(notes, repo)

    assert planner.calls() == [] and not LlmCall.objects.exists()


@pytest.mark.django_db
def test_the_provider_option_answers_for_the_planner_too(planner, repo, notes, tmp_path, capsys):
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps({"planner": [VALID]}))

    plan_command(notes, repo, "--provider", f"scripted:{replies}")

    out, err = capsys.readouterr()
    assert out == VALID and "1 call, 0 tokens, $0.0000" in err
    assert LlmCall.objects.get().provider == "scripted"
    assert planner.calls() == []


@pytest.mark.django_db
def test_to_markdown_and_from_notes_do_not_go_together(notes):
    with pytest.raises(CommandError, match="--to-markdown and --from-notes"):
        call_command("plan", str(notes), "--from-notes", "--to-markdown")


@pytest.fixture
def world(db, repo):
    users = {name: get_user_model().objects.create_user(name) for name in ("owner", "viewer")}
    project = Project.objects.create(name="inventory", repository=str(repo))
    for name in ("owner", "viewer"):
        ProjectMember.objects.create(project=project, user=users[name], role=name)
    return {"users": users, "project": project, "repo": repo}


def ask_api(world, user: str = "owner", **body):
    client = token_client(world["users"][user])
    body = {"markdown": NOTES, "project": "inventory", "from_notes": True} | body
    response = client.post("/api/plans/normalize/", body, format="json")
    documented("POST", "/api/plans/normalize/", response)
    return response


def test_api_drafts_a_plan_from_notes_to_review(planner, world):
    planner.script("planner", fenced(INVALID), fenced(VALID))

    response = ask_api(world)

    assert response.status_code == 200, response.content[:300]
    body = response.json()
    assert body["markdown"] == VALID
    assert body["config"]["workspace"] == str(world["repo"])
    assert body["config"]["project"] == "inventory"
    call = LlmCall.objects.filter(role="planner").last()
    assert body["planner"] == {
        "model": PLANNER,
        "calls": 2,
        "tokens": sum(LlmCall.objects.values_list("charged_tokens", flat=True)),
        "cost_usd": f"{sum(LlmCall.objects.values_list('cost_usd', flat=True)):.6f}",
    }
    assert call.project == world["project"] and call.run is None
    assert not Run.objects.exists()
    usage = token_client(world["users"]["owner"]).get("/api/usage/?group_by=run").json()
    assert [(row["group"], row["calls"]) for row in usage["results"]] == [("-", 2)]


def test_api_reads_a_plan_as_before_without_from_notes(planner, world):
    response = ask_api(world, markdown=VALID, from_notes=False)

    assert response.status_code == 200
    assert "markdown" not in response.json() and "planner" not in response.json()
    assert planner.calls() == []


def test_api_refuses_a_plan_wrong_twice_with_its_lines_and_the_plan(planner, world):
    planner.script("planner", INVALID, INVALID)

    response = ask_api(world)

    assert response.status_code == 400
    body = response.json()
    assert body["markdown"] == INVALID and body["planner"]["calls"] == 2
    messages = [error["message"] for error in body["errors"]]
    assert messages[0].startswith("line 3: unknown tag [size]")
    assert "line 6: no acceptance criteria: add at least one nested bullet" in messages[-1]
    assert {error["path"] for error in body["errors"]} == {"markdown"}
    assert not Run.objects.exists()


def test_api_refuses_a_viewer_before_the_planner_is_asked(planner, world):
    response = ask_api(world, "viewer")

    assert response.status_code == 403
    assert planner.calls() == [] and not LlmCall.objects.exists()


def test_api_answers_a_failing_provider_with_a_502(planner, world):
    planner.script("planner", Reply(status=400))

    response = ask_api(world)

    assert response.status_code == 502
    assert response.json()["detail"].startswith(f"the planner {PLANNER} failed: ")
    assert LlmCall.objects.get().error  # the failed call is recorded too


def test_api_names_a_missing_provider_and_a_git_url(planner, world, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    remote = Project.objects.create(name="shop", repository="https://example.com/shop.git")
    ProjectMember.objects.create(project=remote, user=world["users"]["owner"], role="owner")

    unconfigured = ask_api(world)
    url = ask_api(world, project="shop")

    assert unconfigured.status_code == 400
    (error,) = unconfigured.json()["errors"]
    assert error["path"] == "from_notes"
    assert "needs the anthropic provider, which is not configured" in error["message"]
    assert url.status_code == 400
    assert "https://example.com/shop.git is a git URL" in url.json()["errors"][0]["message"]
    assert planner.calls() == []


def page_post(world, **form):
    client = Client()
    client.force_login(world["users"]["owner"])
    return client.post("/runs/new/", {"repo": str(world["repo"])} | form)


def test_form_drafts_the_plan_into_the_text_box_and_creates_nothing(planner, world):
    planner.script("planner", VALID)

    response = page_post(world, markdown=NOTES, action="draft")

    page = response.content.decode()
    assert response.status_code == 200
    assert f"Drafted by the Planner ({PLANNER}) from your notes" in page
    assert "- Add quantity_of below remove_item [paths:inventory/]" in page  # in the textarea
    assert "We need a way" not in page
    assert "&quot;deliverables&quot;: [" in page  # the run config's preview
    assert not Run.objects.exists()


def test_form_creates_the_run_once_the_person_sends_the_plan(planner, world):
    planner.script("planner", VALID)
    drafted = page_post(world, markdown=NOTES, action="draft")
    assert drafted.status_code == 200

    response = page_post(world, markdown=VALID, run_id="counted", action="create")

    assert response.status_code == 302
    assert Run.objects.get(run_id="counted").project == world["project"]


def test_form_shows_a_refused_plan_with_its_problems(planner, world):
    planner.script("planner", INVALID, INVALID)

    response = page_post(world, markdown=NOTES, action="draft")

    page = response.content.decode()
    assert response.status_code == 400
    assert "The plan has 6 problems" in page and "refused after one correction" in page
    assert "<code>line 6</code>: no acceptance criteria" in page
    assert "Document it [paths:docs/]" in page  # the refused plan, to fix
    assert 'id="plan-preview"' not in page
    assert not Run.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_migration_gives_earlier_calls_their_runs_project_and_back(run_config):
    from runs import services

    run = services.create_run(run_config, enqueue=False)
    fields = {"provider": "anthropic", "model": "m", "max_tokens": 1, "duration_ms": 1}
    earlier = LlmCall.objects.create(run=run, role="builder", **fields)
    LlmCall.objects.filter(pk=earlier.pk).update(project=None)
    runless = LlmCall.objects.create(project=run.project, role="planner", **fields)

    call_command("migrate", "telemetry", "0003", verbosity=0)
    call_command("migrate", "telemetry", verbosity=0)

    assert LlmCall.objects.get(pk=earlier.pk).project == run.project
    assert not LlmCall.objects.filter(pk=runless.pk).exists()  # going back, it had no run
