"""Markdown plans: a golden corpus of plans (numbered lists, checkboxes, headings, tabs,
CRLF, duplicate titles, bad tags, missing and inferred paths, ...) read against a real git
repository, each with its expected run config and messages; phase ids that survive
reordering; the round trip config -> markdown -> config; and the three ways in: the API,
the new-run form and `autopack plan`."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.test import Client

from runs.config import RUN_ID_PATTERN, parse_run_config
from runs.engine.plan_markdown import PlanWriteError, write_plan
from runs.engine.plans import read_plan
from runs.models import Project, ProjectMember, Run
from runs.states import RunState
from tests.builds import APPROVE, QUANTITY, git, make_repo
from tests.conftest import token_client
from tests.support import autopack, autopack_env, database_url

FIXTURES = Path(__file__).parent / "fixtures" / "plans"
CORPUS = sorted((FIXTURES / "corpus").glob("*.md"))
USERS = ("owner", "member", "viewer", "stranger", "staff")


def expected(plan: Path) -> dict:
    return json.loads(plan.with_suffix(".json").read_text())


def commit_all(repo: Path) -> Path:
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=Test", "-c", "user.email=test@localhost", "commit", "-qm", "init")
    return repo


@pytest.fixture
def base(tmp_path) -> Path:
    """A folder holding `repo`, a git repository of the corpus's files."""
    shutil.copytree(FIXTURES / "repo", tmp_path / "repo")
    git(tmp_path / "repo", "init", "-q", "-b", "main")
    commit_all(tmp_path / "repo")
    return tmp_path


def read(markdown: str, base: Path, **overrides: str):
    return read_plan(markdown, base_dir=base, overrides=overrides, defaults={"workspace": "repo"})


@pytest.mark.parametrize("plan", CORPUS, ids=[plan.stem for plan in CORPUS])
def test_corpus_plan_reads_as_expected(plan, base):
    want = expected(plan)

    result = read(plan.read_bytes().decode(), base, **want.get("overrides", {}))

    assert [m.as_dict() for m in result.messages] == want["messages"]
    assert result.config == want["config"]
    assert result.inferred == want["inferred"]


def test_the_corpus_keeps_its_crlf_and_tab_bytes():
    crlf = (FIXTURES / "corpus" / "09-crlf.md").read_bytes()
    tabs = (FIXTURES / "corpus" / "08-tabs.md").read_bytes()

    assert crlf.count(b"\r\n") == crlf.count(b"\n") > 5
    assert b"\n\t-\t" in tabs and b"-\tAdd" in tabs
    assert len(CORPUS) >= 25


WITH_CONFIG = [plan for plan in CORPUS if expected(plan)["config"]]


@pytest.mark.parametrize("plan", WITH_CONFIG, ids=[plan.stem for plan in WITH_CONFIG])
def test_a_config_written_as_markdown_reads_back_the_same(plan, base):
    config = expected(plan)["config"]

    markdown = write_plan(config)
    result = read_plan(markdown, base_dir=base)

    assert result.errors == []
    assert result.config == config
    assert parse_run_config(result.config) == parse_run_config(config)
    assert result.inferred == {}  # inferred scopes are written as [paths:...]


def test_the_operator_guide_config_round_trips_once_markdown_can_hold_it(tmp_path):
    data = json.loads((Path(__file__).parent / "fixtures" / "notes_search.json").read_text())

    with pytest.raises(PlanWriteError) as refused:
        write_plan(data)
    data["tiers"][0]["phases"][0]["scope"]["read_only_context"][1].pop("reason")
    markdown = write_plan(data)

    assert refused.value.problems == [
        "tiers[0].phases[0].scope.read_only_context[1].reason cannot be written as markdown: "
        "it would read back as '', not 'current table layout'"
    ]
    back = read_plan(markdown, base_dir=tmp_path, check_repository=False)
    assert parse_run_config(back.config) == parse_run_config(data)
    assert "[id:search-index]" in markdown and "[escalation:progressive] [approval]" in markdown


def ids_by_task(result) -> dict[str, str]:
    return {
        phase["task_name"]: phase["phase_id"]
        for tier in result.config["tiers"]
        for phase in tier["phases"]
    }


def test_phase_ids_survive_reordering_and_insertion(base):
    before = read(
        "# Login\n\n- Add a login form [paths:notes/auth/]\n"
        "- Issue a token [paths:notes/auth/]\n- Document it [paths:docs/]\n",
        base,
    )
    after = read(
        "# Login\n\n## First\n\n- Document it [paths:docs/]\n- Add rate limits [paths:notes/]\n"
        "\n## Then\n\n1. Check the schema [paths:docs/]\n2. Add a login form [paths:notes/]\n"
        "3. Issue a token [paths:notes/auth/tokens.py] [complexity:high]\n",
        base,
    )

    old, new = ids_by_task(before), ids_by_task(after)
    assert {task: new[task] for task in old} == old
    assert old["Add a login form"] == "add-a-login-form-11ae"
    assert [p["phase_index"] for p in after.config["tiers"][1]["phases"]] == [0, 1, 2]


def test_duplicate_tasks_get_distinct_ids_in_order(base):
    plan = "# Flaky\n\n" + "- Fix a flaky test [paths:tests/]\n" * 3

    first, second = read(plan, base), read(plan, base)

    ids = [p["phase_id"] for p in first.config["tiers"][0]["phases"]]
    assert ids == ["fix-a-flaky-test-427d", "fix-a-flaky-test-427d-2", "fix-a-flaky-test-427d-3"]
    assert first.config == second.config


@pytest.mark.parametrize(
    "task",
    ["Écrire la page d'accueil", "添加登录表单", "!!!", "A " + "very long title " * 20, "x"],
)
def test_every_task_gets_an_id_the_run_config_accepts(task, base):
    result = read(f"# Goal\n\n- {task} [paths:notes/]\n", base)

    (phase,) = result.config["tiers"][0]["phases"]
    assert re.match(RUN_ID_PATTERN, phase["phase_id"])
    assert len(phase["phase_id"]) <= 50
    parse_run_config(result.config)


@pytest.fixture
def world(db, base):
    """The corpus repository as project `notes`, with a user of each kind."""
    users = {name: get_user_model().objects.create_user(name) for name in USERS}
    users["staff"].is_staff = True
    users["staff"].save()
    project = Project.objects.create(name="notes", repository=str(base / "repo"))
    for name in ("owner", "member", "viewer"):
        ProjectMember.objects.create(project=project, user=users[name], role=name)
    return {"users": users, "repo": base / "repo", "base": base}


PLAN = (FIXTURES / "corpus" / "17-inferred-from-map.md").read_text()


@pytest.mark.parametrize(
    ("user", "status"),
    [("owner", 200), ("member", 200), ("staff", 200), ("viewer", 403), ("stranger", 403)],
)
def test_api_reads_a_plan_for_those_who_may_run_builds(world, user, status):
    client = token_client(world["users"][user])

    response = client.post(
        "/api/plans/normalize/", {"markdown": PLAN, "project": "notes"}, format="json"
    )

    assert response.status_code == status, response.content[:300]
    if status == 403:
        assert "you may not create runs for notes" in response.json()["detail"]
        return
    body = response.json()
    want = expected(FIXTURES / "corpus" / "17-inferred-from-map.md")
    repo = str(world["repo"])
    assert body["config"] == {**want["config"], "workspace": repo, "project": "notes"}
    assert body["messages"] == want["messages"]
    assert body["inferred"] == [
        {"phase_id": phase_id, "paths": paths} for phase_id, paths in want["inferred"].items()
    ]
    assert not Run.objects.exists()


def test_api_answers_plan_errors_with_a_400_naming_their_lines(world):
    client = token_client(world["users"]["owner"])
    plan = (FIXTURES / "corpus" / "12-unknown-tags.md").read_text()

    response = client.post(
        "/api/plans/normalize/", {"markdown": plan, "repo": str(world["repo"])}, format="json"
    )

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [e["path"] for e in errors] == ["markdown"] * 3
    assert errors[1]["message"].startswith("line 4: unknown tag [read-only]: did you mean")


def test_api_takes_run_id_and_goal_over_the_plan(world):
    client = token_client(world["users"]["member"])

    response = client.post(
        "/api/plans/normalize/",
        {"markdown": PLAN, "repo": str(world["repo"]), "run_id": "mine", "goal": "Mine"},
        format="json",
    )

    config = response.json()["config"]
    assert (config["run_id"], config["goal"], config["workspace"]) == (
        "mine",
        "Mine",
        str(world["repo"]),
    )
    assert response.json()["messages"][0]["message"].startswith("the title ")


def test_api_needs_a_repository_and_a_plan(world):
    client = token_client(world["users"]["owner"])

    no_repository = client.post("/api/plans/normalize/", {"markdown": PLAN}, format="json")
    no_plan = client.post("/api/plans/normalize/", {"project": "notes"}, format="json")

    assert no_repository.status_code == 400
    assert no_repository.json()["errors"][0]["path"] == "repo"
    assert no_plan.status_code == 400
    assert no_plan.json()["errors"][0]["path"] == "markdown"


def test_api_refuses_a_directory_the_user_may_not_make_a_project_of(world, settings):
    elsewhere = make_repo(world["base"] / "elsewhere")
    creator = world["users"]["member"]
    creator.user_permissions.add(Permission.objects.get(codename="add_project"))
    settings.AUTOPACK_REPO_ROOTS = [str(world["base"] / "allowed")]
    body = {"markdown": "# Count\n\n- Count stock [paths:inventory/]\n", "repo": str(elsewhere)}

    outside = token_client(creator).post("/api/plans/normalize/", body, format="json")
    settings.AUTOPACK_REPO_ROOTS = [str(world["base"])]
    inside = token_client(creator).post("/api/plans/normalize/", body, format="json")

    assert outside.status_code == 403
    assert "not under the folders projects may use" in outside.json()["detail"]
    assert inside.status_code == 200, inside.content[:300]


def page_client(world, user: str = "owner") -> Client:
    client = Client()
    client.force_login(world["users"][user])
    return client


def test_the_form_has_a_markdown_tab(world):
    page = page_client(world).get("/runs/new/?tab=markdown").content.decode()

    assert 'name="markdown"' in page and 'value="preview"' in page
    assert 'name="config"' not in page


def test_form_preview_shows_the_config_and_warnings_and_creates_nothing(world):
    form = {"markdown": PLAN, "repo": str(world["repo"]), "action": "preview"}

    response = page_client(world).post("/runs/new/", form)

    page = response.content.decode()
    assert response.status_code == 200
    assert "line 3: no [paths:...]: scope inferred from the repository" in page
    assert "&quot;phase_id&quot;: &quot;let-search-notes-match-words-in-titles-93c9&quot;" in page
    assert "<code>revoke-every-token-of-a-user-at-once-94b7</code>: notes/auth/tokens.py" in page
    assert not Run.objects.exists()


def test_form_names_the_lines_of_plan_errors(world):
    plan = (FIXTURES / "corpus" / "13-bad-values.md").read_text()

    response = page_client(world).post(
        "/runs/new/", {"markdown": plan, "repo": str(world["repo"]), "action": "create"}
    )

    page = response.content.decode()
    assert response.status_code == 400
    assert "The plan has 10 problems" in page
    assert "<code>line 3</code>: [complexity:huge]: &#x27;huge&#x27; is not one of" in page
    assert "Huge change [complexity:huge]" in page  # the pasted plan is kept
    assert not Run.objects.exists()


def test_form_creates_the_run_of_a_plan(world, engine):
    form = {
        "markdown": PLAN,
        "repo": str(world["repo"]),
        "goal": "Search and tokens",
        "run_id": "from-markdown",
        "action": "create",
    }

    response = page_client(world, "member").post("/runs/new/", form)

    assert response.status_code == 302 and response["Location"] == "/runs/from-markdown/"
    run = Run.objects.get(run_id="from-markdown")
    assert run.goal == "Search and tokens" and run.project.name == "notes"
    phases = run.phases.order_by("tier__index", "index")
    assert [(p.phase_id, p.scope_paths) for p in phases] == [
        (
            "let-search-notes-match-words-in-titles-93c9",
            ["notes/search.py", "docs/api.md", "notes/api/routes.py"],
        ),
        (
            "revoke-every-token-of-a-user-at-once-94b7",
            ["notes/auth/tokens.py", "notes/auth/login.py", "README.md"],
        ),
    ]


def test_form_refuses_a_viewer(world):
    response = page_client(world, "viewer").post(
        "/runs/new/", {"markdown": PLAN, "repo": str(world["repo"]), "action": "preview"}
    )

    assert response.status_code == 400
    assert "you may not create runs for" in response.content.decode()


def test_plan_command_writes_the_config_and_round_trips(base, tmp_path):
    plan = tmp_path / "PLAN.md"
    shutil.copy(FIXTURES / "corpus" / "22-all-tags.md", plan)
    out, markdown = tmp_path / "run.json", tmp_path / "back.md"

    call_command("plan", str(plan), "--repo", str(base / "repo"), "--out", str(out))
    call_command("plan", str(out), "--to-markdown", "--out", str(markdown))
    call_command("plan", str(markdown), "--out", str(tmp_path / "again.json"))

    config = json.loads(out.read_text())
    want = expected(FIXTURES / "corpus" / "22-all-tags.md")["config"]
    assert config == {**want, "workspace": str(base / "repo")}
    assert json.loads((tmp_path / "again.json").read_text()) == config


def test_plan_command_reports_errors_by_file_and_line(base, tmp_path, capsys):
    plan = tmp_path / "PLAN.md"
    shutil.copy(FIXTURES / "corpus" / "12-unknown-tags.md", plan)

    with pytest.raises(CommandError, match="3 errors in .*PLAN.md: no run config"):
        call_command("plan", str(plan), "--repo", str(base / "repo"))

    assert f"{plan}:4: error: unknown tag [read-only]" in capsys.readouterr().err


def test_autopack_plan_from_the_command_line(db, base, tmp_path):
    plan = tmp_path / "PLAN.md"
    shutil.copy(FIXTURES / "corpus" / "16-inferred-named.md", plan)
    env = autopack_env(tmp_path / "home", DATABASE_URL=database_url())

    result = autopack(
        "plan",
        str(plan),
        "--repo",
        str(base / "repo"),
        "--out",
        str(tmp_path / "run.json"),
        env=env,
    )

    assert result.returncode == 0, result.stderr
    assert f"{plan}:3: warning: no [paths:...]: scope inferred" in result.stderr
    config = json.loads((tmp_path / "run.json").read_text())
    want = expected(FIXTURES / "corpus" / "16-inferred-named.md")["config"]
    assert config == {**want, "workspace": str(base / "repo")}


@pytest.mark.django_db(transaction=True)
def test_autopack_plan_run_executes_the_plan(engine, repo, tmp_path):
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps({"builder": [QUANTITY], "auditor": [APPROVE]}))
    plan = tmp_path / "PLAN.md"
    plan.write_text("# Stock\n\n- Add quantity_of below remove_item [paths:inventory/]\n")
    env = autopack_env(
        tmp_path / "home", DATABASE_URL=database_url(), AUTOPACK_MODELS=str(engine.AUTOPACK_MODELS)
    )

    result = autopack(
        "plan",
        str(plan),
        "--repo",
        str(repo),
        "--run-id",
        "from-plan",
        "--run",
        "--provider",
        f"scripted:{replies}",
        env=env,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Run from-plan: DONE_SUCCESS" in result.stdout
    assert Run.objects.get(run_id="from-plan").state == RunState.DONE_SUCCESS
