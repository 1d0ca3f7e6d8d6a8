"""Diagnostic probes of a failed attempt, on the worktree the attempt left: real git
repositories, real pytest and interpreters, the sandbox where it can run. No database."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from runs.engine.configfile import ConfigFileError
from runs.engine.diagnostics import (
    DiagnosticsConfig,
    ProbeResult,
    load_diagnostics_config,
    run_probes,
    summarise,
    wants,
)
from runs.engine.failures import Failure, failure_of
from runs.engine.gates.tests import Runtime
from runs.engine.outcomes import Outcome
from runs.engine.sandbox import sandbox_problem
from tests.builds import git, make_repo

ROOT = Path(__file__).resolve().parent.parent
# This interpreter and its packages (pytest) stand in for a project environment.
RUNTIME = Runtime(
    reader="pytest",
    variables={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"},
    read_only=(Path(sys.prefix), Path(sys.base_prefix)),
)
OFF_BY_ONE = "    stock[item] -= quantity\n", "    stock[item] -= quantity + 1\n"


def failed(changed: tuple[str, ...] = (), failing: tuple[str, ...] = (), output="") -> Failure:
    gate = {
        "name": "tests",
        "passed": False,
        "summary": f"{len(failing)} test(s) newly failing",
        "output": output,
        "details": {"newly_failing": list(failing)},
    }
    return failure_of(1, Outcome.GATE_FAILED, "tests failed", gates=[gate], changed_files=changed)


def edit(root: Path, path: str, old: str, new: str) -> None:
    text = (root / path).read_text()
    assert old in text
    (root / path).write_text(text.replace(old, new))


def probe(results: list[ProbeResult], name: str) -> ProbeResult:
    return next(result for result in results if result.name == name)


def run(root: Path, failure: Failure, runtime: Runtime = RUNTIME, **config) -> list[ProbeResult]:
    return run_probes(root, failure, DiagnosticsConfig(**config), runtime, sandbox=False)


def test_git_probes_show_the_uncommitted_change(tmp_path):
    root = make_repo(tmp_path / "repo")
    edit(root, "inventory/stock.py", *OFF_BY_ONE)
    (root / "inventory" / "report.py").write_text("TOTAL = 0\n")

    results = run(root, failed(), probes=["git_status", "git_diff"])

    status, diff = probe(results, "git_status"), probe(results, "git_diff")
    assert status.command == "git status --porcelain=v1 --untracked-files=all"
    assert status.exit_code == 0
    assert " M inventory/stock.py" in status.output
    assert "?? inventory/report.py" in status.output
    assert "inventory/stock.py | 2 +-" in diff.output
    assert "+    stock[item] -= quantity + 1" in diff.output
    assert "-    stock[item] -= quantity\n" in diff.output


def test_git_diff_keeps_the_start_of_a_long_diff(tmp_path):
    root = make_repo(tmp_path / "repo")
    with (root / "inventory" / "stock.py").open("a") as stock:
        stock.writelines(f"LIMIT_{n} = {n}\n" for n in range(3000))

    results = run(root, failed(), probes=["git_diff"], max_output_chars=1000)

    diff = probe(results, "git_diff").output
    assert diff.startswith(" inventory/stock.py | 3000 +++")
    assert "+LIMIT_0 = 0\n" in diff
    assert len(diff) <= 1000


def test_rerun_failing_test_runs_that_test_alone_and_shows_its_assertion(tmp_path):
    root = make_repo(tmp_path / "repo")
    edit(root, "inventory/stock.py", *OFF_BY_ONE)
    test = "tests/test_stock.py::test_add_then_remove"

    results = run(root, failed(failing=(test,)), probes=["rerun_failing_test"])

    rerun = probe(results, "rerun_failing_test")
    assert rerun.command.endswith(f"-p no:cacheprovider {test}")
    assert rerun.exit_code == 1
    assert "collected 1 item" in rerun.output
    assert "test_add_then_remove FAILED" in rerun.output
    assert "assert {'bolt': 2} == {'bolt': 3}" in rerun.output
    assert "test_cannot_remove_more_than_on_hand" not in rerun.output
    assert not (root / ".pytest_cache").exists()


@pytest.mark.parametrize(
    "test",
    [
        "tests/test_stock.py::test_add_then_remove; touch pwned",
        "-p pwned.py",
        "../outside/test_x.py::test_y",
        "tests/test_stock.py::test_add_then_remove $(touch pwned)",
    ],
)
def test_a_test_id_that_is_not_a_plain_node_id_is_refused(tmp_path, test):
    root = make_repo(tmp_path / "repo")

    results = run(root, failed(failing=(test,)), probes=["rerun_failing_test"])

    rerun = probe(results, "rerun_failing_test")
    assert rerun.skipped.startswith("refused to run the test id")
    assert rerun.command == "" and rerun.exit_code is None
    assert not (root / "pwned").exists()


def test_import_check_reports_a_syntax_error_in_a_changed_module(tmp_path):
    root = make_repo(tmp_path / "repo")
    edit(root, "inventory/stock.py", "def remove_item(", "def remove_item(:")
    changed = ("tests/test_stock.py", "inventory/stock.py", "README.md")

    results = run(root, failed(changed=changed), probes=["import_check"])

    check = probe(results, "import_check")
    assert check.command.endswith(" inventory.stock")  # the tests are not imported
    assert check.exit_code == 1
    assert "SyntaxError" in check.output
    assert 'File "' in check.output and "inventory/stock.py" in check.output


def test_import_check_imports_a_src_layout_package_from_the_worktree(tmp_path):
    root = make_repo(tmp_path / "repo")
    (root / "src" / "shelf").mkdir(parents=True)
    (root / "src" / "shelf" / "__init__.py").write_text("from shelf.missing import LABEL\n")

    results = run(root, failed(changed=("src/shelf/__init__.py",)), probes=["import_check"])

    check = probe(results, "import_check")
    assert check.command.endswith(" shelf")
    assert "ModuleNotFoundError: No module named 'shelf.missing'" in check.output


def test_all_probes_leave_the_worktree_as_they_found_it(tmp_path):
    root = make_repo(tmp_path / "repo")
    edit(root, "inventory/stock.py", *OFF_BY_ONE)
    test = "tests/test_stock.py::test_add_then_remove"
    failure = failed(changed=("inventory/stock.py",), failing=(test,), output="1 failed")
    before = git(root, "status", "--porcelain", "--ignored", "--untracked-files=all")

    results = run(root, failure, max_probes=6)

    assert [result.skipped for result in results] == [""] * 6
    assert git(root, "status", "--porcelain", "--ignored", "--untracked-files=all") == before
    assert (root / "inventory" / "stock.py").read_text().count("quantity + 1") == 1


def test_probes_that_do_not_apply_say_why(tmp_path):
    root = make_repo(tmp_path / "repo")
    failure = failed(changed=("tests/test_stock.py",), failing=("tests/test_stock.py::test_x",))

    python = run(root, failure, probes=["import_check", "gate_output_tail"])
    go = run(
        root, failure, Runtime(reader="go"), probes=["rerun_failing_test", "installed_packages"]
    )

    assert [result.skipped for result in python] == [
        "no changed Python module outside the tests",
        "the failure has no gate output",
    ]
    assert [result.skipped for result in go] == [
        "only pytest tests are re-run",
        "only Python and Node environments are listed",
    ]


def test_a_python_test_command_makes_a_python_project_whatever_its_reader(tmp_path):
    root = make_repo(tmp_path / "repo")
    plain = Runtime(reader="exit-code", variables=RUNTIME.variables)

    unknown = run_probes(root, failed(), DiagnosticsConfig(), plain, sandbox=False)
    python = run_probes(
        root, failed(), DiagnosticsConfig(), plain, sandbox=False, test_command="python -m unittest"
    )

    assert probe(unknown, "installed_packages").skipped != ""
    assert probe(python, "installed_packages").exit_code == 0


def test_installed_packages_lists_the_environment(tmp_path):
    root = make_repo(tmp_path / "repo")

    results = run(root, failed(), probes=["installed_packages"])

    listed = probe(results, "installed_packages")
    assert listed.exit_code == 0
    assert f"pytest=={pytest.__version__}" in listed.output.splitlines()


def test_gate_output_keeps_the_end_of_the_output_within_max_output_chars(tmp_path):
    root = make_repo(tmp_path / "repo")
    output = "".join(f"line {n}\n" for n in range(500)) + "E   AssertionError: the end\n"

    results = run(root, failed(output=output), probes=["gate_output_tail"], max_output_chars=200)

    tail = probe(results, "gate_output_tail")
    assert tail.command == ""
    assert len(tail.output) == 200
    assert tail.output.endswith("E   AssertionError: the end\n")


def test_max_probes_skips_the_probes_after_it_with_the_reason(tmp_path):
    root = make_repo(tmp_path / "repo")
    probes = ["git_status", "rerun_failing_test", "git_diff", "gate_output_tail"]

    results = run(root, failed(output="boom"), probes=probes, max_probes=2)

    assert [(result.name, result.skipped) for result in results] == [
        ("git_status", ""),
        ("rerun_failing_test", "no failing test is known"),  # does not count: it did not run
        ("git_diff", ""),
        ("gate_output_tail", "max_probes (2) probes already ran"),
    ]


def test_max_seconds_stops_a_slow_probe_and_skips_the_rest(tmp_path):
    root = make_repo(tmp_path / "repo")
    (root / "tests" / "test_slow.py").write_text(
        "import time\n\n\ndef test_slow():\n    time.sleep(60)\n"
    )
    failure = failed(failing=("tests/test_slow.py::test_slow",))

    results = run(root, failure, probes=["rerun_failing_test", "git_status"], max_seconds=2)

    slow, status = results
    assert slow.exit_code is None
    assert slow.duration < 10
    assert "(stopped after 2.0 s)" in slow.output
    assert status.skipped == "max_seconds (2 s) spent on earlier probes"


@pytest.mark.skipif(bool(sandbox_problem()), reason=sandbox_problem() or "sandbox available")
def test_probes_run_project_code_in_the_sandbox(tmp_path):
    root = make_repo(tmp_path / "repo")
    edit(root, "inventory/stock.py", *OFF_BY_ONE)
    test = "tests/test_stock.py::test_add_then_remove"
    failure = failed(changed=("inventory/stock.py",), failing=(test,))
    probes = ["rerun_failing_test", "import_check", "installed_packages"]

    results = run_probes(root, failure, DiagnosticsConfig(probes=probes), RUNTIME, sandbox=True)

    rerun, check, listed = results
    assert "assert {'bolt': 2} == {'bolt': 3}" in rerun.output and rerun.exit_code == 1
    assert check.output.strip() == "imported inventory.stock"
    assert f"pytest=={pytest.__version__}" in listed.output.splitlines()


def test_the_shipped_config_loads_with_the_defaults():
    config = load_diagnostics_config(ROOT / "config" / "diagnostics.yaml")

    assert config == DiagnosticsConfig()
    assert config.probes[0] == "git_status" and "gate_output_tail" in config.probes


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        ("probes: [git_status, rm_rf]\n", "probes: unknown 'rm_rf'; known: git_status, git_diff"),
        ("kinds: [flaky]\n", "kinds: unknown 'flaky'; known: malformed_reply"),
        ("max_probs: 3\n", "max_probs: unknown key"),
        ("max_seconds: 0\n", "max_seconds: Input should be greater than 0"),
    ],
)
def test_the_loader_names_the_bad_key(tmp_path, yaml, message):
    path = tmp_path / "diagnostics.yaml"
    path.write_text(yaml)

    with pytest.raises(ConfigFileError) as raised:
        load_diagnostics_config(path)

    assert message in str(raised.value)


def test_wants_the_configured_kinds_while_enabled():
    config = DiagnosticsConfig()

    assert wants(config, "test_regression")
    assert wants(config, "environment")
    assert not wants(config, "provider_error")
    assert not wants(DiagnosticsConfig(enabled=False), "test_regression")
    assert not wants(DiagnosticsConfig(kinds=["syntax_error"]), "test_regression")


def test_summarise_stays_within_its_limit_and_keeps_each_outputs_end():
    long = "".join(f"noise {n}\n" for n in range(2000))
    results = [
        ProbeResult("git_status", "git status", " M inventory/stock.py\n", 0, 0.01),
        ProbeResult("rerun_failing_test", "python -m pytest", long + "E   assert 2 == 3\n", 1, 1.2),
        ProbeResult("import_check", "", "", None, 0.0, skipped="no changed Python module"),
        ProbeResult("gate_output_tail", "", long + "1 failed, 1 passed\n", None, 0.0),
    ]

    text = summarise(results, limit=1000)

    assert len(text) <= 1000
    assert "## git_status `git status` (exit 0)\n M inventory/stock.py" in text
    assert "## rerun_failing_test `python -m pytest` (exit 1)" in text
    assert "E   assert 2 == 3" in text
    assert "## import_check: skipped (no changed Python module)" in text
    assert "1 failed, 1 passed" in text
    assert "noise 1999" in text  # what the short outputs left over went to the long ones
    assert summarise([result.as_dict() for result in results], limit=1000) == text
    assert len(summarise(results, limit=120)) <= 120
