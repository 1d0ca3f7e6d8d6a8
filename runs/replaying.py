"""Record and replay: a finished run's model calls and outcomes as a portable recording,
and replays that execute a run again with the recorded replies instead of a model.

A replay run's `provider` names its recording: `replay:RUN_ID` (the calls of a run in
this database) or `replay:file:/abs/path.json` (an exported recording).
"""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path

from django.conf import settings
from pydantic import ValidationError

from governance.secrets import scrub
from runs import services
from runs.config import json_path
from runs.engine.outcomes import ConfigurationError
from runs.engine.providers.replay import ReplayProvider
from runs.engine.recording import (
    AttemptOutcome,
    Identity,
    Outcomes,
    PhaseOutcome,
    ProjectCommands,
    RecordedCall,
    Recording,
    differences,
)
from runs.engine.workspace import run_git
from runs.models import Attempt, Run
from runs.queue import enqueue_advance
from telemetry.models import LlmCall

# runs.providers routes a run whose provider starts with "replay:" here.
FROM_RUN = "replay:"
FROM_FILE = "replay:file:"
PROVIDER_CHARS = 500  # Run.provider's length

Source = str | Path | Run


class RecordingError(ValueError):
    """A recording that cannot be read or made; the message says which and why."""


def replay_provider(run: Run) -> ReplayProvider:
    """The provider answering every model call of a replay run, continuing after the
    calls the run has already made (in this process or another)."""
    source = run.provider.removeprefix(FROM_RUN)
    try:
        if source.startswith("file:"):
            recording = read_recording(Path(source.removeprefix("file:")))
            calls, recorded, bills = recording.calls, recording.identity, recording.bills_tokens
        else:
            recorded_run = _finished_run(source)
            calls, recorded = calls_of(recorded_run), identity_of(recorded_run)
            bills = billed(calls)
    except RecordingError as exc:
        raise ConfigurationError(f"run {run.run_id} replays a recording: {exc}") from None
    done = [_recorded(call).request() for call in LlmCall.objects.filter(run=run).order_by("id")]
    return ReplayProvider(
        calls,
        recorded,
        identity_of(run),
        scrub,
        bills_tokens=bills,
        done=done,
        where=lambda: _position(run),
    )


def identity_of(run: Run) -> Identity:
    home = Path(settings.AUTOPACK_HOME)
    return Identity(
        run_id=run.run_id,
        worktree=run.worktree_path or str(home / "workspaces" / run.run_id),
        branch=run.integration_branch,
        home=str(home),
        environments=str(settings.AUTOPACK_ENVIRONMENTS),
    )


def _position(run: Run) -> str:
    attempt = Attempt.objects.filter(run=run).select_related("phase").order_by("-id").first()
    return f"phase {attempt.phase.phase_id}, attempt {attempt.number}" if attempt else ""


def load(source: Source) -> Recording:
    """A recording from a run (or its id) in this database, or from a recording file."""
    if isinstance(source, Run):
        return recording_of(source)
    if _is_file(source):
        return read_recording(Path(source))
    return recording_of(_finished_run(str(source)))


def _is_file(source: Source) -> bool:
    # Run ids are slugs: a path or a file name is never one.
    return isinstance(source, Path) or (
        isinstance(source, str) and ("/" in source or source.endswith(".json"))
    )


def _finished_run(run_id: str) -> Run:
    run = Run.objects.select_related("project").filter(run_id=run_id).first()
    if run is None:
        raise RecordingError(f"there is no run {run_id!r} (and no recording file of that name)")
    if not run.is_final:
        raise RecordingError(f"run {run_id} has not finished ({run.state}): record a finished run")
    return run


def recording_of(run: Run) -> Recording:
    project = run.project
    calls = calls_of(run)
    return Recording(
        autopack_version=version("autopack"),
        run_id=run.run_id,
        config=run.config,
        repository=project.repository,
        base_commit=run.base_commit,
        project=ProjectCommands(
            setup_command=project.setup_command,
            test_command=project.test_command,
            dependency_resolution=project.dependency_resolution,
        ),
        identity=identity_of(run),
        bills_tokens=billed(calls),
        calls=calls,
        outcomes=outcomes_of(run),
    )


def calls_of(run: Run) -> list[RecordedCall]:
    rows = LlmCall.objects.filter(run=run).select_related("phase", "attempt").order_by("id")
    return [_recorded(call) for call in rows]


def billed(calls: list[RecordedCall]) -> bool:
    """Whether the calls counted against the run's caps: a billed call is admitted with a
    prompt size, an unbilled one (scripted replies) with none."""
    return any(call.prompt_tokens_checked for call in calls)


def _recorded(call: LlmCall) -> RecordedCall:
    return RecordedCall(
        phase_id=call.phase.phase_id if call.phase else "",
        attempt=call.attempt.number if call.attempt else None,
        **{
            field: getattr(call, field)
            for field in RecordedCall.model_fields
            if field not in ("phase_id", "attempt")
        },
    )


def outcomes_of(run: Run) -> Outcomes:
    phases = run.phases.order_by("tier__index", "index").prefetch_related("attempts")
    return Outcomes(
        state=run.state,
        failure_code=run.failure_code,
        phases=[
            PhaseOutcome(
                phase_id=phase.phase_id,
                state=phase.state,
                attempts=[
                    AttemptOutcome(number=a.number, state=a.state, outcome=a.outcome, model=a.model)
                    for a in sorted(phase.attempts.all(), key=lambda a: a.number)
                ],
            )
            for phase in phases
        ],
        final_diff=final_diff(run),
        tokens_used=run.tokens_used,
        cost_usd=Decimal(run.cost_usd),
    )


def final_diff(run: Run) -> str:
    """What the run changed: its base commit to its last savepoint."""
    if not run.last_savepoint or run.last_savepoint == run.base_commit:
        return ""
    worktree = Path(run.worktree_path)
    if not worktree.is_dir():
        raise RecordingError(f"the worktree of run {run.run_id} ({worktree}) is gone")
    flags = ("--no-color", "--no-ext-diff", "--no-textconv", "--binary")
    changed = run_git(worktree, "diff", *flags, run.base_commit, run.last_savepoint)
    return changed.decode("utf-8", "surrogateescape")


def write_recording(recording: Recording, path: Path) -> None:
    path.write_text(recording.model_dump_json(indent=1) + "\n", encoding="utf-8")


def read_recording(path: Path) -> Recording:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordingError(f"cannot read the recording {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise RecordingError(f"{path} is not JSON: {exc}") from None
    try:
        return Recording.model_validate(data)
    except ValidationError as exc:
        problems = [f"{json_path(e['loc'])}: {e['msg']}" for e in exc.errors()[:10]]
        raise RecordingError(
            f"{path} is not an Autopack recording (`autopack recording export`): "
            + "; ".join(problems)
        ) from None


def start_replay(
    source: Source, repo: str | Path | None = None, run_id: str | None = None, enqueue: bool = False
) -> Run:
    """A new run that executes the recorded run again with its recorded replies: same
    config (memory off), same repository (or `repo`), from the recorded base commit."""
    recording = load(source)
    if _is_file(source):
        provider = FROM_FILE + str(Path(source).expanduser().resolve())
    else:
        provider = FROM_RUN + recording.run_id
    if len(provider) > PROVIDER_CHARS:
        raise RecordingError(
            f"the recording's path is longer than {PROVIDER_CHARS - len(FROM_FILE)} "
            f"characters: {source}; copy it somewhere shorter (`autopack recording import`)"
        )
    data = copy.deepcopy(recording.config)
    data.pop("repo", None)
    data["workspace"] = recording.repository
    if repo is not None:
        data["workspace"] = str(Path(repo).expanduser().resolve())
        if data["workspace"] != recording.repository:
            data.pop("project", None)  # the project is the one of this repository
    for field, value in recording.project.model_dump().items():
        if value and not data.get(field):
            data[field] = value
    data["run_id"] = run_id or _free_run_id(recording.run_id)
    data["memory"] = False
    run = services.create_run(data, provider=provider, enqueue=False)
    # The worktree starts at base_commit when it is set (runs.executor._workspace).
    Run.objects.filter(pk=run.pk).update(base_commit=recording.base_commit)
    run.base_commit = recording.base_commit
    if enqueue:
        enqueue_advance(run)
    return run


def _free_run_id(original: str) -> str:
    number = 1
    while True:
        suffix = f"-replay-{number}"
        candidate = original[: 100 - len(suffix)] + suffix
        if not Run.objects.filter(run_id=candidate).exists():
            return candidate
        number += 1


def compare(source: Source | Recording, replayed: Run) -> list[str]:
    """How the replay's outcomes differ from the recording's: phase and attempt
    outcomes, final diff, tokens and cost. Empty when they are identical."""
    recording = source if isinstance(source, Recording) else load(source)
    replayed.refresh_from_db()
    return differences(recording.outcomes, outcomes_of(replayed))
