"""Deterministic mitigations: each pattern matched on real tool output from small real
repositories, and the look-alikes that must not match."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runs.engine.failures import Failure, failure_of
from runs.engine.mitigations import PATTERNS, Mitigation, match
from runs.engine.outcomes import Outcome, PolicyViolation
from runs.engine.policy import PathPolicy

WHOLE = ("",)


def write(root: Path, files: dict[str, str]) -> Path:
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root


def run(command: list[str] | str, cwd: Path) -> str:
    """What a command prints, as the test gate would see it; no pytest plugins of ours."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        command, cwd=cwd, shell=isinstance(command, str), capture_output=True, text=True, env=env
    )
    return done.stdout + done.stderr


def gate_failure(
    output: str, command: str = "pytest -q", changed: tuple[str, ...] = (), **details
) -> Failure:
    gate = {
        "name": "tests",
        "passed": False,
        "summary": f"`{command}` failed",
        "output": output,
        "details": {"command": command, **details},
    }
    return failure_of(
        2,
        Outcome.GATE_FAILED,
        f"`{command}` failed",
        gates=[gate],
        feedback=output,
        changed_files=changed,
    )


def python_import(root: Path, module: str) -> str:
    """The real error of importing `module` without site-packages (so nothing is installed)."""
    return run([sys.executable, "-S", "-c", f"import {module}"], root)


def refused(root: Path, scope: tuple[str, ...], path: str) -> Failure:
    with pytest.raises(PolicyViolation) as refusal:
        PathPolicy(root, scope).check(path)
    return failure_of(1, Outcome.POLICY_VIOLATION, str(refusal.value))


# --- python_missing_dep --------------------------------------------------------------


def test_declared_module_missing_means_the_environment_is_stale(tmp_path):
    write(tmp_path, {"pyproject.toml": '[project]\nname = "app"\ndependencies = ["pyyaml>=6"]\n'})
    output = python_import(tmp_path, "yaml")
    assert "ModuleNotFoundError: No module named 'yaml'" in output

    found = match(gate_failure(output), tmp_path, WHOLE)

    assert found == Mitigation(
        "python_missing_dep",
        "rebuild_environment",
        "`yaml` comes from PyYAML, which pyproject.toml already declares: the environment was "
        "stale and has been rebuilt, so do not change the dependencies.",
        {"package": "PyYAML", "module": "yaml", "manifest": "pyproject.toml"},
    )


def test_setup_cfg_declaration_is_compared_by_normalised_name(tmp_path):
    write(tmp_path, {"setup.cfg": "[options]\ninstall_requires =\n    Python_DateUtil>=2\n"})

    found = match(gate_failure(python_import(tmp_path, "dateutil.parser")), tmp_path, WHOLE)

    assert found.action == "rebuild_environment"
    assert found.detail["package"] == "python-dateutil"
    assert found.detail["manifest"] == "setup.cfg"


def test_undeclared_module_names_the_distribution_manifest_and_section(tmp_path):
    write(tmp_path, {"pyproject.toml": '[project]\nname = "app"\ndependencies = ["requests"]\n'})

    found = match(
        gate_failure(python_import(tmp_path, "PIL.Image")), tmp_path, ("app/", "pyproject.toml")
    )

    assert found.action == "hint"
    assert found.hint == (
        "No module named 'PIL': add Pillow to [project] dependencies in pyproject.toml."
    )
    assert found.detail["section"] == "[project] dependencies"


def test_manifest_outside_the_scope_is_said_to_be_out_of_reach(tmp_path):
    write(tmp_path, {"requirements.txt": "# pinned\nrequests==2.32\n-r dev.txt\n"})

    found = match(gate_failure(python_import(tmp_path, "jwt")), tmp_path, ("inventory/",))

    assert found.action == "hint"
    assert found.detail == {
        "package": "PyJWT",
        "module": "jwt",
        "manifest": "requirements.txt",
        "section": "",
    }
    assert found.hint == (
        "No module named 'jwt': PyJWT is not in requirements.txt, and requirements.txt is "
        "outside this phase's scope (allowed: inventory/), so this phase cannot change it. "
        "Do without PyJWT, or the plan's scope must be widened to requirements.txt."
    )


def test_google_namespace_is_protobuf_when_the_traceback_imports_it(tmp_path):
    write(
        tmp_path,
        {"requirements.txt": "protobuf>=4\n", "app.py": "from google.protobuf import message\n"},
    )
    output = run([sys.executable, "-S", "app.py"], tmp_path)
    assert "No module named 'google'" in output

    found = match(gate_failure(output), tmp_path, WHOLE)

    assert found.action == "rebuild_environment"
    assert found.detail == {
        "package": "protobuf",
        "module": "google",
        "manifest": "requirements.txt",
    }


def test_project_without_manifest_is_told_where_dependencies_go(tmp_path):
    found = match(gate_failure(python_import(tmp_path, "bs4")), tmp_path, WHOLE)

    assert found.action == "hint"
    assert found.hint == (
        "No module named 'bs4': the project declares no dependencies; add beautifulsoup4 to "
        "[project] dependencies in pyproject.toml or to requirements.txt."
    )


@pytest.mark.parametrize(
    "layout, module",
    [
        ({"inventory/__init__.py": ""}, "inventory.models"),
        ({"src/inventory/__init__.py": ""}, "inventory"),
        ({"backend/inventory/__init__.py": ""}, "inventory"),
        ({}, "google.cloud.storage"),
    ],
)
def test_the_projects_own_modules_and_unknown_namespaces_are_not_dependencies(
    tmp_path, layout, module
):
    write(tmp_path, {"pyproject.toml": '[project]\nname = "app"\n', **layout})
    output = python_import(tmp_path, module)
    assert "No module named" in output

    assert match(gate_failure(output), tmp_path, WHOLE) is None


# --- node_missing_dep ----------------------------------------------------------------


def test_declared_node_package_missing_means_the_environment_is_stale(tmp_path):
    manifest = {"name": "shop", "dependencies": {"lodash": "^4.17.21"}}
    write(tmp_path, {"package.json": json.dumps(manifest)})
    output = run(["node", "-e", "require('lodash/fp')"], tmp_path)
    assert "Cannot find module 'lodash/fp'" in output

    found = match(gate_failure(output, "npm test"), tmp_path, WHOLE)

    assert found == Mitigation(
        "node_missing_dep",
        "rebuild_environment",
        "lodash is declared in package.json (dependencies) but was not installed: the "
        "environment has been rebuilt, so do not change package.json for it.",
        {"package": "lodash", "manifest": "package.json", "section": "dependencies"},
    )


def test_undeclared_package_imported_by_a_test_goes_to_dev_dependencies(tmp_path):
    write(
        tmp_path,
        {
            "package.json": json.dumps({"name": "shop", "type": "module"}),
            "tests/cart.test.js": "import { render } from '@testing-library/dom/dist';\n",
        },
    )
    output = run(["node", "tests/cart.test.js"], tmp_path)
    assert "ERR_MODULE_NOT_FOUND" in output

    found = match(gate_failure(output, "node --test"), tmp_path, WHOLE)

    assert found.action == "hint"
    assert found.hint == (
        "Cannot find package '@testing-library/dom': add @testing-library/dom to "
        "devDependencies in package.json."
    )
    assert found.detail["package"] == "@testing-library/dom"


def test_undeclared_package_of_the_code_goes_to_dependencies(tmp_path):
    write(tmp_path, {"package.json": "{}", "src/cart.js": "require('left-pad')\n"})

    found = match(gate_failure(run(["node", "src/cart.js"], tmp_path), "npm test"), tmp_path, WHOLE)

    assert (
        found.hint
        == "Cannot find package 'left-pad': add left-pad to dependencies in package.json."
    )


def test_a_missing_relative_module_is_not_a_dependency(tmp_path):
    write(tmp_path, {"package.json": "{}", "src/cart.js": "require('./prices')\n"})
    output = run(["node", "src/cart.js"], tmp_path)
    assert "Cannot find module './prices'" in output

    assert match(gate_failure(output, "npm test"), tmp_path, WHOLE) is None


# --- wrong_working_dir ---------------------------------------------------------------


def test_test_path_found_under_one_subdirectory_sets_the_test_directory(tmp_path):
    write(tmp_path, {"backend/tests/test_orders.py": "def test_one():\n    assert True\n"})
    output = run(
        [sys.executable, "-m", "pytest", "-p", "no:django", "tests/test_orders.py"], tmp_path
    )
    assert "file or directory not found: tests/test_orders.py" in output

    command = "pytest -q tests/test_orders.py"
    found = match(gate_failure(output, "pytest"), tmp_path, WHOLE, (command,))

    assert found == Mitigation(
        "wrong_working_dir",
        "set_test_directory",
        f"`{command}` names tests/test_orders.py, which is not at the repository root but in "
        "backend/: the command now runs from backend/. Paths in your edits stay relative to "
        "the repository root.",
        {"directory": "backend", "command": command},
    )


def test_script_found_under_one_subdirectory_sets_the_test_directory(tmp_path):
    write(tmp_path, {"server/manage.py": "print('ok')\n"})
    command = "python manage.py test"
    output = run([sys.executable, "manage.py", "test"], tmp_path)
    assert "can't open file" in output

    found = match(gate_failure(output, command), tmp_path, WHOLE)

    assert found.detail == {"directory": "server", "command": command}


@pytest.mark.parametrize(
    "layout",
    [{}, {"a/tests/test_orders.py": "", "b/tests/test_orders.py": ""}],
    ids=["found nowhere", "found twice"],
)
def test_test_path_not_found_in_exactly_one_place_is_not_a_working_directory(tmp_path, layout):
    write(tmp_path, {"README.md": "", **layout})
    output = run(
        [sys.executable, "-m", "pytest", "-p", "no:django", "tests/test_orders.py"], tmp_path
    )

    assert match(gate_failure(output, "pytest tests/test_orders.py"), tmp_path, WHOLE) is None


# --- missing_test_discovery ----------------------------------------------------------

NO_TESTS_RAN = "\n============================ no tests ran in 0.01s ============================\n"


def test_tests_written_outside_testpaths_are_told_where_pytest_looks(tmp_path):
    write(
        tmp_path,
        {
            "pyproject.toml": '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n',
            "tests/conftest.py": "",
        },
    )
    failure = gate_failure(
        NO_TESTS_RAN, "pytest -q", changed=("app/report.py", "test/test_report.py")
    )

    found = match(failure, tmp_path, WHOLE)

    assert found == Mitigation(
        "missing_test_discovery",
        "hint",
        "pytest does not collect test/test_report.py: it looks under tests (testpaths in "
        "pyproject.toml) for files named test_*.py or *_test.py. Move the tests to "
        "tests/test_report.py.",
        {"written": "test/test_report.py", "expected": "tests/test_report.py"},
    )


def test_test_file_named_outside_python_files_is_told_the_pattern(tmp_path):
    write(
        tmp_path,
        {"setup.cfg": "[tool:pytest]\npython_files = test_*.py\n", "tests/__init__.py": ""},
    )
    failure = gate_failure(
        NO_TESTS_RAN, "python -m pytest tests", changed=("tests/report_test.py",)
    )

    found = match(failure, tmp_path, WHOLE)

    assert found.hint == (
        "pytest does not collect tests/report_test.py: it looks under tests (the test "
        "command's paths) for files named test_*.py. Move the tests to tests/test_report.py."
    )


def test_tests_written_under_another_name_than_the_criteria_give(tmp_path):
    feedback = "No test matching tests/test_report.py ran; the acceptance criteria name it."
    failure = gate_failure(
        feedback,
        changed=("app/report.py", "tests/report_test.py"),
        missing=["tests/test_report.py"],
    )

    found = match(failure, tmp_path, WHOLE)

    assert found.hint == (
        "The acceptance criteria name tests/test_report.py, but the change wrote the tests in "
        "tests/report_test.py: put them in tests/test_report.py."
    )
    assert found.detail == {"written": "tests/report_test.py", "expected": "tests/test_report.py"}


@pytest.mark.parametrize(
    "changed",
    [("tests/test_report.py",), ("app/report.py", "tests/helpers.py")],
    ids=["collected where written", "no test written"],
)
def test_no_tests_ran_without_a_misplaced_test_file_is_not_discovery(tmp_path, changed):
    write(tmp_path, {"pyproject.toml": '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n'})

    assert match(gate_failure(NO_TESTS_RAN, changed=changed), tmp_path, WHOLE) is None


# --- scope_mismatch ------------------------------------------------------------------


def test_refused_path_names_the_file_of_the_same_name_inside_the_scope(tmp_path):
    write(tmp_path, {"inventory/models.py": "", "src/models.py": ""})

    found = match(refused(tmp_path, ("inventory/",), "src/models.py"), tmp_path, ("inventory/",))

    assert found == Mitigation(
        "scope_mismatch",
        "hint",
        "src/models.py is outside this phase's scope (allowed: inventory/). You probably meant "
        "inventory/models.py. If the change truly needs src/models.py, the plan's scope must be "
        "widened (a replan).",
        {"path": "src/models.py", "allowed": ["inventory/"], "alike": ["inventory/models.py"]},
    )


def test_refused_path_without_a_namesake_in_scope_says_a_replan_is_needed(tmp_path):
    scope = ("inventory/", "README.md")
    write(tmp_path, {"inventory/models.py": "", "docs/models.md": ""})

    found = match(refused(tmp_path, scope, "docs/setup.py"), tmp_path, scope)

    assert found.hint == (
        "docs/setup.py is outside this phase's scope (allowed: inventory/, README.md). If the "
        "change truly needs docs/setup.py, the plan's scope must be widened (a replan)."
    )


def test_other_path_refusals_are_not_scope_mismatches(tmp_path):
    write(tmp_path, {"inventory/models.py": ""})

    failure = refused(tmp_path, ("inventory/",), "inventory/.git/config")

    assert match(failure, tmp_path, ("inventory/",)) is None


# --- permission_error ----------------------------------------------------------------


def script(root: Path, mode: int, shebang: str = "#!/bin/sh") -> str:
    write(root, {"scripts/check.sh": f"{shebang}\necho checked\n"})
    (root / "scripts/check.sh").chmod(mode)
    return run("./scripts/check.sh", root)


def test_script_without_the_executable_bit_is_made_executable(tmp_path):
    output = script(tmp_path, 0o644)
    assert "./scripts/check.sh: Permission denied" in output

    found = match(gate_failure(output, "./scripts/check.sh"), tmp_path, ("scripts/",))

    assert found == Mitigation(
        "permission_error",
        "make_executable",
        "scripts/check.sh failed with Permission denied because it was not executable; it has "
        "been made executable, so leave its mode as it is.",
        {"path": "scripts/check.sh"},
    )


def test_script_outside_the_scope_is_called_through_its_interpreter(tmp_path):
    output = script(tmp_path, 0o644, "#!/usr/bin/env bash")

    found = match(gate_failure(output, "./scripts/check.sh"), tmp_path, ("inventory/",))

    assert found.action == "hint"
    assert found.hint == (
        "scripts/check.sh failed with Permission denied because it is not executable, and "
        "scripts/check.sh is outside this phase's scope (allowed: inventory/), so this phase "
        "cannot change it: call it through its interpreter, e.g. `bash scripts/check.sh`."
    )


def test_exit_126_without_words_names_the_commands_script(tmp_path):
    script(tmp_path, 0o600)

    found = match(gate_failure("", "./scripts/check.sh", exit_code=126), tmp_path, WHOLE)

    assert found.detail == {"path": "scripts/check.sh"}


@pytest.mark.parametrize(
    "output",
    [
        "sh: 1: ./scripts/check.sh: Permission denied",  # executable already
        "cat: /etc/shadow: Permission denied",  # outside the worktree
    ],
)
def test_permission_denied_on_an_executable_or_outside_file_is_not_matched(tmp_path, output):
    script(tmp_path, 0o755)

    assert match(gate_failure(output, "./scripts/check.sh"), tmp_path, WHOLE) is None


# --- the registry --------------------------------------------------------------------


def test_a_plain_assertion_failure_matches_nothing(tmp_path):
    write(tmp_path, {"pyproject.toml": '[project]\nname = "app"\n', "tests/test_a.py": ""})
    output = "FAILED tests/test_a.py::test_total - assert 3 == 4\n1 failed in 0.02s"

    assert (
        match(gate_failure(output, newly_failing=["tests/test_a.py::test_total"]), tmp_path, WHOLE)
        is None
    )


def test_the_first_pattern_in_priority_order_wins(tmp_path):
    write(tmp_path, {"requirements.txt": "PyYAML\n"})
    output = script(tmp_path, 0o644) + "\n" + python_import(tmp_path, "yaml")

    found = match(gate_failure(output, "./scripts/check.sh"), tmp_path, WHOLE)

    assert PATTERNS.index("python_missing_dep") < PATTERNS.index("permission_error")
    assert found.pattern == "python_missing_dep"
