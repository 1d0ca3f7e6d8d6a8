"""The Django side of the engine's Recorder: events, LLM calls and cancellation."""

from __future__ import annotations

import logging
from typing import Any

from django.db import DatabaseError, transaction
from django.db.models import F

from governance.secrets import scrub, scrub_data
from runs.engine.llm import CallRecord
from runs.lease import Lease
from runs.models import Attempt, Phase, Project, Run
from runs.services import record_event
from telemetry.models import LlmCall

logger = logging.getLogger(__name__)


def store_call(
    record: CallRecord,
    *,
    project: Project,
    run: Run | None = None,
    phase: Phase | None = None,
    attempt: Attempt | None = None,
) -> int:
    """The LlmCall row of one model call, secrets scrubbed; returns its id."""
    response = record.response
    with transaction.atomic():
        return LlmCall.objects.create(
            run=run,
            project=project,
            phase=phase,
            attempt=attempt,
            role=record.role,
            provider=record.provider,
            model=record.request.model,
            system_prompt=scrub(record.request.system),
            request_messages=scrub_data(record.request.messages),
            max_tokens=record.request.max_tokens,
            response_text=scrub(response.text) if response else "",
            prompt_tokens=response.prompt_tokens if response else None,
            completion_tokens=response.completion_tokens if response else None,
            total_tokens=response.total_tokens if response else None,
            cache_read_tokens=response.cache_read_tokens if response else None,
            cache_write_tokens=response.cache_write_tokens if response else None,
            prompt_tokens_checked=record.prompt_tokens_checked,
            charged_tokens=record.charged_tokens,
            cost_usd=record.cost,
            charged_cost_usd=record.charged_cost,
            status_code=record.status,
            stop_reason=response.stop_reason if response else "",
            duration_ms=round(record.duration * 1000),
            error=scrub(record.error),
        ).id


class DjangoRecorder:
    def __init__(
        self,
        run: Run,
        phase: Phase | None = None,
        attempt: Attempt | None = None,
        lease: Lease | None = None,
    ) -> None:
        self.run = run
        self.phase = phase
        self.attempt = attempt
        self.lease = lease

    def event(self, kind: str, **payload: Any) -> None:
        record_event(self.run, kind, **payload)

    def llm_call(self, record: CallRecord) -> None:
        # Spend counters first and unconditionally: they are what the caps are checked
        # against. The detailed row is telemetry; failing to store it must not stop a build.
        spend = {
            "tokens_used": F("tokens_used") + record.charged_tokens,
            "cost_usd": F("cost_usd") + record.charged_cost,
        }
        Run.objects.filter(pk=self.run.pk).update(**spend)
        if self.phase is not None:
            Phase.objects.filter(pk=self.phase.pk).update(**spend)
        call_id = self._store(record)
        response = record.response
        self.event(
            "llm_call",
            id=call_id,
            role=record.role,
            provider=record.provider,
            model=record.request.model,
            prompt_tokens=response.prompt_tokens if response else None,
            completion_tokens=response.completion_tokens if response else None,
            total_tokens=response.total_tokens if response else None,
            cost_usd=str(record.cost) if record.cost is not None else None,
            stop_reason=response.stop_reason if response else "",
            duration_ms=round(record.duration * 1000),
            error=record.error,
        )
        if response is not None and record.cost is None:
            self.event(
                "warning",
                message=f"cost of a {record.model_id} call is unknown: the "
                "model has no price (config/prices.yaml) or the provider reported no "
                "usage",
                model=record.model_id,
            )

    def _store(self, record: CallRecord) -> int | None:
        try:
            return store_call(
                record,
                run=self.run,
                project=self.run.project,
                phase=self.phase,
                attempt=self.attempt,
            )
        except DatabaseError as exc:
            logger.exception("could not store an LLM call of run %s", self.run.run_id)
            self.event(
                "warning",
                message=f"an LLM call could not be recorded: {exc}",
                model=record.model_id,
                charged_tokens=record.charged_tokens,
            )
            return None

    def cancelled(self) -> bool:
        """The engine stops at its next check when the run was cancelled, or when this
        worker lost its lease (then nothing of the step is recorded)."""
        if self.lease is not None and self.lease.lost.is_set():
            return True
        return Run.objects.filter(pk=self.run.pk, cancel_requested=True).exists()


class PlanningRecorder:
    """The Recorder of model calls made before any run exists (a plan drafted from notes):
    each call is stored against the project, events are logged, nothing cancels it."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.records: list[CallRecord] = []

    def event(self, kind: str, **payload: Any) -> None:
        logger.info("planning for project %s: %s %s", self.project.name, kind, payload)

    def llm_call(self, record: CallRecord) -> None:
        self.records.append(record)
        try:
            store_call(record, project=self.project)
        except DatabaseError:
            logger.exception("could not store an LLM call of project %s", self.project.name)

    def cancelled(self) -> bool:
        return False
