"""What a person meets in the first hour: documented commands that work on a fresh
AUTOPACK_HOME in any order with clean output, configuration checked at start, project
names that do not collide, long task names, routing policies, and errors that say whose
fault they are."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from autopack_site import configuration, embedded_db
from autopack_site.checks import configuration_files
from runs import services
from runs.config import ConfigError
from runs.engine.gates.tests import TestGate
from runs.models import Project
from runs.states import RunState
from tests.builds import APPROVE, config, drive, git, make_repo, phase, start, write_models
from tests.support import autopack, autopack_env, database_url
from tests.test_engine_runs import QUANTITY

pytestmark = pytest.mark.django_db(transaction=True)

# A log line of the default format from any logger: `2026-01-01 10:00:00,000 WARNING x: y`.
LOG_WARNING = re.compile(r"^\S+ \S+ WARNING ", re.MULTILINE)


@pytest.fixture
def fresh_homes(tmp_path):
    homes: list[Path] = []

    def make(name: str) -> Path:
        homes.append(tmp_path / name)
        return homes[-1]

    yield make
    for home in homes:
        if (home / "pgdata").exists():
            embedded_db.stop(home / "pgdata")


def test_run_demo_and_token_work_on_a_fresh_home_and_print_only_progress(fresh_homes, tmp_path):
    repo = make_repo(tmp_path / "inventory")
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps({"builder": [QUANTITY], "auditor": [APPROVE]}))
    run_config = tmp_path / "run.json"
    run_config.write_text(json.dumps(config(repo, [phase("count", 0, ["inventory/"])])))

    first = autopack(
        "run",
        str(run_config),
        "--provider",
        f"scripted:{replies}",
        env=autopack_env(fresh_homes("run-first")),
    )
    second_home = autopack_env(fresh_homes("demo-first"))
    demo = autopack("demo", env=second_home)
    token = autopack("token", "admin", env=second_home)

    assert first.returncode == 0, first.stdout + first.stderr
    assert "Applying" in first.stdout and "database migration(s)" in first.stdout
    assert "Run build: DONE_SUCCESS" in first.stdout
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "DONE_SUCCESS" in demo.stdout
    for result in (first, demo):
        output = result.stdout + result.stderr
        assert not LOG_WARNING.search(output), output
        assert "Traceback" not in output
    assert token.returncode == 1
    assert token.stderr.strip().endswith(
        "No user named 'admin'. Create one in the admin or with `autopack createsuperuser`."
    )


def test_a_database_that_cannot_be_reached_is_one_line_not_a_traceback(tmp_path):
    env = autopack_env(tmp_path / "home", DATABASE_URL="postgresql://nobody@127.0.0.1:9/none")
    (tmp_path / "run.json").write_text("{}")

    result = autopack("run", str(tmp_path / "run.json"), env=env)

    assert result.returncode == 1
    assert "Cannot reach the database" in result.stderr and "Check DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_config_file_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_bytes(b"escalation_chains: \xff\xfe\n")
    env = autopack_env(tmp_path / "home", DATABASE_URL=database_url(), AUTOPACK_MODELS=str(path))

    check = autopack("check", env=env)

    assert check.returncode == 1
    assert "autopack.E001" in check.stderr and "cannot read model config" in check.stderr


def test_run_config_strings_longer_than_what_is_stored_are_refused_by_path(api, repo, engine):
    data = config(repo, [phase("count", 0, ["inventory/"], task_category="x" * 101)])

    response = api.post("/api/runs/", data, format="json")

    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["path"] == "tiers[0].phases[0].task_category"


def test_db_status_and_stop_never_start_the_database(tmp_path):
    env = autopack_env(tmp_path / "home")

    status = autopack("db", "status", env=env)
    stop = autopack("db", "stop", env=env)

    assert status.stdout.startswith("not running:") and stop.stdout.startswith("not running:")
    assert not (tmp_path / "home" / "pgdata").exists()


@pytest.mark.parametrize(
    ("file", "content", "check_id", "says"),
    [
        ("models.yaml", "escalation_chains: [unclosed", "autopack.E001", "is not valid YAML"),
        (
            "models.yaml",
            json.dumps(
                {
                    "escalation_chains": {
                        role: {
                            level: {"models": ["mistral/large"]}
                            for level in ("low", "medium", "high")
                        }
                        for role in ("builder", "auditor")
                    }
                }
            ),
            "autopack.E001",
            "escalation_chains.builder.low.models: 'mistral/large': the provider prefix must "
            "be one of anthropic/, openai/",
        ),
        (
            "prices.yaml",
            "models:\n  openai/gpt-5: {input: cheap, output: 10}\n",
            "autopack.E002",
            "models.openai/gpt-5.input: Input should be a valid decimal",
        ),
    ],
    ids=["broken yaml", "unknown provider", "bad price"],
)
def test_broken_configuration_is_reported_at_start_with_its_id(
    tmp_path, file, content, check_id, says
):
    path = tmp_path / file
    path.write_text(content)
    setting = "AUTOPACK_MODELS" if file == "models.yaml" else "AUTOPACK_PRICES"
    env = autopack_env(tmp_path / "home", DATABASE_URL=database_url(), **{setting: str(path)})

    check = autopack("check", env=env)
    up = autopack("up", "--port", "1", env=env, timeout=120)

    assert check.returncode == 1
    assert f"{setting}: ({check_id})" in check.stderr and str(path) in check.stderr
    assert says in check.stderr
    assert up.returncode == 1 and check_id in up.stderr
    assert "Autopack is up" not in up.stdout


def test_a_changed_file_is_read_again_and_a_broken_change_keeps_the_last_valid(settings, tmp_path):
    path = write_models(tmp_path / "models.yaml", builder={"max_output_tokens": 1000})
    settings.AUTOPACK_MODELS = path
    assert configuration.models().builder.max_output_tokens == 1000

    write_models(path, builder={"max_output_tokens": 2000})
    assert configuration.models().builder.max_output_tokens == 2000

    path.write_text("escalation_chains: [broken")
    assert configuration.models().builder.max_output_tokens == 2000
    assert [check.id for check in configuration_files()] == ["autopack.E001"]


def test_a_bug_ends_the_run_as_an_application_error_unlike_a_user_error(
    engine, fake_llm, repo, monkeypatch
):
    fake_llm.script("builder", QUANTITY)

    def broken(self, workspace):
        return {}["gate"]  # a bug: KeyError

    with monkeypatch.context() as patched:
        patched.setattr(TestGate, "check", broken)
        bug = drive(start(config(repo, [phase("count", 0, ["inventory/"])], run_id="bug")))
    missing_branch = drive(
        start(config(repo, [phase("count", 0, ["inventory/"])], base_branch="trunk", run_id="user"))
    )

    assert (missing_branch.failure_code, missing_branch.failure_kind) == ("repository", "user")
    assert "Base branch 'trunk' does not exist" in missing_branch.failure_reason
    assert (bug.state, bug.failure_code, bug.failure_kind) == (
        RunState.DONE_FAILED,
        "internal_error",
        "application",
    )
    assert bug.failure_reason.startswith("Autopack failed: KeyError('gate') (please report it")
    event = bug.events.get(kind="internal_error").payload
    assert "Traceback" in event["traceback"] and "KeyError" in event["traceback"]
    assert bug.attempts.get().outcome == "internal_error"


def test_a_task_name_of_any_length_is_kept_whole_and_shown_by_its_first_line(
    engine, fake_llm, repo, api, client, alice
):
    long_task = "Add quantity_of(stock, item)\n\n" + "It returns 0 for unknown items. " * 100
    fake_llm.script("builder", QUANTITY)
    fake_llm.script("auditor", APPROVE)
    data = config(repo, [phase("count", 0, ["inventory/"], task_name=long_task)])

    response = api.post("/api/runs/", data, format="json")
    run = drive(services.Run.objects.get(run_id="build"))
    client.force_login(alice)
    page = client.get("/runs/build/").content.decode()

    assert response.status_code == 201, response.json()
    assert run.state == RunState.DONE_SUCCESS, run.failure_reason
    assert run.phases.get().name == long_task.strip()
    assert "<strong>count</strong> Add quantity_of(stock, item)" in page
    assert "The whole task" in page and page.count("It returns 0 for unknown items.") == 100
    assert git(repo, "log", "-1", "--format=%s", "autopack/build") == (
        "autopack: count: Add quantity_of(stock, item)"
    )


def test_default_project_names_never_collide_and_a_name_can_be_chosen(engine, tmp_path):
    first = make_repo(tmp_path / "a" / "app")
    second = make_repo(tmp_path / "b" / "app")

    one = start(config(first, [phase("x", 0, ["inventory/"])], run_id="one"))
    two = start(config(second, [phase("x", 0, ["inventory/"])], run_id="two"))
    again = start(config(first, [phase("x", 0, ["inventory/"])], run_id="again"))
    named = start(
        config(second, [phase("x", 0, ["inventory/"])], run_id="named", project="billing")
    )
    with pytest.raises(ConfigError) as clash:
        start(config(first, [phase("x", 0, ["inventory/"])], run_id="clash", project="billing"))

    assert one.project.name == "app" and two.project.name.startswith("app-")
    assert again.project == one.project
    assert named.project.name == "billing"
    message = clash.value.errors[0]["message"]
    assert str(second) in message and str(first) in message
    assert "autopack run --project NAME" in message
    assert Project.objects.count() == 3


def test_the_cli_names_the_project(engine, tmp_path):
    repo = make_repo(tmp_path / "repo")
    run_config = tmp_path / "run.json"
    run_config.write_text(json.dumps(config(repo, [phase("x", 0, ["inventory/"])])))
    env = autopack_env(tmp_path / "home", DATABASE_URL=database_url())

    result = autopack("run", str(run_config), "--project", "warehouse", "--detach", env=env)

    assert result.returncode == 0, result.stderr
    assert services.Run.objects.get(run_id="build").project.name == "warehouse"


def test_a_best_first_phase_starts_with_the_strongest_model_of_its_chain(engine, fake_llm, repo):
    fake_llm.script("builder", QUANTITY)
    fake_llm.script("auditor", APPROVE)

    run = drive(
        start(config(repo, [phase("count", 0, ["inventory/"], escalation_policy="best_first")]))
    )

    assert run.state == RunState.DONE_SUCCESS, run.failure_reason
    assert run.attempts.get().model == "anthropic/claude-low-2"
    assert fake_llm.calls("builder")[0].body["model"] == "claude-low-2"


def test_an_unknown_escalation_policy_is_refused_with_its_field_path(api, repo, engine):
    data = config(repo, [phase("count", 0, ["inventory/"], escalation_policy="fastest")])

    response = api.post("/api/runs/", data, format="json")

    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["path"] == "tiers[0].phases[0].escalation_policy"
    assert "unknown escalation policy 'fastest'" in error["message"]


def test_the_usage_and_runs_pages_say_what_will_appear_when_empty(client, alice):
    client.force_login(alice)

    usage = client.get("/usage/").content.decode()
    runs = client.get("/").content.decode()

    assert "No model calls yet." in usage and "highest bar" not in usage
    assert "No runs yet." in runs and "autopack run my-run.json" in runs
