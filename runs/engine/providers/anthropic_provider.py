from __future__ import annotations

import anthropic

from runs.engine.outcomes import ProviderError
from runs.engine.protocols import LLMRequest, LLMResponse
from runs.engine.providers.errors import UNREADABLE, provider_message, unreadable


class AnthropicProvider:
    """Messages API through the official SDK; its retries for 429/5xx stay on."""

    name = "anthropic"

    def __init__(
        self,
        api_key: str,
        base_url: str | None = None,
        max_retries: int = 3,
        timeout: float = 600.0,
    ) -> None:
        self.client = anthropic.Anthropic(
            api_key=api_key, base_url=base_url or None, max_retries=max_retries, timeout=timeout
        )

    def count_tokens(self, request: LLMRequest) -> int | None:
        """The prompt's size by Anthropic's own count; None if the count is unavailable."""
        try:
            counted = self.client.messages.count_tokens(
                model=request.model, system=request.system, messages=request.messages
            )
        except anthropic.APIError:
            return None
        return counted.input_tokens

    def complete(self, request: LLMRequest) -> LLMResponse:
        try:
            message = self.client.messages.create(
                model=request.model,
                max_tokens=request.max_tokens,
                system=request.system,
                messages=request.messages,
            )
            return _response(message)
        except anthropic.APIStatusError as exc:
            message = provider_message(exc.body, exc.message)
            raise ProviderError(
                f"Anthropic API error {exc.status_code}: {message}", status=exc.status_code
            ) from None
        except anthropic.APIError as exc:
            raise ProviderError(f"Anthropic API error: {exc.message}") from None
        except UNREADABLE as exc:
            raise unreadable("Anthropic", exc) from None


def _response(message) -> LLMResponse:
    text = "".join(block.text for block in message.content if block.type == "text")
    usage = message.usage
    cache_read = usage.cache_read_input_tokens
    cache_write = usage.cache_creation_input_tokens
    # Anthropic reports input (uncached), cache reads, cache writes and output apart;
    # the total is their sum, which is what a token cap has to count.
    total = usage.input_tokens + usage.output_tokens + (cache_read or 0) + (cache_write or 0)
    return LLMResponse(
        text=text,
        stop_reason=message.stop_reason or "",
        truncated=message.stop_reason == "max_tokens",
        prompt_tokens=usage.input_tokens,
        completion_tokens=usage.output_tokens,
        total_tokens=total,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
    )
