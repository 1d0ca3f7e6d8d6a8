"""`autopack bench`: aider's polyglot exercises and a SWE-bench-format instance run as
ordinary Autopack runs with the scripted models that validate the harness; results
stored, tabled, exported and compared."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command

from runs.engine import suites
from runs.engine.providers.bench_models import mutant
from runs.models import Run
from runs.states import RunState
from telemetry import bench_report, benchmarks
from telemetry.models import BenchRun, BenchTask
from tests.builds import git
from tests.real_projects import DATEUTIL
from tests.support import database_url, shared_data

pytestmark = pytest.mark.django_db(transaction=True)

SAMPLE = 3  # Python exercises per scripted model in CI; bench/polyglot.py runs them all


@pytest.fixture
def polyglot():
    return shared_data("bench/polyglot")


def bench(suite: Path, model: str, **options) -> BenchRun:
    settings = benchmarks.Options(model=model, **options)
    created = benchmarks.create(suite, settings)
    return benchmarks.execute(created, benchmarks.InProcess(), settings)


def figures(run: BenchRun) -> dict:
    row = bench_report.summarise(run)
    return {k: v for k, v in row.items() if k not in bench_report.TIMING}


def test_the_polyglot_suite_reads_as_tasks(polyglot):
    tasks = suites.load(polyglot)
    languages = ("python", "go", "rust", "javascript")
    counts = {lang: sum(t.language == lang for t in tasks) for lang in languages}
    assert counts == {"python": 34, "go": 39, "rust": 30, "javascript": 49}
    bowling = next(t for t in tasks if t.task_id == "python/bowling")
    assert bowling.scope == ["bowling.py"]
    assert bowling.criteria == ["Every test in `bowling_test.py` passes."]
    assert set(bowling.files) == {"bowling.py", "bowling_test.py"}  # no .meta: no answer
    assert "Score a bowling game" in bowling.instructions or "bowling" in bowling.instructions
    old, new = bowling.reference["bowling.py"]
    assert (
        old == bowling.files["bowling.py"]
        and new == (polyglot / "python/exercises/practice/bowling/.meta/example.py").read_text()
    )
    js = next(t for t in tasks if t.language == "javascript")
    spec = next(text for path, text in js.files.items() if path.endswith(".spec.js"))
    assert "xtest(" not in spec  # every test runs, as in aider's benchmark
    rust = next(t for t in tasks if t.language == "rust")
    assert "Cargo.toml" not in rust.scope and "--include-ignored" in rust.test_command
    with pytest.raises(suites.SuiteError, match="no exercises for cobol; it has go"):
        suites.load(polyglot, ["cobol"])


def test_the_mutant_leaves_one_function_unimplemented(polyglot):
    task = suites.load(polyglot, ["python"])[0]
    [(path, (old, new))] = task.reference.items()
    _, changed = mutant(task.reference)[path]
    assert changed != new and "NotImplementedError" in changed
    assert sum(a != b for a, b in zip(changed.splitlines(), new.splitlines(), strict=False)) >= 1


def test_scripted_models_validate_the_harness_on_python_exercises(engine, polyglot):
    sample = {"languages": ["python"], "limit": SAMPLE}

    oracle = bench(polyglot, "oracle", **sample)
    mutant_run = bench(polyglot, "mutant", **sample)
    feedback = bench(polyglot, "fix-on-feedback", **sample)
    malformed = bench(polyglot, "malformed", **sample)

    assert (figures(oracle)["pass_rate_1"], figures(oracle)["pass_num_2"]) == (100.0, SAMPLE)
    assert (figures(mutant_run)["pass_rate_1"], figures(mutant_run)["pass_rate_2"]) == (0.0, 0.0)
    assert (figures(feedback)["pass_rate_1"], figures(feedback)["pass_rate_2"]) == (0.0, 100.0)
    bad = figures(malformed)
    assert (bad["pass_rate_2"], bad["percent_cases_well_formed"]) == (0.0, 0.0)
    assert bad["num_with_malformed_responses"] == SAMPLE
    assert bad["num_malformed_responses"] == 2 * SAMPLE  # both tries of every task
    assert figures(oracle)["percent_cases_well_formed"] == 100.0
    # Each task is an ordinary run: its own project, worktree, gates and records.
    task = oracle.tasks.first()
    run = task.run
    assert run.state == RunState.DONE_SUCCESS and run.config["memory"] is False
    slug = task.task_id.split("/")[1].replace("-", "_")
    assert run.phases.get().acceptance_criteria == [f"Every test in `{slug}_test.py` passes."]
    gate = run.attempts.get().gate_results[-1]["details"]
    assert gate["ran"] > 0 and gate["failed"] == 0 and gate["baseline"]["failed"] > 0
    # Try 2 was told the test output of try 1.
    second = feedback.tasks.first().run.attempts.get(number=2)
    assert second.state == "PASSED"
    first = feedback.tasks.first().run.attempts.get(number=1)
    assert first.outcome == "gate_failed" and "NotImplementedError" in first.feedback


def test_two_runs_of_a_scripted_model_give_identical_tables(engine, polyglot):
    sample = {"languages": ["python"], "limit": 2}
    first = bench(polyglot, "fix-on-feedback", **sample)
    second = bench(polyglot, "fix-on-feedback", **sample)

    assert figures(first) == figures(second)
    differing = {h for h, a, b in bench_report.compare(first, second) if a != b}
    assert differing <= {"seconds per task"}
    tasks = lambda run: [  # noqa: E731
        (t.task_id, t.status, t.passed_try, t.tries_used, t.malformed) for t in run.tasks.all()
    ]
    assert tasks(first) == tasks(second)


@pytest.mark.skipif(shutil.which("go") is None, reason="no Go toolchain on this machine")
def test_a_go_exercise_passes_with_the_oracle_and_fails_with_the_mutant(engine, polyglot):
    sample = {"languages": ["go"], "limit": 1}

    assert figures(bench(polyglot, "oracle", **sample))["pass_num_1"] == 1
    assert figures(bench(polyglot, "mutant", **sample))["pass_num_2"] == 0


@pytest.mark.skipif(shutil.which("cargo") is None, reason="no Rust toolchain on this machine")
def test_a_rust_exercise_whose_stub_does_not_compile_is_still_a_task(engine, polyglot):
    # rust/accumulate's stub does not compile until solved: the run starts anyway.
    result = bench(polyglot, "oracle", languages=["rust"], limit=1)

    task = result.tasks.get()
    assert task.task_id == "rust/accumulate" and task.status == BenchTask.Status.PASSED
    baseline = task.run.events.get(kind="baseline").payload
    assert baseline["problem"] or baseline["ran"] == 0


def test_a_task_whose_environment_cannot_be_prepared_is_an_error(engine, tmp_path):
    exercise = tmp_path / "suite/python/exercises/practice/needs-a-package"
    (exercise / ".meta").mkdir(parents=True)
    (exercise / ".meta/config.json").write_text(
        json.dumps(
            {
                "files": {
                    "solution": ["lib.py"],
                    "test": ["lib_test.py"],
                    "example": [".meta/example.py"],
                }
            }
        )  # fmt: skip
    )
    (exercise / ".meta/example.py").write_text("def answer():\n    return 42\n")
    (exercise / "lib.py").write_text("def answer():\n    pass\n")
    (exercise / "lib_test.py").write_text(
        "from lib import answer\n\n\ndef test_answer():\n    assert answer() == 42\n"
    )
    (exercise / "requirements.txt").write_text("autopack-no-such-package-anywhere==0.0.1\n")

    result = bench(tmp_path / "suite", "oracle")

    task = result.tasks.get()
    assert task.status == BenchTask.Status.ERROR
    assert "autopack-no-such-package-anywhere" in task.error
    row = bench_report.summarise(result)
    assert (row["tasks"], row["errors"], row["pass_rate_1"]) == (1, 1, 0.0)


def test_results_print_export_and_compare_from_the_command_line(engine, polyglot, tmp_path):
    out = io.StringIO()
    call_command(
        "bench", str(polyglot), "--languages", "python", "--limit", "2", "--model", "oracle",
        "--workers", "0", "--json", str(tmp_path / "r.json"), "--csv", str(tmp_path / "r.csv"),
        stdout=out,
    )  # fmt: skip
    text = out.getvalue()
    assert "[2/2] python/beer-song: passed at try 1" in text
    assert "pass rate after try 1 (%)     100.0" in text and "percent well formed" in text
    exported = json.loads((tmp_path / "r.json").read_text())
    assert exported["summary"]["pass_num_1"] == 2 and len(exported["tasks"]) == 2
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert [r["task_id"] for r in rows] == ["python/affine-cipher", "python/beer-song"]
    assert all(r["status"] == "passed" and r["passed_try"] == "1" for r in rows)
    first = BenchRun.objects.get()
    call_command("bench", str(polyglot), "--languages", "python", "--limit", "2",
                 "--model", "mutant", "--workers", "0", stdout=io.StringIO())  # fmt: skip
    second = BenchRun.objects.exclude(pk=first.pk).get()
    compared = io.StringIO()
    call_command("bench", "--compare", first.bench_id, second.bench_id, stdout=compared)
    line = next(x for x in compared.getvalue().splitlines() if "pass rate after try 1" in x)
    assert line.split()[-2:] == ["100.0", "0.0"]


def test_tasks_run_through_queue_workers(engine, polyglot, tmp_path):
    env = {
        **__import__("os").environ,
        "DATABASE_URL": database_url(),
        "AUTOPACK_HOME": str(engine.AUTOPACK_HOME),
        "AUTOPACK_ENVIRONMENTS": str(engine.AUTOPACK_ENVIRONMENTS),
        "AUTOPACK_MODELS": str(engine.AUTOPACK_MODELS),
        "DJANGO_SETTINGS_MODULE": "autopack_site.settings",
    }
    settings = benchmarks.Options(model="oracle", languages=["python"], limit=2, workers=2)
    created = benchmarks.create(polyglot, settings)

    result = benchmarks.execute(created, benchmarks.WorkerPool(2, env), settings)

    assert [t.status for t in result.tasks.all()] == ["passed", "passed"]
    worktrees = {Run.objects.get(pk=t.run_id).worktree_path for t in result.tasks.all()}
    assert len(worktrees) == 2


@pytest.fixture(scope="session")
def downloads(tmp_path_factory):
    return tmp_path_factory.mktemp("downloads")


REGRESSION_TEST = """\
from datetime import date

from dateutil.easter import EASTER_ORTHODOX, easter


def test_orthodox_easter_2024():
    assert easter(2024, EASTER_ORTHODOX) == date(2024, 5, 5)
"""


def swebench_instance(tmp_path: Path, downloads: Path) -> Path:
    """python-dateutil as released, with a bug committed (the orthodox epact off by
    one): the base commit; its fix is the reference patch; a new regression test is the
    test patch."""
    repo = DATEUTIL.checkout(downloads, tmp_path / "dateutil")
    source = repo / "src/dateutil/easter.py"
    fixed = source.read_text()
    source.write_text(fixed.replace("            e = 10\n", "            e = 11\n"))
    git(repo, "-c", "user.name=Bug", "-c", "user.email=bug@localhost", "commit", "-qam", "Bug")
    base = git(repo, "rev-parse", "HEAD").strip()
    source.write_text(fixed)
    gold = git(repo, "diff")
    git(repo, "checkout", "-q", "--", ".")
    (repo / "tests/test_easter_regression.py").write_text(REGRESSION_TEST)
    git(repo, "add", "-N", "tests/test_easter_regression.py")
    test_patch = git(repo, "diff")
    git(repo, "rm", "-q", "--cached", "tests/test_easter_regression.py")
    (repo / "tests/test_easter_regression.py").unlink()
    instance = {
        "instance_id": "dateutil__orthodox-epact",
        "repo": str(repo),
        "base_commit": base,
        "problem_statement": "easter(2024, EASTER_ORTHODOX) returns the wrong date; "
        "it should be 2024-05-05.",
        "test_patch": test_patch,
        "patch": gold,
        "FAIL_TO_PASS": json.dumps(["tests/test_easter_regression.py::test_orthodox_easter_2024"]),
        "PASS_TO_PASS": json.dumps(["tests/test_easter.py::test_easter_bad_method"]),
        "scope": ["src/dateutil/"],
    }
    path = tmp_path / "instances.jsonl"
    path.write_text(json.dumps(instance) + "\n")
    return path


def test_a_swebench_instance_is_resolved_by_the_oracle_and_not_by_the_mutant(
    engine, tmp_path, downloads
):
    suite = swebench_instance(tmp_path, downloads)

    oracle = bench(suite, "oracle").tasks.get()
    mutated = bench(suite, "mutant").tasks.get()

    assert oracle.status == BenchTask.Status.PASSED, (oracle.error, oracle.tests)
    assert oracle.tests == {
        "FAIL_TO_PASS": {"tests/test_easter_regression.py::test_orthodox_easter_2024": "passed"},
        "PASS_TO_PASS": {"tests/test_easter.py::test_easter_bad_method": "passed"},
        "resolved": True,
    }
    run = oracle.run
    assert run.project.repository != str(tmp_path / "dateutil")  # the bench's own copy
    baseline = run.events.get(kind="baseline").payload
    assert baseline["ran"] > 0 and baseline["failed"] >= 1  # the new test fails at base
    assert mutated.status == BenchTask.Status.FAILED
    assert mutated.tests["resolved"] is False


def test_a_benchmark_replays_from_its_recorded_replies(engine, polyglot):
    sample = {"languages": ["python"], "limit": 2}
    recorded = bench(polyglot, "fix-on-feedback", **sample)

    replayed = bench(polyglot, "fix-on-feedback", replay_of=recorded, **sample)

    assert replayed.replay_of == recorded and figures(replayed) == figures(recorded)
    for task in replayed.tasks.all():
        original = recorded.tasks.get(task_id=task.task_id).run
        assert task.run.provider == f"replay:{original.run_id}"
        assert task.run.llm_calls.count() == original.llm_calls.count()
        assert set(task.run.llm_calls.values_list("provider", flat=True)) == {"replay"}
        assert [a.outcome for a in task.run.attempts.order_by("number")] == [
            a.outcome for a in original.attempts.order_by("number")
        ]
