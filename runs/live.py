"""Live updates: every RunEvent is announced to its run's Channels group (and run-level
changes to the runs list), from whichever process wrote it."""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

RUNS_GROUP = "runs"
LIST_KINDS = {
    "run_created",
    "run_state",
    "phase_state",
    "attempt_started",
    "llm_call",
    "run_finished",
    "run_resumed",
}


def run_group(run_id: str) -> str:
    return f"run-{run_id}"


def publish(run_id: str, event_id: int, kind: str) -> None:
    """Announce an event. Live views are a convenience: failing to announce is logged and
    never stops the run (pages catch up from the event log)."""
    layer = get_channel_layer()
    if layer is None:
        logger.warning("no channel layer configured; live updates are off")
        return
    try:
        async_to_sync(layer.group_send)(
            run_group(run_id), {"type": "run.event", "event_id": event_id}
        )
        if kind in LIST_KINDS:
            async_to_sync(layer.group_send)(RUNS_GROUP, {"type": "runs.changed"})
    except Exception:  # noqa: BLE001 - any layer failure must not reach the build
        logger.warning("could not publish event %s of run %s", event_id, run_id, exc_info=True)
