"""Project environments and test baselines, from the Django side.

Which setup and test commands apply to a phase (phase over run over project over
detection), preparing the environment through the engine, and the reference results a
phase's gate compares with: the same command's results on the commit the phase starts
from, taken once per (command, commit, environment) and kept in the database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings

from governance.secrets import scrub, scrub_data
from runs import services
from runs.engine.gates.results import TestResults
from runs.engine.gates.tests import Runtime, run_tests
from runs.engine.gates.verdict import describe_counts
from runs.engine.outcomes import TestsCannotRun
from runs.engine.protocols import Recorder
from runs.engine.toolchains import Environment, EnvironmentCache, SetupOptions, prepare
from runs.engine.workspace import GitWorkspace
from runs.models import Phase, Resolution, Run, TestBaseline

OUTPUT_CHARS = 20_000


def setup_command(run: Run, phase: Phase) -> str:
    return phase.setup_command or run.setup_command or run.project.setup_command


def suite_command(run: Run, environment: Environment | None) -> str | None:
    """The run's test command: the run's, else the project's, else the detected one."""
    return (
        run.test_command
        or run.project.test_command
        or (environment.test_command if environment else None)
    )


@dataclass(frozen=True)
class GateCommand:
    command: str
    own: bool  # the phase's own test_command: it must succeed
    criteria: bool  # the acceptance criteria's tests are looked for in its results


def gate_commands(run: Run, phase: Phase, environment: Environment | None) -> list[GateCommand]:
    """The test commands a phase's gates run: the run's suite, so that nothing that
    passed breaks, and the phase's own test_command when it has one."""
    suite = suite_command(run, environment)
    own = phase.test_command
    if not own or own == suite:
        return [GateCommand(suite, own=bool(own), criteria=True)] if suite else []
    commands = [GateCommand(suite, own=False, criteria=False)] if suite else []
    return [*commands, GateCommand(own, own=True, criteria=True)]


def options(run: Run, phase: Phase, workspace: GitWorkspace) -> SetupOptions:
    return SetupOptions(
        setup_command=setup_command(run, phase),
        resolution=run.dependency_resolution
        or run.project.dependency_resolution
        or Resolution.COMMIT_DATE,
        as_of=workspace.committed_at(run.base_commit or "HEAD"),
        timeout=settings.AUTOPACK_SETUP_TIMEOUT,
        sandbox=bool(run.sandboxed),
        pythons=tuple(settings.AUTOPACK_PYTHONS),
        broken_code_allowed=bool(run.config.get("allow_broken_baseline")),
    )


def prepare_for(
    run: Run, phase: Phase, workspace: GitWorkspace, recorder: Recorder
) -> Environment | None:
    """The environment the phase's commands run in; raises SetupFailed (a user error
    naming what to set) when it cannot be prepared."""
    environment = prepare(
        workspace.root,
        settings.AUTOPACK_HOME / "layers" / run.run_id,
        EnvironmentCache(settings.AUTOPACK_ENVIRONMENTS),
        options(run, phase, workspace),
        run.project.name,
        recorder,
        prefer=(run.environment or {}).get("toolchain", ""),
    )
    workspace.keep = environment.keep if environment else ()
    if environment is None:
        if run.environment is None:
            Run.objects.filter(pk=run.pk).update(environment={})
            run.environment = {}
            command = phase.test_command or suite_command(run, None)
            message = (
                f"no toolchain detected: `{command}` runs with the system's tools"
                if command
                else "no toolchain detected and no test_command set: nothing to test yet (a "
                "phase that sets up a project is tested with what it sets up)"
            )
            services.record_event(run, "environment", toolchain="", message=message)
        return None
    described = environment.describe()
    if (run.environment or {}).get("key") != environment.key:
        Run.objects.filter(pk=run.pk).update(environment=described)
        run.environment = described
        services.record_event(run, "environment", **described)
    return environment


def discard(key: str) -> bool:
    """Drop the cached environment `key` so the next preparation builds it again."""
    return EnvironmentCache(settings.AUTOPACK_ENVIRONMENTS).discard(key)


def reference(
    run: Run,
    command: str,
    workspace: GitWorkspace,
    environment: Environment | None,
    *,
    may_create: tuple[str, ...] | None = None,
) -> TestResults:
    """The command's results on the worktree's current commit, taken now unless they
    are known. Raises TestsCannotRun when they could not run, unless only because test
    files the command names do not exist yet inside `may_create` (a phase's scope: the
    phase is to write them) or because the run allows it (`allow_broken_baseline`: the
    phases are to make the tests build, as in a benchmark's stubs; their gates still
    require the tests to run)."""
    commit = workspace.head()
    key = baseline_key(run, environment.key if environment else None)
    row = TestBaseline.objects.filter(
        project=run.project, command=command, commit=commit, environment=key
    ).first()
    # Results that could not be used (the tests did not run, or failed unreadably) are
    # taken again: the cause may have been outside the project and fixed since.
    if row is None or row.problem or _unjudgeable(TestResults.from_record(row.results)):
        runtime = environment.runtime if environment else None
        results = run_tests(
            command,
            workspace.root,
            runtime or Runtime(),
            settings.AUTOPACK_GATE_TIMEOUT,
            sandbox=bool(run.sandboxed),
        )
        row = remember(run, command, commit, key, results)
        cached = False
    else:
        results = TestResults.from_record(row.results)
        cached = True
    seen = run.events.filter(
        kind="baseline", payload__command=command, payload__commit=commit
    ).exists()
    if seen and not row.problem and not _unjudgeable(results):
        return results
    services.record_event(
        run,
        "baseline",
        command=command,
        commit=commit,
        cached=cached,
        ran=row.ran,
        passed=row.passed,
        failed=row.failed,
        skipped=row.skipped,
        errors=row.errors,
        problem=row.problem,
        duration=round(row.duration, 3),
        summary=describe_counts(results),
    )
    problem = row.problem or _unjudgeable(results)
    broken_base_allowed = bool(run.config.get("allow_broken_baseline"))
    if problem and not broken_base_allowed and not _to_be_written(row.output, may_create):
        raise TestsCannotRun(_cannot_run(command, commit, problem, row.output, environment))
    return results


def _to_be_written(output: str, scope: tuple[str, ...] | None) -> bool:
    """pytest could not run only because test files it was given do not exist yet, and
    they are inside the phase's scope."""
    missing = re.findall(r"file or directory not found: (\S+)", output)
    if not missing or scope is None:
        return False
    prefixes = [s.strip().rstrip("/").removeprefix("./") for s in scope]
    return all(
        any(p in ("", ".") or path == p or path.startswith(p + "/") for p in prefixes)
        for path in (m.split("::")[0].removeprefix("./") for m in missing)
    )


def _unjudgeable(results: TestResults) -> str:
    """A command whose results cannot be read per test must succeed at every gate: if it
    fails already before any change, every phase would fail."""
    if results.per_test or results.exit_code == 0:
        return ""
    return (
        f"exits with {results.exit_code} before any change, and its results cannot be read "
        "test by test, so no change could pass"
    )


def baseline_key(run: Run, environment_key: str | None) -> str:
    """What, besides the command and the commit, decides a test run's results: the
    environment, and whether the sandbox kept the network away."""
    key = environment_key or "none"
    return key if run.sandboxed else f"{key}+unsandboxed"


def remember(run: Run, command: str, commit: str, key: str, results: TestResults) -> TestBaseline:
    counts = results.counts()
    row, _ = TestBaseline.objects.update_or_create(
        project=run.project,
        command=command,
        commit=commit,
        environment=key,
        defaults={
            "results": scrub_data(results.as_record()),
            "ran": counts["ran"],
            "passed": counts["passed"],
            "failed": counts["failed"],
            "skipped": counts["skipped"],
            "errors": counts["errors"],
            "problem": results.problem,
            "output": scrub(results.output[-OUTPUT_CHARS:]),
            "duration": results.duration,
        },
    )
    return row


def run_baselines(run: Run):
    """The test results the run's phases were compared with: on the base commit and on
    each savepoint a phase started from."""
    savepoints = run.attempts.exclude(savepoint="").values_list("savepoint", flat=True)
    return TestBaseline.objects.filter(
        project=run.project, commit__in=[run.base_commit, *savepoints]
    ).order_by("created_at")


def _cannot_run(
    command: str, commit: str, problem: str, output: str, environment: Environment | None
) -> str:
    where = (
        f"the {environment.toolchain} environment (dependencies {environment.resolution}; "
        f"install log: {environment.details.get('log_file')})"
        if environment
        else "no project environment (no toolchain was detected)"
    )
    detected = environment.test_command if environment else None
    if command != detected:
        advice = (
            "Check `test_command` (set on the phase, the run config or the project): run "
            "it by hand in the repository. If it is right, set `setup_command` to install "
            "what the tests need."
        )
    else:
        advice = (
            "Make the tests runnable before the run: set `setup_command` (project, run "
            "config or phase) to install what they need, or `test_command` to run them "
            "another way."
        )
    return (
        f"The project's tests cannot run on {commit[:10]}, so no change could be verified: "
        f"`{command}` {problem}.\n\nOutput (last lines):\n{output[-4000:]}\n\n"
        f"They ran in {where}. {advice}"
    )
