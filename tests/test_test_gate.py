"""The test gate decides on the tests a phase is about: fail-to-pass for the tests its
acceptance criteria name and the tests it adds or changes, pass-to-pass for everything
that passed before. Engine only: real git, real pytest in the sandbox, no database."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from runs.engine.gates.results import FAILED
from runs.engine.gates.selection import required_tests
from runs.engine.gates.tests import Runtime, TestGate, run_tests
from runs.engine.sandbox import bubblewrap
from runs.engine.workspace import GitWorkspace
from tests.attempts import scripted_attempt
from tests.builds import block, git

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
    return scripted_attempt(workspace, reply, [gate], ("calc/", "tests/"), tuple(gate.criteria), n)


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
    gate = gate_for(project, "python -m pytest", ["`test_divide` passes"], own=False)
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


def test_a_run_that_writes_no_report_is_not_judged_by_its_exit_code(project, tmp_path):
    gate = gate_for(project, "python -m pytest", [], own=False)
    quits_early = block("tests/conftest.py", "", "import os\n\nos._exit(0)\n")

    result = attempt(project, tmp_path, quits_early, gate)

    assert result.outcome == "gate_failed"
    assert "wrote no per-test report (exit 0)" in result.feedback


@pytest.mark.parametrize(
    ("reply", "complaint"),
    [
        (
            "tests/test_calc.py\n```python\n<<<<<<< SEARCH\n"
            + TESTS
            + "=======\n>>>>>>> REPLACE\n```\n",
            "tests/test_calc.py::test_add did not run (must pass: named in the acceptance criteria",
        ),
        (
            block("tests/test_calc.py", "def test_add():\n", "def check_add():\n"),
            "tests/test_calc.py::test_add did not run (must pass",
        ),
    ],
    ids=["file emptied", "target test renamed"],
)
def test_the_tests_a_phase_is_about_cannot_be_made_to_vanish(project, tmp_path, reply, complaint):
    command = "python -m pytest tests/test_calc.py"
    gate = gate_for(project, command, ["All tests in tests/test_calc.py pass"], own=True)

    result = attempt(project, tmp_path, reply, gate)

    assert result.outcome == "gate_failed"
    assert complaint in result.feedback


def test_a_failing_test_of_the_phases_own_command_cannot_vanish_without_criteria(project, tmp_path):
    gate = gate_for(project, "python -m pytest tests/test_calc.py", [], own=True)
    renamed = block("tests/test_calc.py", "def test_add():\n", "def check_add():\n")

    result = attempt(project, tmp_path, renamed, gate)

    assert result.outcome == "gate_failed"
    assert "tests/test_calc.py::test_add did not run (it is in the phase's own test command)" in (
        result.feedback
    )


def test_prose_in_the_criteria_does_not_name_tests(project, tmp_path):
    criteria = [
        "Tests in tests/test_calc.py pass.",
        "add() in calc/__init__.py returns the sum; no unit_test is skipped (Testing: done)",
    ]
    gate = gate_for(project, "python -m pytest tests/test_calc.py", criteria, own=True)
    implemented = block("calc/__init__.py", "    raise NotImplementedError\n", "    return a + b\n")

    result = attempt(project, tmp_path, implemented, gate)

    assert result.passed, result.feedback
    assert result.gates[0]["details"]["missing"] == []


def test_a_command_that_fails_after_its_tests_pass_is_refused_when_it_succeeded_before(
    project, tmp_path
):
    # A check chained after the tests (coverage, types, lint): here, no `mul` allowed.
    command = (
        "python -m pytest tests/test_calc.py::test_sub && "
        "python -c \"import calc, sys; sys.exit(1 if hasattr(calc, 'mul') else 0)\""
    )
    gate = gate_for(project, command, [], own=False)
    with_mul = block(
        "calc/__init__.py",
        "def sub(a, b):\n",
        "def mul(a, b):\n    return a * b\n\n\ndef sub(a, b):\n",
    )

    result = attempt(project, tmp_path, with_mul, gate)

    assert result.outcome == "gate_failed"
    assert "must succeed (it succeeded before your change); it exited with 1" in result.feedback


def test_appending_a_test_after_a_failing_one_does_not_make_that_one_the_phase_s(project, tmp_path):
    gate = gate_for(project, "python -m pytest", [], own=False)
    appended = block(
        "tests/test_legacy.py",
        "def test_other():\n    pass\n",
        "def test_other():\n    pass\n\n\n@pytest.mark.parametrize('n', [1])\n"
        "def test_more(n):\n    assert n == 1\n",
    ) + block(
        "tests/test_legacy.py", "def test_legacy():\n", "import pytest\n\n\ndef test_legacy():\n"
    )

    result = attempt(project, tmp_path, appended, gate)

    assert result.passed, result.feedback
    assert result.gates[0]["details"]["required"] == {
        "tests/test_legacy.py::test_more[1]": "passed"
    }


def test_criteria_prose_that_looks_like_code_is_not_a_test(project):
    results = run_tests("python -m pytest", project.root, RUNTIME, 60, SANDBOX)
    criteria = [
        "Use TestClient and `Config::from_file`-style helpers; fixtures live in tests/conftest.py",
        "Add a test_mode flag; all tests in test_calc.py pass",
    ]

    required = required_tests(criteria, results, results, {}, project.read_text)

    assert required.missing == ["Config::from_file"]  # quoted: meant as a test name
    assert sorted(required.reasons) == [
        "tests/test_calc.py::test_add",
        "tests/test_calc.py::test_sub",
    ]
