"""Replies from a recording of another run: the replay of a run asks no model.

Each request is scrubbed as stored calls were, normalised and hashed
(runs/engine/recording.py); the n-th request with a key gets the reply to the n-th
recorded request with it. A request the recording does not hold stops the run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence

from runs.engine.outcomes import FailureCode, ProviderError, RunStopped
from runs.engine.protocols import LLMRequest, LLMResponse
from runs.engine.recording import (
    Identity,
    RecordedCall,
    first_difference,
    normalised_prompt,
    prompt_key,
    request_key,
)

NOTICE = "replay: replies come from the recording of run {run_id}; no model was called"


class MissingRecording(RunStopped):
    """The replay asked something the recorded run did not: its prompts have diverged.
    Not a provider failure to retry, and not a missing provider for the Doctor to go on
    without: the run stops."""

    outcome = FailureCode.CONFIGURATION


class ReplayProvider:
    name = "replay"

    def __init__(
        self,
        calls: Sequence[RecordedCall],
        recorded: Identity,
        identity: Identity,
        scrub: Callable[[str], str],
        *,
        bills_tokens: bool,
        done: Iterable[LLMRequest] = (),
        where: Callable[[], str] = lambda: "",
    ) -> None:
        """`calls` and `recorded` are the recorded run's, `identity` the replay's own;
        `scrub` is the function stored calls were scrubbed with; `bills_tokens` whether the
        recorded calls counted against caps (a scripted run's did not, a model's did);
        `done` the requests this replay has already stored (a run stepped by several
        processes continues where it was); `where` names the phase and attempt asking."""
        self.source = recorded.run_id
        self.identities = (identity, recorded)
        self.scrub = scrub
        self.where = where
        self.bills_tokens = bills_tokens
        self.by_key: dict[str, list[RecordedCall]] = {}
        self.by_prompt: dict[str, list[RecordedCall]] = {}
        self.by_role: dict[str, list[RecordedCall]] = {}
        for call in calls:
            request = call.request()
            self.by_key.setdefault(request_key(request, self.identities), []).append(call)
            self.by_prompt.setdefault(prompt_key(request, self.identities), []).append(call)
            self.by_role.setdefault(call.role, []).append(call)
        self.used: Counter[tuple[str, str]] = Counter()
        for request in done:
            self._advance(self._scrubbed(request))

    @property
    def notice(self) -> str:
        return NOTICE.format(run_id=self.source)

    def prompt_tokens_for(self, request: LLMRequest) -> int:
        """The prompt size the recorded run's budget admitted this prompt with, so the
        replay's worst-case charges and lowered allowances are the recorded ones."""
        scrubbed = self._scrubbed(request)
        key = prompt_key(scrubbed, self.identities)
        call = self._next(self.by_prompt, "prompt", key)
        if call is None:
            raise self._missing(scrubbed, self.by_prompt.get(key, []))
        return call.prompt_tokens_checked

    def complete(self, request: LLMRequest) -> LLMResponse:
        scrubbed = self._scrubbed(request)
        key = request_key(scrubbed, self.identities)
        call = self._next(self.by_key, "key", key)
        if call is None:
            raise self._missing(scrubbed, self.by_key.get(key, []))
        self._advance(scrubbed)
        if call.error:
            raise ProviderError(call.error, call.status_code)
        return call.response()

    def _scrubbed(self, request: LLMRequest) -> LLMRequest:
        return LLMRequest(
            request.role,
            request.model,
            self.scrub(request.system),
            [{k: self.scrub(v) for k, v in m.items()} for m in request.messages],
            request.max_tokens,
        )

    def _next(
        self, index: dict[str, list[RecordedCall]], kind: str, key: str
    ) -> RecordedCall | None:
        calls = index.get(key, [])
        position = self.used[(kind, key)]
        return calls[position] if position < len(calls) else None

    def _advance(self, request: LLMRequest) -> None:
        self.used[("key", request_key(request, self.identities))] += 1
        self.used[("prompt", prompt_key(request, self.identities))] += 1
        self.used[("role", request.role)] += 1

    def _missing(self, request: LLMRequest, same: list[RecordedCall]) -> MissingRecording:
        where = self.where()
        if same:
            why = (
                f"the recording holds {len(same)} such request(s) and the replay has used them all"
            )
        else:
            why = "no recorded request is the same"
            recorded = self.by_role.get(request.role, [])
            position = self.used[("role", request.role)]
            if position < len(recorded):
                why += (
                    f"; the {request.role}'s request number {position + 1} of the recording "
                    "differs first at\n"
                    + first_difference(
                        normalised_prompt(recorded[position].request(), self.identities),
                        normalised_prompt(request, self.identities),
                    )
                )
        return MissingRecording(
            f"Replay of run {self.source}: no recorded reply for the {request.role}'s request "
            f"({where or 'outside any attempt'}, model {request.model}): {why}. The run "
            "stopped without asking a model. A replay needs the repository at the recorded "
            "base commit, the recorded run config, and the same Autopack version and model "
            "configuration."
        )
