"""The Django side of the engine's Recorder: events, LLM calls and cancellation."""

from __future__ import annotations

from typing import Any

from django.db.models import F

from runs.engine.protocols import LLMRequest, LLMResponse
from runs.models import Attempt, Phase, Run
from runs.services import record_event
from telemetry.models import LlmCall


class DjangoRecorder:
    def __init__(
        self, run: Run, phase: Phase | None = None, attempt: Attempt | None = None
    ) -> None:
        self.run = run
        self.phase = phase
        self.attempt = attempt

    def event(self, kind: str, **payload: Any) -> None:
        record_event(self.run, kind, **payload)

    def llm_call(
        self,
        request: LLMRequest,
        provider: str,
        response: LLMResponse | None,
        error: str,
        duration: float,
        charged_tokens: int,
    ) -> None:
        call = LlmCall.objects.create(
            run=self.run,
            phase=self.phase,
            attempt=self.attempt,
            role=request.role,
            provider=provider,
            model=request.model,
            system_prompt=request.system,
            request_messages=request.messages,
            max_tokens=request.max_tokens,
            response_text=response.text if response else "",
            prompt_tokens=response.prompt_tokens if response else None,
            completion_tokens=response.completion_tokens if response else None,
            total_tokens=response.total_tokens if response else None,
            cache_read_tokens=response.cache_read_tokens if response else None,
            cache_write_tokens=response.cache_write_tokens if response else None,
            charged_tokens=charged_tokens,
            stop_reason=response.stop_reason if response else "",
            duration_ms=round(duration * 1000),
            error=error,
        )
        if charged_tokens:
            Run.objects.filter(pk=self.run.pk).update(tokens_used=F("tokens_used") + charged_tokens)
        self.event(
            "llm_call",
            id=call.id,
            role=request.role,
            provider=provider,
            model=request.model,
            prompt_tokens=call.prompt_tokens,
            completion_tokens=call.completion_tokens,
            total_tokens=call.total_tokens,
            stop_reason=call.stop_reason,
            duration_ms=call.duration_ms,
            error=error,
        )

    def cancelled(self) -> bool:
        return Run.objects.filter(pk=self.run.pk, cancel_requested=True).exists()
