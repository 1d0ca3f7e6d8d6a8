"""`autopack run` and `autopack demo` as a user runs them, in real subprocesses."""

from __future__ import annotations

import json

import pytest

from runs.models import Run
from runs.states import RunState
from tests.builds import APPROVE, config, phase
from tests.support import autopack, autopack_env, database_url
from tests.test_engine_runs import QUANTITY, REGRESSION

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def cli_env(engine, tmp_path):
    return autopack_env(
        tmp_path / "home", DATABASE_URL=database_url(), AUTOPACK_MODELS=str(engine.AUTOPACK_MODELS)
    )


def write(path, data) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def test_run_executes_in_the_foreground_and_exits_zero_on_success(cli_env, repo, tmp_path):
    replies = write(tmp_path / "replies.json", {"builder": [QUANTITY], "auditor": [APPROVE]})
    run_config = write(tmp_path / "run.json", config(repo, [phase("count", 0, ["inventory/"])]))

    result = autopack("run", run_config, "--provider", f"scripted:{replies}", env=cli_env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no model was called" in result.stdout
    assert "phase count attempt 1: builder anthropic/claude-low-1" in result.stdout
    assert "gate tests: passed" in result.stdout
    assert "Run build: DONE_SUCCESS" in result.stdout
    assert Run.objects.get(run_id="build").state == RunState.DONE_SUCCESS


def test_run_exits_non_zero_when_the_run_fails(cli_env, repo, tmp_path):
    replies = write(tmp_path / "replies.json", {"builder": [REGRESSION]})
    run_config = write(
        tmp_path / "run.json", config(repo, [phase("count", 0, ["inventory/"], max_attempts=1)])
    )

    result = autopack("run", run_config, "--provider", f"scripted:{replies}", env=cli_env)

    assert result.returncode == 1
    assert "run build ended DONE_FAILED" in result.stderr
    assert "phase_failed" in result.stdout


def test_repo_option_overrides_the_workspace_and_detach_only_queues(cli_env, repo, tmp_path):
    data = config(repo, [phase("count", 0, ["inventory/"])])
    data["workspace"] = "/nowhere"
    run_config = write(tmp_path / "run.json", data)

    result = autopack("run", run_config, "--repo", str(repo), "--detach", env=cli_env)

    assert result.returncode == 0, result.stderr
    assert "Queued run build" in result.stdout
    run = Run.objects.get(run_id="build")
    assert (run.state, run.project.repository) == (RunState.QUEUED, str(repo))


def test_run_reports_config_errors_by_json_path(cli_env, repo, tmp_path):
    data = config(repo, [phase("count", 0, ["inventory/"], complexity="huge")])

    result = autopack("run", write(tmp_path / "run.json", data), env=cli_env)

    assert result.returncode == 1
    assert "tiers[0].phases[0].complexity" in result.stderr


def test_unknown_provider_option_is_refused(cli_env, repo, tmp_path):
    run_config = write(tmp_path / "run.json", config(repo, [phase("count", 0, ["inventory/"])]))

    result = autopack("run", run_config, "--provider", "magic", env=cli_env)

    assert result.returncode == 1
    assert "unknown provider 'magic'" in result.stderr
    assert not Run.objects.exists()


def test_demo_fails_once_rolls_back_and_finishes(cli_env):
    result = autopack("demo", env=cli_env)

    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "no model was called" in out
    assert "gate tests: FAILED: 1 test(s) that passed before now fail" in out
    assert "rolled back: gate_failed" in out
    assert ": DONE_SUCCESS" in out
    commits = out.split("(base branch main untouched):")[1].strip().splitlines()
    assert len(commits) == 2 and all("Autopack" in line for line in commits)
