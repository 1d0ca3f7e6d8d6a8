from __future__ import annotations

import openai

from runs.engine.outcomes import ProviderError
from runs.engine.protocols import LLMRequest, LLMResponse
from runs.engine.providers.errors import UNREADABLE, provider_message, unreadable


class OpenAIProvider:
    """Chat Completions through the official SDK, for OpenAI and any compatible server
    (Ollama, vLLM, llama.cpp server, LM Studio) at `base_url`."""

    name = "openai"

    def __init__(
        self,
        api_key: str,
        base_url: str | None = None,
        max_retries: int = 3,
        timeout: float = 600.0,
    ) -> None:
        self.client = openai.OpenAI(
            api_key=api_key, base_url=base_url or None, max_retries=max_retries, timeout=timeout
        )
        # OpenAI's own API wants max_completion_tokens (reasoning models reject max_tokens);
        # compatible servers mostly only know max_tokens.
        self.limit_field = "max_tokens" if base_url else "max_completion_tokens"

    def complete(self, request: LLMRequest) -> LLMResponse:
        messages = [{"role": "system", "content": request.system}, *request.messages]
        try:
            completion = self.client.chat.completions.create(
                model=request.model, messages=messages, **{self.limit_field: request.max_tokens}
            )
            if not completion.choices:
                raise ProviderError("OpenAI API returned no choices")
            return _response(completion)
        except openai.APIStatusError as exc:
            message = provider_message(exc.body, exc.message)
            raise ProviderError(
                f"OpenAI API error {exc.status_code}: {message}", status=exc.status_code
            ) from None
        except openai.APIError as exc:
            raise ProviderError(f"OpenAI API error: {exc.message}") from None
        except UNREADABLE as exc:
            raise unreadable("OpenAI", exc) from None


def _response(completion) -> LLMResponse:
    choice = completion.choices[0]
    usage = completion.usage
    details = getattr(usage, "prompt_tokens_details", None) if usage else None
    return LLMResponse(
        text=choice.message.content or "",
        stop_reason=choice.finish_reason or "",
        truncated=choice.finish_reason == "length",
        prompt_tokens=usage.prompt_tokens if usage else None,
        completion_tokens=usage.completion_tokens if usage else None,
        total_tokens=usage.total_tokens if usage else None,
        cache_read_tokens=getattr(details, "cached_tokens", None) if details else None,
    )
