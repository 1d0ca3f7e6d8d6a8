"""The test gate decides on the tests a phase is about: fail-to-pass for the tests its
acceptance criteria name and the tests it adds or changes, pass-to-pass for everything
that passed before. Engine only: real git, real pytest in the sandbox, no database."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from runs.engine.attempt import AttemptDeps, run_attempt
from runs.engine.budget import Allowance, Budget
from runs.engine.edits import edit_format
from runs.engine.gates.results import FAILED
from runs.engine.gates.tests import Runtime, TestGate, run_tests
from runs.engine.llm import LLMCaller
from runs.engine.providers.scripted import ScriptedProvider
from runs.engine.sandbox import bubblewrap
from runs.engine.spec import AttemptPlan, PhaseSpec
from runs.engine.workspace import GitWorkspace
from tests.builds import block

# This interpreter and its packages (pytest) stand in for a project environment.
RUNTIME = Runtime(
    reader="pytest",
    variables={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"},
    read_only=(Path(sys.prefix), Path(sys.base_prefix)),
)
SANDBOX = bubblewrap() is not None

STUB = "def add(a, b):\n    raise NotImplementedError\n\n\ndef sub(a, b):\n    return a - b\n"
TESTS = (
    "from calc import add, sub\n\n\n"
    "def test_add():\n    assert add(2, 3) == 5\n\n\n"
    "def test_sub():\n    assert sub(3, 2) == 1\n"
)
LEGACY = (
    "def test_legacy():\n    assert False, 'broken long ago'\n\n\ndef test_other():\n    pass\n"
)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    def event(self, kind: str, **payload) -> None:
        self.events.append((kind, payload))

    def llm_call(self, record) -> None:
        pass

    def cancelled(self) -> bool:
        return False


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def project(tmp_path) -> GitWorkspace:
    root = tmp_path / "calc-project"
    for name, text in {
        "calc/__init__.py": STUB,
        "tests/test_calc.py": TESTS,
        "tests/test_legacy.py": LEGACY,
    }.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "-c", "user.name=T", "-c", "user.email=t@l", "commit", "-qm", "stub")
    return GitWorkspace(root)


def attempt(workspace: GitWorkspace, tmp_path: Path, reply: str, gate: TestGate, n: int = 1):
    script = tmp_path / f"replies-{n}.json"
    script.write_text(json.dumps({"builder": [reply]}))
    recorder = Recorder()
    spec = PhaseSpec(
        run_id="r",
        phase_id="add",
        goal="A calculator",
        task_name="Implement add",
        description="",
        category="feature",
        complexity="low",
        scope_paths=("calc/", "tests/"),
        acceptance_criteria=tuple(gate.criteria),
    )
    deps = AttemptDeps(
        llm=LLMCaller({}, Budget([Allowance("run")]), recorder, ScriptedProvider(script)),
        workspace=workspace,
        edit_format=edit_format("search_replace"),
        gates=[gate],
        recorder=recorder,
    )
    return run_attempt(AttemptPlan(spec, n, "scripted/builder", None), deps)


def gate_for(workspace: GitWorkspace, command: str, criteria: list[str], own: bool) -> TestGate:
    reference = run_tests(command, workspace.root, RUNTIME, 60, SANDBOX)
    return TestGate(
        command, reference, criteria, lambda: RUNTIME, 60, sandbox=SANDBOX, own_command=own
    )


def test_a_stub_left_unimplemented_does_not_land_and_a_real_implementation_does(project, tmp_path):
    command = "python -m pytest tests/test_calc.py"
    gate = gate_for(project, command, ["All tests in tests/test_calc.py pass"], own=True)
    docstring_only = block(
        "calc/__init__.py",
        "def add(a, b):\n",
        'def add(a, b):\n    """Add two numbers."""\n',
    )
    implemented = block(
        "calc/__init__.py",
        "    raise NotImplementedError\n",
        "    return a + b\n",
    )

    first = attempt(project, tmp_path, docstring_only, gate, 1)
    second = attempt(project, tmp_path, implemented, gate, 2)

    assert first.outcome == "gate_failed" and not first.savepoint
    assert "tests/test_calc.py::test_add" in first.feedback
    assert "NotImplementedError" in first.feedback
    assert "must pass: named in the acceptance criteria (tests/test_calc.py)" in first.feedback
    assert second.passed and second.savepoint
    details = second.gates[0]["details"]
    assert details["required"] == {
        "tests/test_calc.py::test_add": "passed",
        "tests/test_calc.py::test_sub": "passed",
    }
    assert (details["ran"], details["baseline"]["failed"]) == (2, 1)


def test_a_test_the_phase_adds_must_pass(project, tmp_path):
    gate = gate_for(project, "python -m pytest", [], own=False)
    new_test = block("tests/test_more.py", "", "def test_mul():\n    assert 2 * 3 == 7\n")

    result = attempt(project, tmp_path, new_test, gate)

    assert result.outcome == "gate_failed"
    assert "tests/test_more.py::test_mul (must pass: added by this phase" in result.feedback


def test_a_failing_test_the_phase_edits_must_pass_but_its_untouched_neighbour_may_fail(
    project, tmp_path
):
    gate = gate_for(project, "python -m pytest", [], own=False)
    edit_other = block(
        "tests/test_legacy.py",
        "def test_other():\n    pass\n",
        "def test_other():\n    assert sum([1, 2]) == 3\n",
    )
    edit_legacy = block(
        "tests/test_legacy.py",
        "    assert False, 'broken long ago'\n",
        "    assert not False\n",
    )

    other = attempt(project, tmp_path, edit_other, gate, 1)
    legacy = attempt(project, tmp_path, edit_legacy, gate, 2)

    # test_legacy failed before and this phase is not about it: it may still fail.
    assert other.passed, other.feedback
    summary = other.gates[0]["summary"]
    assert "2 failing as before, not this phase's tests" in summary
    assert other.gates[0]["details"]["still_failing"] == [
        "tests/test_calc.py::test_add",
        "tests/test_legacy.py::test_legacy",
    ]
    assert other.gates[0]["details"]["required"] == {"tests/test_legacy.py::test_other": "passed"}
    # An edit inside test_legacy makes it this phase's test: now it must pass, and does.
    assert legacy.passed
    assert legacy.gates[0]["details"]["required"] == {"tests/test_legacy.py::test_legacy": "passed"}


@pytest.mark.parametrize(
    ("reply", "complaint"),
    [
        (
            block("tests/test_calc.py", "def test_sub():\n", "def skip_sub():\n"),
            "tests/test_calc.py::test_sub did not run (passed before your change)",
        ),
        (
            block(
                "tests/test_calc.py",
                "def test_sub():\n",
                "import pytest\n\n\n@pytest.mark.skip\ndef test_sub():\n",
            ),
            "tests/test_calc.py::test_sub was skipped (passed before your change)",
        ),
        (
            block("calc/__init__.py", "    return a - b\n", "    return a + b\n"),
            "FAILED tests/test_calc.py::test_sub (passed before your change)",
        ),
        (
            block("calc/__init__.py", "def sub(a, b):\n", "def sub(a, b)\n"),
            "tests/test_calc.py could not be loaded",
        ),
    ],
    ids=["renamed away", "skipped", "broken", "import error"],
)
def test_a_test_that_passed_before_must_still_pass(project, tmp_path, reply, complaint):
    gate = gate_for(project, "python -m pytest", [], own=False)

    result = attempt(project, tmp_path, reply, gate)

    assert result.outcome == "gate_failed"
    assert complaint in result.feedback


def test_no_tests_at_all_when_there_were_some_is_a_failure(project, tmp_path):
    gate = gate_for(project, "python -m pytest", [], own=False)
    empty_dir = block("calc/__init__.py", "def sub(a, b):\n", "def sub(a, b):\n")
    gate.command = "python -m pytest calc"  # collects nothing: exit 5

    result = attempt(project, tmp_path, empty_dir, gate)

    assert result.outcome == "gate_failed"
    assert "ran no tests (it ran 4 before your change)" in result.feedback


def test_criteria_naming_a_test_that_does_not_exist_fail_the_gate(project, tmp_path):
    gate = gate_for(project, "python -m pytest", ["test_divide passes"], own=False)
    implemented = block("calc/__init__.py", "    raise NotImplementedError\n", "    return a + b\n")

    result = attempt(project, tmp_path, implemented, gate)

    assert result.outcome == "gate_failed"
    assert "No test matching test_divide ran" in result.feedback


def test_the_reference_decides_what_failed_before(project):
    reference = run_tests("python -m pytest", project.root, RUNTIME, 60, SANDBOX)

    assert reference.ids(FAILED) == {
        "tests/test_calc.py::test_add",
        "tests/test_legacy.py::test_legacy",
    }
    assert reference.counts()["ran"] == 4
