"""Project environments from the run's point of view: a setup or a baseline that cannot
work stops the run before any model call, saying what to set; the install step keeps
the network but not Autopack's secrets; a phase that changes a manifest (approved, since
manifests are protected) gets a rebuilt environment before its gate."""

from __future__ import annotations

from pathlib import Path

import pytest

from governance.models import GovernanceRequest
from governance.services import approve
from runs.models import Project
from runs.states import AttemptState, RunState
from tests.builds import APPROVE, block, config, drive, git, phase, start
from tests.real_projects import FLASK
from tests.test_engine_runs import QUANTITY, REGRESSION

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="session")
def downloads(tmp_path_factory):
    return tmp_path_factory.mktemp("downloads")


def test_tests_that_cannot_run_at_baseline_stop_the_run_before_any_model_call(
    engine, fake_llm, tmp_path, downloads
):
    repo = FLASK.checkout(downloads, tmp_path / "flask")
    # Only pytest is installed: flask's conftest cannot import Werkzeug.
    data = config(repo, [phase("change", 0, FLASK.scope)], setup_command="pip install pytest")

    run = drive(start(data))

    assert (run.state, run.failure_code) == (RunState.DONE_FAILED, "tests_cannot_run")
    assert fake_llm.seen == [] and run.tokens_used == 0
    assert "The project's tests cannot run on" in run.failure_reason
    assert "pytest exit code 4" in run.failure_reason
    assert "ModuleNotFoundError" in run.failure_reason  # the runner's own words
    assert "set `setup_command`" in run.failure_reason
    assert not run.attempts.exists()


def test_a_setup_that_fails_stops_the_run_with_the_installer_output(engine, fake_llm, repo):
    (repo / "requirements.txt").write_text("no-such-package-autopack-test==0.0.1\n")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=T", "-c", "user.email=t@l", "commit", "-qm", "deps")

    run = drive(start(config(repo, [phase("count", 0, ["inventory/"])])))

    assert (run.state, run.failure_code) == (RunState.DONE_FAILED, "setup_failed")
    assert fake_llm.seen == []
    assert "resolving the dependencies failed" in run.failure_reason
    assert "no-such-package-autopack-test" in run.failure_reason  # uv's own message
    assert "Set `setup_command`" in run.failure_reason
    assert "setup_failed" in run.events.values_list("kind", flat=True)


def test_the_install_step_has_the_network_but_not_autopack_s_secrets(
    engine, fake_llm, repo, monkeypatch
):
    home = engine.AUTOPACK_HOME
    home.mkdir(parents=True, exist_ok=True)
    (home / "secret_key").write_text("secret-key-value-1234567890\n")
    (home / "admin_password").write_text("admin-password-value-123\n")
    monkeypatch.setenv("RELEASE_PASSPHRASE", "passphrase-value-123456")
    probe = (
        "pip install --quiet pytest && "
        f"(cat {home}/secret_key {home}/admin_password; ls {home}; env) "
        "> $AUTOPACK_ENV/probe.txt 2>&1; true"
    )
    fake_llm.script("builder", QUANTITY)
    fake_llm.script("auditor", APPROVE)

    run = drive(start(config(repo, [phase("count", 0, ["inventory/"])], setup_command=probe)))

    assert run.state == RunState.DONE_SUCCESS, run.failure_reason
    seen = (Path(run.environment["path"]) / "probe.txt").read_text()
    assert "No such file or directory" in seen
    for secret in (
        "secret-key-value",
        "admin-password-value",
        "passphrase-value",
        "sk-ant-test-key",
        "sk-test-openai-key",
    ):
        assert secret not in seen
    assert run.environment["resolution"] == "setup_command"


TOML_TEST = (
    "import toml\n\nimport flask\n\n\n"
    "def test_config_from_a_toml_file(tmp_path):\n"
    "    path = tmp_path / 'config.toml'\n"
    "    path.write_text('TEST_KEY = \"foo\"\\n')\n"
    "    app = flask.Flask(__name__)\n"
    "    assert app.config.from_file(str(path), toml.load)\n"
    "    assert app.config['TEST_KEY'] == 'foo'\n"
)


def test_a_phase_that_changes_a_manifest_gets_a_rebuilt_environment_before_its_gate(
    engine, fake_llm, tmp_path, downloads, alice
):
    # The phase's new test needs a library Flask's tests never used: only a change to
    # the test requirements (a protected manifest, so a person approves it) can pass.
    repo = FLASK.checkout(downloads, tmp_path / "flask")
    required = "tests/test_config_toml.py::test_config_from_a_toml_file"
    test_only = block("tests/test_config_toml.py", "", TOML_TEST)
    with_requirement = test_only + block(
        "requirements/tests.txt", "pytest==7.2.0\n", "pytest==7.2.0\ntoml==0.10.2\n"
    )
    fake_llm.script("builder", test_only, with_requirement)
    fake_llm.script("auditor", APPROVE)
    data = config(
        repo,
        [
            phase(
                "toml",
                0,
                ["tests/", "requirements/"],
                acceptance_criteria=[f"{required} passes"],
            )
        ],
    )

    waiting = drive(start(data))

    first, second = waiting.attempts.order_by("number")
    assert first.outcome == "gate_failed"
    assert "tests/test_config_toml.py could not be loaded" in first.feedback
    assert "No module named 'toml'" in first.feedback
    assert waiting.state == RunState.AWAITING_APPROVAL
    request = GovernanceRequest.objects.get()
    assert request.protected_paths == ["requirements/tests.txt"]

    approve(request, alice)
    run = drive(waiting)

    assert run.state == RunState.DONE_SUCCESS, run.failure_reason
    second.refresh_from_db()
    assert second.state == AttemptState.PASSED
    assert second.gate_results[-1]["details"]["required"] == {required: "passed"}
    environments = [e.payload for e in run.events.filter(kind="environment").order_by("id")]
    assert len(environments) == 2 and environments[0]["key"] != environments[1]["key"]
    assert environments[1]["from_cache"] is False


NEW_TEST = block(
    "tests/test_quantity.py",
    "",
    "from inventory.stock import quantity_of\n\n\n"
    "def test_unknown_item_is_zero():\n    assert quantity_of({}, 'x') == 0\n",
)


def test_a_phase_with_its_own_test_command_still_cannot_break_the_suite(engine, fake_llm, repo):
    own = "python -m pytest tests/test_quantity.py"
    fake_llm.script("builder", QUANTITY + NEW_TEST + REGRESSION, QUANTITY + NEW_TEST)
    fake_llm.script("auditor", APPROVE)

    run = drive(
        start(config(repo, [phase("count", 0, ["inventory/", "tests/"], test_command=own)]))
    )

    assert run.state == RunState.DONE_SUCCESS, run.failure_reason
    first, second = run.attempts.order_by("number")
    assert first.outcome == "gate_failed"
    assert "tests/test_stock.py::test_cannot_remove_more_than_on_hand" in first.feedback
    gates = {gate["name"]: gate for gate in second.gate_results}
    assert gates["tests"]["details"]["command"] == "python -m pytest"
    assert gates["phase tests"]["details"]["command"] == own
    assert gates["phase tests"]["details"]["required"] == {
        "tests/test_quantity.py::test_unknown_item_is_zero": "passed"
    }


def test_project_commands_are_set_over_the_api_by_staff(api, charlie, repo, engine):
    from tests.conftest import token_client

    project = Project.objects.create(name="inventory", repository=str(repo))
    url = f"/api/projects/{project.pk}/"

    refused = token_client(charlie).patch(url, {"setup_command": "make deps"}, format="json")
    changed = api.patch(
        url,
        {
            "setup_command": "make deps",
            "test_command": "make check",
            "dependency_resolution": "newest",
        },
        format="json",
    )
    unknown = api.patch(url, {"setup_comand": "x", "name": "other"}, format="json")

    assert refused.status_code == 404  # not a member: the project is not there for them
    assert changed.status_code == 200, changed.json()
    project.refresh_from_db()
    assert (project.setup_command, project.test_command, project.dependency_resolution) == (
        "make deps",
        "make check",
        "newest",
    )
    assert unknown.status_code == 400
    assert unknown.json() == {
        "errors": [
            {"path": "setup_comand", "message": "unknown field"},
            {"path": "name", "message": "cannot be changed"},
        ]
    }


def test_a_baseline_that_could_not_run_is_taken_again_not_reused(engine, fake_llm, repo, tmp_path):
    # The first run's tests time out; with more time the second run takes them again.
    slow = "sleep 3 && python -m pytest"
    engine.AUTOPACK_GATE_TIMEOUT = 1
    first = drive(start(config(repo, [phase("count", 0, ["inventory/"])], test_command=slow)))
    engine.AUTOPACK_GATE_TIMEOUT = 60
    fake_llm.script("builder", QUANTITY)
    fake_llm.script("auditor", APPROVE)
    second = drive(
        start(config(repo, [phase("count", 0, ["inventory/"])], test_command=slow, run_id="again"))
    )

    assert (first.failure_code, "did not finish within 1 s" in first.failure_reason) == (
        "tests_cannot_run",
        True,
    )
    assert second.state == RunState.DONE_SUCCESS, second.failure_reason
    assert second.events.get(kind="baseline").payload["cached"] is False


def test_a_failing_command_whose_tests_cannot_be_read_stops_the_run_at_baseline(
    engine, fake_llm, repo
):
    run = drive(start(config(repo, [phase("count", 0, ["inventory/"])], test_command="make check")))

    assert (run.state, run.failure_code) == (RunState.DONE_FAILED, "tests_cannot_run")
    assert "exits with 2 before any change" in run.failure_reason
    assert "Check `test_command`" in run.failure_reason
    assert fake_llm.seen == []


def test_a_setup_command_that_installs_the_project_does_not_hide_the_worktree(
    engine, fake_llm, repo
):
    fake_llm.script("builder", QUANTITY + NEW_TEST)
    fake_llm.script("auditor", APPROVE)
    data = config(
        repo,
        [phase("count", 0, ["inventory/", "tests/"])],
        setup_command="pip install --quiet . pytest",
    )

    run = drive(start(data))

    # The new test imports quantity_of, which only the worktree's copy has.
    assert run.state == RunState.DONE_SUCCESS, run.failure_reason
    gate = run.attempts.get().gate_results[-1]["details"]
    assert gate["required"] == {"tests/test_quantity.py::test_unknown_item_is_zero": "passed"}


def test_a_phase_command_that_cannot_run_stops_the_run_unless_it_names_files_to_write(
    engine, fake_llm, repo
):
    typo = drive(
        start(
            config(
                repo,
                [
                    phase(
                        "count",
                        0,
                        ["inventory/"],
                        test_command="python -m pytest tests/test_stok.py",
                    )
                ],
                run_id="typo",
            )
        )
    )
    fake_llm.script("builder", QUANTITY + NEW_TEST)
    fake_llm.script("auditor", APPROVE)
    to_write = drive(
        start(
            config(
                repo,
                [
                    phase(
                        "count",
                        0,
                        ["inventory/", "tests/"],
                        test_command="python -m pytest tests/test_quantity.py",
                    )
                ],
                run_id="to-write",
            )
        )
    )

    assert (typo.failure_code, len(fake_llm.calls("builder"))) == ("tests_cannot_run", 1)
    assert "file or directory not found: tests/test_stok.py" in typo.failure_reason
    assert to_write.state == RunState.DONE_SUCCESS, to_write.failure_reason


def test_a_bare_pytest_command_sees_the_run_s_own_code(engine, fake_llm, tmp_path, downloads):
    repo = FLASK.checkout(downloads, tmp_path / "flask")
    fake_llm.script("builder", FLASK.good)
    fake_llm.script("auditor", APPROVE)

    run = drive(
        start(
            config(repo, [phase("x", 0, FLASK.scope)], test_command="pytest tests/test_config.py")
        )
    )

    assert run.state == RunState.DONE_SUCCESS, run.failure_reason
    assert run.attempts.get().gate_results[-1]["details"]["ran"] > 10


def test_a_phase_that_creates_a_project_is_gated_by_the_tests_it_adds(engine, fake_llm, tmp_path):
    repo = tmp_path / "fresh"
    repo.mkdir()
    (repo / "README.md").write_text("A calculator, one day.\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=T", "-c", "user.email=t@l", "commit", "-qm", "readme")
    code = block("calc.py", "", "def add(a, b):\n    return a - b\n")
    test = block(
        "test_calc.py", "", "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    )
    fixed = block("calc.py", "", "def add(a, b):\n    return a + b\n")
    fake_llm.script("builder", code + test, fixed + test)
    fake_llm.script("auditor", APPROVE)

    run = drive(start(config(repo, [phase("calc", 0, ["."])])))

    assert run.state == RunState.DONE_SUCCESS, run.failure_reason
    first, second = run.attempts.order_by("number")
    assert first.outcome == "gate_failed"
    assert "FAILED test_calc.py::test_add (must pass: added by this phase" in first.feedback
    assert second.gate_results[-1]["details"]["required"] == {"test_calc.py::test_add": "passed"}
    kinds = [e.payload.get("toolchain") for e in run.events.filter(kind="environment")]
    assert kinds[0] == "" and "python" in kinds  # none at first, found when the tests came
