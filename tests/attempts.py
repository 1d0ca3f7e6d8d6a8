"""One engine attempt with a scripted Builder reply, without Django: for engine tests and
bench scripts that exercise the real attempt code (parse, path policy, apply, gates)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from runs.engine.attempt import AttemptDeps, Limits, run_attempt
from runs.engine.budget import Allowance, Budget
from runs.engine.edits import edit_format
from runs.engine.llm import LLMCaller
from runs.engine.outcomes import AttemptResult
from runs.engine.providers.scripted import ScriptedProvider
from runs.engine.spec import AttemptPlan, PhaseSpec
from runs.engine.workspace import GitWorkspace


class QuietRecorder:
    """The engine's Recorder, keeping events in a list."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    def event(self, kind: str, **payload) -> None:
        self.events.append((kind, payload))

    def llm_call(self, record) -> None:
        pass

    def cancelled(self) -> bool:
        return False


def scripted_attempt(
    workspace: GitWorkspace,
    reply: str,
    gates: list,
    scope: tuple[str, ...],
    criteria: tuple[str, ...] = (),
    number: int = 1,
    fmt: str = "search_replace",
    limits: Limits | None = None,
    allow_binary: bool = False,
    recorder: QuietRecorder | None = None,
) -> AttemptResult:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as script:
        json.dump({"builder": [reply]}, script)
    recorder = recorder or QuietRecorder()
    spec = PhaseSpec(
        run_id="r",
        phase_id="change",
        goal="A change",
        task_name="Make the change",
        description="",
        category="feature",
        complexity="low",
        scope_paths=scope,
        acceptance_criteria=criteria,
        allow_binary=allow_binary,
    )
    deps = AttemptDeps(
        llm=LLMCaller(
            {}, Budget([Allowance("run")]), recorder, ScriptedProvider(Path(script.name))
        ),
        workspace=workspace,
        edit_format=edit_format(fmt),
        gates=gates,
        recorder=recorder,
        limits=limits or Limits(),
    )
    try:
        return run_attempt(AttemptPlan(spec, number, "scripted/builder", None), deps)
    finally:
        Path(script.name).unlink()
