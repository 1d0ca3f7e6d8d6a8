"""Real projects with dependencies, from the package registries: Autopack builds each
one's environment, runs its own tests at baseline, lands a correct change, refuses a
change that breaks a tested function (naming the test), and reuses the environment on
the next run. The model is the fake server; everything else is real."""

from __future__ import annotations

from pathlib import Path

import pytest

from runs.models import TestBaseline
from runs.states import AttemptState, RunState
from tests.builds import APPROVE, config, drive, git, phase, start
from tests.real_projects import FLASK, PROJECTS, RealProject

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="session")
def downloads(tmp_path_factory):
    return tmp_path_factory.mktemp("downloads")


def one_phase(repo, project: RealProject, run_id: str, **extra) -> dict:
    return config(repo, [phase("change", 0, project.scope, **extra)], run_id=run_id)


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: p.name)
def test_a_real_project_lands_a_correct_change_and_refuses_a_breaking_one(
    project, engine, fake_llm, tmp_path, downloads
):
    repo = project.checkout(downloads, tmp_path / project.name)
    fake_llm.script("builder", project.bad, project.good, project.good)
    fake_llm.script("auditor", APPROVE, APPROVE)

    first = drive(start(one_phase(repo, project, f"{project.name}-first")))
    second = drive(start(one_phase(repo, project, f"{project.name}-second")))

    assert first.state == RunState.DONE_SUCCESS, first.failure_reason
    environment = first.events.get(kind="environment").payload
    assert environment["toolchain"] == project.toolchain
    baseline = first.events.filter(kind="baseline").first().payload
    assert baseline["ran"] > 0 and not baseline["problem"], baseline
    bad, good = first.attempts.order_by("number")
    assert bad.outcome == "gate_failed"
    assert project.broken in bad.feedback and "passed before your change" in bad.feedback
    assert project.broken in fake_llm.calls("builder")[1].prompt
    assert good.state == AttemptState.PASSED
    gate = good.gate_results[-1]["details"]
    assert gate["ran"] >= baseline["ran"] and gate["newly_failing"] == []
    assert git(repo, "diff", "--stat", "main", first.integration_branch)  # the change landed
    # The second run reuses the environment and the baseline taken on the same commit.
    assert second.state == RunState.DONE_SUCCESS, second.failure_reason
    again = second.events.get(kind="environment").payload
    assert again["from_cache"] is True and again["key"] == environment["key"]
    assert second.events.get(kind="baseline").payload["cached"] is True
    assert TestBaseline.objects.filter(project=first.project, commit=first.base_commit).count() == 1


def test_dependencies_resolve_as_of_the_commit_date(engine, fake_llm, tmp_path, downloads):
    repo = FLASK.checkout(downloads, tmp_path / "flask")
    fake_llm.script("builder", FLASK.good)
    fake_llm.script("auditor", APPROVE)

    run = drive(start(one_phase(repo, FLASK, "flask-dated")))

    assert run.state == RunState.DONE_SUCCESS, run.failure_reason
    environment = run.environment
    assert environment["resolution"] == "as of 2023-02-15"
    pins = (Path(environment["path"]) / "autopack-requirements.txt").read_text()
    # Today's Werkzeug 3 cannot even be imported by this Flask; the one of its day can.
    assert "werkzeug==2.2.3" in pins.lower()
