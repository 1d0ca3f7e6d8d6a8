"""Every model call goes through here: admitted by the budget before it is sent, charged
and recorded after it returns (or fails)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal

from runs.engine.budget import Budget
from runs.engine.outcomes import Cancelled, ConfigurationError, ProviderError
from runs.engine.protocols import LLMProvider, LLMRequest, LLMResponse, Recorder
from runs.engine.providers import REGISTRY

# Without a provider-side count, a prompt is taken to cost one token per three bytes of
# UTF-8 plus an overhead per message. English and code run at three to four characters
# a token, so this errs towards stopping early. A provider's own count gets a margin too,
# since it is documented as an estimate.
BYTES_PER_TOKEN = 3
MESSAGE_OVERHEAD = 16
COUNT_MARGIN = 1.05
# No tokenizer writes this many characters per output token on average: a longer reply
# did not come from the model asked (a broken or hostile server) and is refused.
MAX_REPLY_CHARS_PER_TOKEN = 32


def estimate_prompt_tokens(request: LLMRequest) -> int:
    text = request.system + "".join(m["content"] for m in request.messages)
    return math.ceil(len(text.encode()) / BYTES_PER_TOKEN) + MESSAGE_OVERHEAD * (
        len(request.messages) + 1
    )


def split_model_id(model_id: str) -> tuple[str, str]:
    provider, _, model = model_id.partition("/")
    return provider, model


def provider_for(
    providers: dict[str, LLMProvider], model_id: str, override: LLMProvider | None = None
) -> LLMProvider:
    """The provider serving a model; a ConfigurationError saying what to set if none."""
    if override is not None:
        return override
    name, _ = split_model_id(model_id)
    if name not in providers:
        raise ConfigurationError(
            f"Model {model_id} needs the {name} provider, which is not configured: set "
            f"{REGISTRY[name].variables} in the environment of the worker (or of "
            "`autopack run`)."
        )
    return providers[name]


@dataclass(frozen=True)
class CallRecord:
    role: str
    model_id: str
    provider: str
    request: LLMRequest
    response: LLMResponse | None
    error: str
    status: int | None
    duration: float
    prompt_tokens_checked: int  # the prompt size the budget admitted the call with
    charged_tokens: int  # counted against token caps: reported total, else the worst case
    cost: Decimal | None  # exact, from reported usage; None when unknown
    charged_cost: Decimal  # counted against cost caps: the exact cost, else the worst case


class LLMCaller:
    def __init__(
        self,
        providers: dict[str, LLMProvider],
        budget: Budget,
        recorder: Recorder,
        override: LLMProvider | None = None,
    ) -> None:
        self.providers = providers
        self.budget = budget
        self.recorder = recorder
        self.override = override

    def provider_for(self, model_id: str) -> LLMProvider:
        return provider_for(self.providers, model_id, self.override)

    def counter(self, model_id: str) -> Callable[[str], int | None] | None:
        """Counts text in the model's own tokens, where its provider can (Anthropic's
        token counting); None where it cannot. Counting is not a model call."""
        provider = self.provider_for(model_id)
        count = getattr(provider, "count_tokens", None)
        if count is None:
            return None
        model = split_model_id(model_id)[1]

        def counted(text: str) -> int | None:
            message = [{"role": "user", "content": text}]
            return count(LLMRequest("builder", model, "", message, 1))

        return counted

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
        billed = getattr(provider, "bills_tokens", True)
        prompt_tokens = self._prompt_tokens(provider, request) if billed else 0
        if billed:
            allowed = self.budget.admit(model_id, request, prompt_tokens)
            if allowed < max_tokens:
                self.recorder.event(
                    "max_tokens_lowered",
                    role=role,
                    model=model_id,
                    requested=max_tokens,
                    allowed=allowed,
                )
                request = replace(request, max_tokens=allowed)
        started = time.monotonic()
        try:
            response = provider.complete(request)
        except ProviderError as exc:
            self._record(model_id, provider, request, None, exc, started, prompt_tokens, billed)
            raise
        limit = request.max_tokens * MAX_REPLY_CHARS_PER_TOKEN
        if len(response.text) > limit:
            error = ProviderError(
                f"{provider.name} returned a reply of {len(response.text)} characters for at "
                f"most {request.max_tokens} output tokens (limit {limit}); it was refused"
            )
            dropped = replace(response, text="")
            self._record(
                model_id, provider, request, dropped, error, started, prompt_tokens, billed
            )
            raise error
        self._record(model_id, provider, request, response, None, started, prompt_tokens, billed)
        return response

    def _prompt_tokens(self, provider: LLMProvider, request: LLMRequest) -> int:
        # A provider that knows the size to admit (a replay: the recorded run's) decides.
        known = getattr(provider, "prompt_tokens_for", None)
        size = known(request) if known else None
        if size is not None:
            return size
        counter = getattr(provider, "count_tokens", None)
        counted = counter(request) if counter else None
        if counted is None:
            return estimate_prompt_tokens(request)
        return math.ceil(counted * COUNT_MARGIN) + MESSAGE_OVERHEAD

    def _record(
        self,
        model_id: str,
        provider: LLMProvider,
        request: LLMRequest,
        response: LLMResponse | None,
        error: ProviderError | None,
        started: float,
        prompt_tokens: int,
        billed: bool,
    ) -> None:
        tokens, cost, charged_cost = 0, Decimal(0) if not billed else None, Decimal(0)
        if billed and response is not None:
            tokens = _reported_total(response)
            cost = self.budget.prices.cost(model_id, response)
            worst_tokens = prompt_tokens + request.max_tokens
            price = self.budget.prices.price(model_id)
            worst_cost = (
                (
                    prompt_tokens * price.per_prompt_token_worst()
                    + request.max_tokens * price.per_output_token()
                )
                if price
                else Decimal(0)
            )
            charged_cost = cost if cost is not None else worst_cost
            tokens = tokens if tokens is not None else worst_tokens
        self.budget.charge(tokens or 0, charged_cost)
        self.recorder.llm_call(
            CallRecord(
                role=request.role,
                model_id=model_id,
                provider=provider.name,
                request=request,
                response=response,
                error=str(error) if error else "",
                status=error.status if error else None,
                duration=time.monotonic() - started,
                prompt_tokens_checked=prompt_tokens,
                charged_tokens=tokens or 0,
                cost=cost,
                charged_cost=charged_cost,
            )
        )


def _reported_total(response: LLMResponse) -> int | None:
    if response.total_tokens is not None:
        return response.total_tokens
    if response.prompt_tokens is not None and response.completion_tokens is not None:
        return response.prompt_tokens + response.completion_tokens
    return None
