"""A run's model calls as a portable recording, and the key a live request is matched to
a recorded one by.

The key is a hash of what the model was asked: role, model, system prompt, messages,
output allowance and temperature (Autopack sets none). Before hashing, everything that
differs between two executions of the same run is normalised away: the run's id,
worktree, integration branch, AUTOPACK_HOME and environments folder; timestamps, dates,
durations, temporary paths, uuids, hex addresses and commit ids; and the prompt sections
that come from the project's history rather than from the run (lessons and memories).
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from runs.engine.prompts import LESSONS_HEADING, MEMORY_HEADING
from runs.engine.protocols import LLMRequest, LLMResponse

FORMAT = "autopack-recording"
VERSION = 1
# Stop reasons that mean the reply was cut at its output allowance.
TRUNCATING_STOPS = ("max_tokens", "length")

_HISTORY = re.compile(
    r"\n\n(?:" + "|".join(map(re.escape, (LESSONS_HEADING, MEMORY_HEADING))) + r").*?(?=\n\n# |\Z)",
    re.DOTALL,
)
_TEMP_ROOTS = sorted(
    {"/tmp", "/var/tmp", "/var/folders", "/private/var/folders"} | {tempfile.gettempdir()},
    key=len,
    reverse=True,
)
# In order: a uuid holds hex runs the commit pattern would take apart.
_PATTERNS = (
    (re.compile(r"\b[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}\b", re.IGNORECASE), "<uuid>"),
    (
        re.compile(
            r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?"
            r"(?:Z|[+-]\d{2}:?\d{2})?)?\b"
        ),
        "<time>",
    ),
    (re.compile(r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b"), "<time>"),
    (re.compile(r"\b0x[0-9a-f]{4,}\b", re.IGNORECASE), "<addr>"),
    # Savepoint commits carry their commit time, so their ids differ in every execution.
    (re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}\b"), "<commit>"),
    (re.compile(r"\b\d+(?:\.\d+)?\s?(?:ms|s|secs?|seconds)\b"), "<duration>"),
    (
        re.compile(
            r"(?<![\w.~-])(?:" + "|".join(map(re.escape, _TEMP_ROOTS)) + r")(?![\w.-])"
            r"[^\s'\"`:;,()\[\]{}<>|]*"
        ),
        "<tmp>",
    ),
)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Identity(_Frozen):
    """What belongs to one execution of a run and is normalised out of its prompts."""

    run_id: str
    worktree: str
    branch: str
    home: str
    environments: str = ""


def normalise(text: str, identities: Sequence[Identity]) -> str:
    """`text` with what differs between executions of a run replaced by placeholders.
    Both sides of a comparison are normalised with the same identities (the recorded
    execution's and the replay's), so an id that also occurs as a word is replaced alike."""
    text = _HISTORY.sub("", text)
    literals = [
        (value, placeholder)
        for identity in identities
        for value, placeholder in (
            (identity.worktree, "<worktree>"),
            (identity.environments, "<environments>"),
            (identity.home, "<home>"),
            (identity.branch, "<branch>"),
        )
        if value
    ]
    for value, placeholder in sorted(literals, key=lambda pair: len(pair[0]), reverse=True):
        text = text.replace(value, placeholder)
    for run_id in sorted({i.run_id for i in identities if i.run_id}, key=len, reverse=True):
        text = re.sub(rf"(?<![\w-]){re.escape(run_id)}(?![\w-])", "<run>", text)
    for pattern, placeholder in _PATTERNS:
        text = pattern.sub(placeholder, text)
    return text


def normalised_prompt(request: LLMRequest, identities: Sequence[Identity]) -> str:
    """The system prompt and messages as one normalised text (also for showing where two
    requests differ)."""
    parts = [request.system, *(f"[{m['role']}]\n{m['content']}" for m in request.messages)]
    return normalise("\n\n".join(parts), identities)


def _digest(request: LLMRequest, identities: Sequence[Identity], max_tokens: int | None) -> str:
    payload = [
        request.role,
        request.model,
        normalise(request.system, identities),
        [[m["role"], normalise(m["content"], identities)] for m in request.messages],
        max_tokens,
        None,  # temperature: Autopack sets none
    ]
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode()).hexdigest()


def request_key(request: LLMRequest, identities: Sequence[Identity]) -> str:
    return _digest(request, identities, request.max_tokens)


def prompt_key(request: LLMRequest, identities: Sequence[Identity]) -> str:
    """The key without the output allowance, which the budget may lower after it has
    sized the prompt."""
    return _digest(request, identities, None)


class RecordedCall(_Frozen):
    """One model call as telemetry.models.LlmCall stores it (secrets already scrubbed)."""

    phase_id: str = ""
    attempt: int | None = None
    role: str
    provider: str
    model: str
    system_prompt: str
    request_messages: list[dict[str, str]]
    max_tokens: int
    response_text: str
    stop_reason: str
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    prompt_tokens_checked: int
    charged_tokens: int
    cost_usd: Decimal | None
    charged_cost_usd: Decimal
    status_code: int | None = None
    error: str = ""

    def request(self) -> LLMRequest:
        return LLMRequest(
            self.role, self.model, self.system_prompt, self.request_messages, self.max_tokens
        )

    def response(self) -> LLMResponse:
        return LLMResponse(
            text=self.response_text,
            stop_reason=self.stop_reason,
            truncated=self.stop_reason in TRUNCATING_STOPS,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            total_tokens=self.total_tokens,
            cache_read_tokens=self.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens,
        )


class AttemptOutcome(_Frozen):
    number: int
    state: str
    outcome: str
    model: str

    def __str__(self) -> str:
        return f"{self.number} {self.state} {self.outcome or '-'} ({self.model})"


class PhaseOutcome(_Frozen):
    phase_id: str
    state: str
    attempts: list[AttemptOutcome]


class Outcomes(_Frozen):
    """What a replay must reproduce."""

    state: str
    failure_code: str
    phases: list[PhaseOutcome]
    final_diff: str
    tokens_used: int
    cost_usd: Decimal


class ProjectCommands(_Frozen):
    """Project settings a run config can also carry: a replay elsewhere takes them."""

    setup_command: str = ""
    test_command: str = ""
    dependency_resolution: str = ""


class Recording(_Frozen):
    format: Literal["autopack-recording"] = FORMAT
    version: Literal[1] = VERSION
    autopack_version: str
    run_id: str
    config: dict[str, Any]
    repository: str
    base_commit: str
    project: ProjectCommands = ProjectCommands()
    identity: Identity
    bills_tokens: bool  # whether the recorded run's calls counted against its caps
    calls: list[RecordedCall]
    outcomes: Outcomes


def differences(recorded: Outcomes, replayed: Outcomes) -> list[str]:
    """How a replay's outcomes differ from the recording's, one line each; empty when
    they are the same."""
    found = []
    if (recorded.state, recorded.failure_code) != (replayed.state, replayed.failure_code):
        found.append(
            f"run: recorded {recorded.state} {recorded.failure_code}".rstrip()
            + f", replayed {replayed.state} {replayed.failure_code}".rstrip()
        )
    replayed_phases = {p.phase_id: p for p in replayed.phases}
    for phase in recorded.phases:
        other = replayed_phases.get(phase.phase_id)
        if other is None:
            found.append(f"phase {phase.phase_id}: not in the replay")
            continue
        if phase.state != other.state:
            found.append(f"phase {phase.phase_id}: recorded {phase.state}, replayed {other.state}")
        if phase.attempts != other.attempts:
            found.append(
                f"phase {phase.phase_id} attempts: recorded "
                f"[{'; '.join(map(str, phase.attempts))}], replayed "
                f"[{'; '.join(map(str, other.attempts))}]"
            )
    if recorded.final_diff != replayed.final_diff:
        found.append(
            "final diff differs:\n" + first_difference(recorded.final_diff, replayed.final_diff)
        )
    if recorded.tokens_used != replayed.tokens_used:
        found.append(
            f"tokens_used: recorded {recorded.tokens_used}, replayed {replayed.tokens_used}"
        )
    if recorded.cost_usd != replayed.cost_usd:
        found.append(f"cost_usd: recorded {recorded.cost_usd}, replayed {replayed.cost_usd}")
    return found


def first_difference(recorded: str, replayed: str, width: int = 200) -> str:
    """The first line where two texts differ, as both have it."""
    ours, theirs = recorded.splitlines(), replayed.splitlines()
    line = next(
        (n for n, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b),
        min(len(ours), len(theirs)),
    )
    shown = [
        f"  {what} line {line + 1}: "
        + (repr(lines[line][:width]) if line < len(lines) else "(ends before it)")
        for what, lines in (("recorded", ours), ("replayed", theirs))
    ]
    return "\n".join(shown)
