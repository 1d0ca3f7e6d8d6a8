"""Benchmarks: every task of a suite run as an ordinary Autopack run (same engine, gates,
budgets and records), with results stored per task.

    bench = create(Path("../shared/bench/polyglot"), Options(model="oracle", limit=5))
    execute(bench, WorkerPool(2), report=print)

Each task gets its own repository (kept under AUTOPACK_HOME/bench/repos and reused by
later benchmarks of the same suite) and project; its run has one phase whose scope is the
solution files and whose acceptance criteria are the task's tests, with `tries` attempts.
Runs skip the project's memory unless asked, so that tasks stay independent.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from runs import services
from runs.config import ConfigError
from runs.engine import repomap, suites
from runs.engine.gates.results import TestResults
from runs.engine.outcomes import FailureCode
from runs.engine.providers.bench_models import KINDS
from runs.engine.routing import load_models_config
from runs.models import Run, TestBaseline
from runs.states import AttemptState, RunState
from telemetry.bench_workers import InProcess, Runner, WorkerPool
from telemetry.models import BenchRun, BenchTask, LlmCall

__all__ = ["InProcess", "Options", "WorkerPool", "create", "execute", "Runner"]

# A run that ended for one of these reasons never tried the task: an error, not a fail.
NOT_TRIED = (
    FailureCode.CONFIGURATION,
    FailureCode.REPOSITORY,
    FailureCode.SETUP_FAILED,
    FailureCode.TESTS_CANNOT_RUN,
    FailureCode.INTERNAL_ERROR,
)
CONTEXT_EXHAUSTED = re.compile(
    r"prompt is too long|context_length_exceeded|maximum context length|context window",
    re.IGNORECASE,
)
GIT_IDENTITY = ["-c", "user.name=Autopack bench", "-c", "user.email=bench@autopack.invalid"]


@dataclass
class Options:
    model: str = "oracle"  # a scripted model (KINDS) or a model id from config/models.yaml
    tries: int = 2
    limit: int | None = None
    languages: list[str] = field(default_factory=list)
    workers: int = 1
    memory: bool = False
    replay_of: BenchRun | None = None


def version() -> str:
    return metadata.version("autopack")


def create(suite: Path, options: Options, created_by=None) -> BenchRun:
    """The benchmark and its tasks (pending); SuiteError names what is wrong."""
    suite = suite.expanduser().resolve()
    tasks = suites.load(suite, options.languages or None, options.limit)
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    model = options.model.replace("/", "-")
    bench_id = _unique(f"bench-{stamp}-{model}"[:90])
    bench = BenchRun.objects.create(
        bench_id=bench_id,
        suite=str(suite),
        suite_kind="swebench" if suite.is_file() else "exercism",
        model=options.model,
        edit_format=load_models_config(settings.AUTOPACK_MODELS).builder.edit_format,
        tries=options.tries,
        workers=options.workers,
        languages=sorted({t.language for t in tasks}),
        limit=options.limit,
        autopack_version=version(),
        replay_of=options.replay_of,
        created_by=created_by,
    )
    BenchTask.objects.bulk_create(
        BenchTask(bench=bench, task_id=t.task_id, language=t.language) for t in tasks
    )
    return bench


def _unique(bench_id: str) -> str:
    candidate, n = bench_id, 1
    while BenchRun.objects.filter(bench_id=candidate).exists():
        n += 1
        candidate = f"{bench_id}-{n}"
    return candidate


def execute(
    bench: BenchRun,
    runner: Runner,
    options: Options,
    report: Callable[[BenchTask], None] = lambda task: None,
) -> BenchRun:
    """Run every pending task, at most `runner.slots` at a time; `report` hears of each
    task as it finishes. Interrupted, the benchmark is STOPPED and its runs cancelled."""
    definitions = {
        t.task_id: t for t in suites.load(Path(bench.suite), bench.languages or None, bench.limit)
    }
    pending = list(bench.tasks.filter(status=BenchTask.Status.PENDING).order_by("id"))
    active: dict[int, BenchTask] = {}
    started = time.monotonic()
    runner.start()
    try:
        while pending or active:
            while pending and len(active) < runner.slots:
                task = pending.pop(0)
                if _submit(bench, task, definitions[task.task_id], options, runner):
                    active[task.pk] = task
                else:
                    report(task)
            for key, task in list(active.items()):
                run = Run.objects.get(pk=task.run_id)
                if run.state == RunState.AWAITING_APPROVAL:
                    services.cancel_run(run, by="the benchmark (a protected change needs a person)")
                if run.state in RunState.FINAL:
                    collect(task, Run.objects.get(pk=run.pk), definitions[task.task_id])
                    report(task)
                    del active[key]
            runner.wait(active)
    except BaseException:
        for task in active.values():
            run = Run.objects.get(pk=task.run_id)
            if run.state not in RunState.FINAL:
                services.cancel_run(run, by="the benchmark was interrupted")
        BenchRun.objects.filter(pk=bench.pk).update(state=BenchRun.State.STOPPED)
        raise
    finally:
        runner.stop()
    BenchRun.objects.filter(pk=bench.pk).update(
        state=BenchRun.State.DONE,
        wall_seconds=time.monotonic() - started,
        finished_at=timezone.now(),
    )
    bench.refresh_from_db()
    return bench


def _submit(
    bench: BenchRun, task: BenchTask, definition: suites.Task, options: Options, runner: Runner
) -> bool:
    """Prepare the task's repository and start its run; False (the task is an error,
    with the reason) when either cannot be done."""
    try:
        if definition.problem:
            raise suites.SuiteError(definition.problem)
        repository, reference = prepare(bench, definition)
        data = run_config(bench, definition, repository, options)
        run = services.create_run(
            data, provider=_provider(bench, options, reference, task), enqueue=runner.enqueue
        )
    except (OSError, subprocess.CalledProcessError, suites.SuiteError, ConfigError) as exc:
        task.status, task.error = BenchTask.Status.ERROR, _reason(exc)
        task.save(update_fields=["status", "error"])
        return False
    task.run, task.status = run, BenchTask.Status.RUNNING
    task.save(update_fields=["run", "status"])
    runner.submitted(run)
    return True


def _reason(exc: Exception) -> str:
    if isinstance(exc, ConfigError):
        return "; ".join(f"{e['path']}: {e['message']}" for e in exc.errors)
    if isinstance(exc, subprocess.CalledProcessError):
        return f"`{' '.join(map(str, exc.cmd))}` failed: {(exc.stderr or exc.stdout or '')[-500:]}"
    return str(exc)


def _provider(bench: BenchRun, options: Options, reference: Path, task: BenchTask) -> str:
    if options.replay_of is not None:
        recorded = options.replay_of.tasks.filter(task_id=task.task_id, run__isnull=False).first()
        if recorded is None:
            raise suites.SuiteError(
                f"benchmark {options.replay_of.bench_id} has no recorded run of {task.task_id}"
            )
        return f"replay:{recorded.run.run_id}"
    if bench.model in KINDS:
        return f"bench:{bench.model}:{reference}"
    return ""


def run_config(bench: BenchRun, task: suites.Task, repository: Path, options: Options) -> dict:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", task.task_id).strip("-")
    phase = {
        "phase_id": "solve",
        "phase_index": 0,
        "task_name": f"Solve {task.task_id}",
        "description": task.instructions,
        "task_category": "benchmark",
        "complexity": "medium",
        "scope": {"paths": task.scope},
        "acceptance_criteria": task.criteria,
        "max_attempts": bench.tries,
    }
    if bench.model not in KINDS:
        phase["escalation_policy"] = {"models": [bench.model]}
    data = {
        "run_id": f"{bench.bench_id}--{slug}"[:100],
        # Nothing of the benchmark's own id: a replay's prompts must match the recording's.
        "goal": f"Solve the benchmark task {task.task_id} so that its tests pass.",
        "workspace": str(repository),
        "project": _project_name(bench, task),
        "base_branch": "main",
        "max_attempts_per_phase": bench.tries,
        "memory": options.memory,
        # Some exercises' stubs do not compile until they are solved.
        "allow_broken_baseline": True,
        "tiers": [{"tier_index": 0, "tier_name": "Task", "phases": [phase]}],
    }
    if task.test_command:
        data["test_command"] = task.test_command
    return data


def _project_name(bench: BenchRun, task: suites.Task) -> str:
    return f"bench {task.task_id} ({_suite_key(bench)})"[:200]


def _suite_key(bench: BenchRun) -> str:
    suite = Path(bench.suite)
    digest = hashlib.sha256(str(suite).encode()).hexdigest()[:8]
    return f"{suite.stem}-{digest}"


# -- task repositories -----------------------------------------------------------------


def prepare(bench: BenchRun, task: suites.Task) -> tuple[Path, Path]:
    """The task's repository (created once per suite and task; the reference solution is
    kept beside it, never in it) and its reference file."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "__", task.task_id)
    home = Path(settings.AUTOPACK_HOME) / "bench" / "repos" / _suite_key(bench) / slug
    repository, reference = home / "repo", home / "reference.json"
    if not (home / "ready").is_file():
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        if task.repository:
            _swebench_repository(task, repository)
        else:
            _exercise_repository(task, repository)
        tested = sorted(repomap.identifiers(task.tests_text))
        reference.write_text(json.dumps({"files": task.reference, "tested": tested}))
        (home / "ready").write_text(task.task_id)
    else:
        task.reference = {
            p: tuple(v) for p, v in json.loads(reference.read_text())["files"].items()
        }
        if task.repository and not task.scope:
            task.scope = _top_level(repository)
    return repository, reference


def _git(repository: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *GIT_IDENTITY, *args],
        cwd=repository,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def _exercise_repository(task: suites.Task, repository: Path) -> None:
    for path, content in task.files.items():
        target = repository / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    _git(repository, "init", "-q", "-b", "main")
    _git(repository, "add", "-A")
    _git(repository, "commit", "-q", "-m", f"Exercise {task.task_id}")


def _swebench_repository(task: suites.Task, repository: Path) -> None:
    """The instance's repository at its base commit with the test patch committed on a
    `main` branch; the reference (old and new content of each file the gold patch
    changes) is read by applying the gold patch and taking it back."""
    subprocess.run(
        ["git", "clone", "-q", "--no-checkout", task.repository, str(repository)],
        check=True,
        capture_output=True,
        text=True,
    )
    _git(repository, "checkout", "-q", "-B", "main", task.base_commit)
    _apply(repository, task.test_patch, "test patch")
    _git(repository, "add", "-A")
    _git(repository, "commit", "-q", "-m", f"Test patch of {task.task_id}")
    if not task.scope:
        task.scope = _top_level(repository)
    if task.gold_patch:
        paths = suites.patch_paths(task.gold_patch)
        before = {p: _text(repository / p) for p in paths}
        _apply(repository, task.gold_patch, "gold patch")
        task.reference = {p: (before[p], _text(repository / p) or "") for p in paths}
        _git(repository, "reset", "-q", "--hard")
        _git(repository, "clean", "-qfd")


def _apply(repository: Path, patch: str, what: str) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".patch", delete=False) as handle:
        handle.write(patch if patch.endswith("\n") else patch + "\n")
    try:
        _git(repository, "apply", handle.name)
    except subprocess.CalledProcessError as exc:
        raise suites.SuiteError(f"the {what} does not apply: {exc.stderr.strip()}") from None
    finally:
        Path(handle.name).unlink()


def _text(path: Path) -> str | None:
    return path.read_text() if path.is_file() else None


def _top_level(repository: Path) -> list[str]:
    names = _git(repository, "ls-tree", "--name-only", "HEAD").split()
    return [n for n in names if not n.startswith(".git")] or ["."]


# -- results -----------------------------------------------------------------------------


def collect(task: BenchTask, run: Run, definition: suites.Task) -> None:
    """The task's result from its finished run."""
    attempts = list(run.attempts.order_by("number"))
    passed = next((a for a in attempts if a.state == AttemptState.PASSED), None)
    calls = LlmCall.objects.filter(run=run)
    usage = calls.aggregate(p=Sum("prompt_tokens"), c=Sum("completion_tokens"))
    kinds = [a.failure_kind for a in attempts]
    task.tries_used = len(attempts)
    task.malformed = kinds.count("malformed_reply")
    task.well_formed = task.malformed == 0
    task.syntax_errors = kinds.count("syntax_error")
    task.test_timeouts = kinds.count("timeout")
    task.context_exhausted = sum(
        1
        for error in calls.exclude(error="").values_list("error", flat=True)
        if CONTEXT_EXHAUSTED.search(error)
    )
    task.prompt_tokens, task.completion_tokens = usage["p"] or 0, usage["c"] or 0
    task.cost_usd = run.cost_usd
    if run.started_at and run.finished_at:
        task.seconds = (run.finished_at - run.started_at).total_seconds()
    task.passed_try = passed.number if passed else None
    if run.state == RunState.DONE_SUCCESS:
        task.status = BenchTask.Status.PASSED
    elif run.failure_code in NOT_TRIED and not attempts:
        task.status, task.error = BenchTask.Status.ERROR, run.failure_reason[:4000]
    else:
        task.status = BenchTask.Status.FAILED
        task.error = run.failure_reason[:4000]
    if definition.fail_to_pass:
        task.tests = _swebench_tests(run, definition)
        if task.status == BenchTask.Status.PASSED and not task.tests["resolved"]:
            task.status = BenchTask.Status.FAILED
            task.passed_try = None
    task.save()


def _swebench_tests(run: Run, definition: suites.Task) -> dict:
    """Each FAIL_TO_PASS and PASS_TO_PASS test's outcome on the run's final commit (the
    results its last passing gate stored), and whether the instance is resolved."""
    final = (
        TestBaseline.objects.filter(project=run.project, commit=run.last_savepoint).first()
        if run.last_savepoint
        else None
    )
    tests = TestResults.from_record(final.results).tests if final else {}

    def outcome(test_id: str) -> str:
        return tests[test_id].outcome if test_id in tests else "not run"

    f2p = {t: outcome(t) for t in definition.fail_to_pass}
    p2p = {t: outcome(t) for t in definition.pass_to_pass}
    resolved = bool(final) and all(v == "passed" for v in [*f2p.values(), *p2p.values()])
    return {"FAIL_TO_PASS": f2p, "PASS_TO_PASS": p2p, "resolved": resolved}
