"""Every model call goes through here: budget checked before it is sent, recorded after
it returns (or fails)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from runs.engine.outcomes import BudgetExhausted, Cancelled, EnvironmentProblem, ProviderError
from runs.engine.protocols import LLMProvider, LLMRequest, LLMResponse, Recorder

# Without a provider-side token count, a prompt is assumed to cost one token per three
# bytes of UTF-8 plus a small overhead per message. Typical English and code run at three
# to four characters per token, so this errs on the side of stopping early.
BYTES_PER_TOKEN = 3
MESSAGE_OVERHEAD = 16

PROVIDER_KEYS = {
    "anthropic": "ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL for a proxy)",
    "openai": "OPENAI_API_KEY (and OPENAI_BASE_URL for an OpenAI-compatible server)",
}


def estimate_prompt_tokens(request: LLMRequest) -> int:
    text = request.system + "".join(m["content"] for m in request.messages)
    return math.ceil(len(text.encode()) / BYTES_PER_TOKEN) + MESSAGE_OVERHEAD * (
        len(request.messages) + 1
    )


def charged_tokens(request: LLMRequest, response: LLMResponse) -> int:
    """Tokens a call counts against the cap: the provider's total, else the worst case."""
    if response.total_tokens is not None:
        return response.total_tokens
    if response.prompt_tokens is not None and response.completion_tokens is not None:
        return response.prompt_tokens + response.completion_tokens
    return estimate_prompt_tokens(request) + request.max_tokens


@dataclass
class TokenBudget:
    cap: int | None
    used: int = 0

    def check(self, request: LLMRequest) -> None:
        if self.cap is None:
            return
        worst = estimate_prompt_tokens(request) + request.max_tokens
        if self.used + worst > self.cap:
            raise BudgetExhausted(
                f"token cap {self.cap:,} reached: {self.used:,} used, and the next "
                f"{request.role} call could need {worst:,} more (prompt about "
                f"{worst - request.max_tokens:,} + up to {request.max_tokens:,} output)"
            )


def split_model_id(model_id: str) -> tuple[str, str]:
    provider, _, model = model_id.partition("/")
    return provider, model


class LLMCaller:
    def __init__(
        self,
        providers: dict[str, LLMProvider],
        budget: TokenBudget,
        recorder: Recorder,
        override: LLMProvider | None = None,
    ) -> None:
        self.providers = providers
        self.budget = budget
        self.recorder = recorder
        self.override = override

    def provider_for(self, model_id: str) -> LLMProvider:
        if self.override is not None:
            return self.override
        name, _ = split_model_id(model_id)
        if name not in self.providers:
            raise EnvironmentProblem(
                f"Model {model_id} needs the {name} provider, which is not configured: set "
                f"{PROVIDER_KEYS.get(name, name.upper() + '_API_KEY')} in the environment of "
                "the worker (or of `autopack run`)."
            )
        return self.providers[name]

    def call(
        self, role: str, model_id: str, system: str, messages: list[dict[str, str]], max_tokens: int
    ) -> LLMResponse:
        provider = self.provider_for(model_id)
        if self.recorder.cancelled():
            raise Cancelled("the run was cancelled")
        request = LLMRequest(
            role=role,
            model=split_model_id(model_id)[1],
            system=system,
            messages=messages,
            max_tokens=max_tokens,
        )
        self.budget.check(request)
        started = time.monotonic()
        try:
            response = provider.complete(request)
        except ProviderError as exc:
            self.recorder.llm_call(
                request, provider.name, None, str(exc), time.monotonic() - started, 0
            )
            raise
        charged = (
            charged_tokens(request, response) if getattr(provider, "bills_tokens", True) else 0
        )
        self.budget.used += charged
        self.recorder.llm_call(
            request, provider.name, response, "", time.monotonic() - started, charged
        )
        return response
