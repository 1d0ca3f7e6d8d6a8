"""Notifications to webhooks, Slack and Telegram, delivered in the background with
retries. A failing target is recorded and never holds up or fails a run."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task

from autopack_site import configuration
from governance.config import Target
from governance.models import NotificationDelivery
from runs.models import Run

logger = logging.getLogger(__name__)
MAX_ATTEMPTS = 5
BACKOFF_SECONDS = 30  # doubled after each failed try


def notify(event: str, run: Run, message: str, **data) -> None:
    config = configuration.governance()
    for target in config.notifications:
        if event not in target.events:
            continue
        delivery = NotificationDelivery.objects.create(
            target=target.name,
            event=event,
            run=run,
            payload={
                "event": event,
                "run_id": run.run_id,
                "state": run.state,
                "message": f"[Autopack] {run.run_id}: {message}",
                **data,
            },
        )
        async_task(
            "governance.notifications.deliver",
            delivery.pk,
            sync=settings.AUTOPACK_SYNC_TASKS,
            task_name=f"notify {event}",
        )


def _request(target: Target, payload: dict) -> urllib.request.Request:
    if target.type == "slack":
        url, body = target.url, {"text": payload["message"]}
    elif target.type == "telegram":
        url = f"{target.api_base.rstrip('/')}/bot{target.token}/sendMessage"
        body = {"chat_id": target.chat_id, "text": payload["message"]}
    else:
        url, body = target.url, payload
    return urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )


def deliver(delivery_id: int) -> bool:
    delivery = NotificationDelivery.objects.get(pk=delivery_id)
    if delivery.state != NotificationDelivery.State.PENDING:
        return True
    targets = configuration.governance().notifications
    target = next((t for t in targets if t.name == delivery.target), None)
    delivery.attempts += 1
    try:
        if target is None:
            raise ValueError(f"target {delivery.target!r} is no longer configured")
        with urllib.request.urlopen(_request(target, delivery.payload), timeout=10) as response:
            response.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        delivery.last_error = str(exc)
        if delivery.attempts >= MAX_ATTEMPTS or target is None:
            delivery.state = NotificationDelivery.State.FAILED
        else:
            delay = BACKOFF_SECONDS * 2 ** (delivery.attempts - 1)
            Schedule.objects.create(
                func="governance.notifications.deliver",
                args=str(delivery.pk),
                schedule_type=Schedule.ONCE,
                next_run=timezone.now() + timedelta(seconds=delay),
                name=f"retry notification {delivery.pk} #{delivery.attempts}",
            )
        delivery.save(update_fields=["attempts", "last_error", "state"])
        logger.warning("notification %s to %s failed: %s", delivery.event, delivery.target, exc)
        return False
    delivery.state = NotificationDelivery.State.DELIVERED
    delivery.delivered_at = timezone.now()
    delivery.save(update_fields=["attempts", "state", "delivered_at", "last_error"])
    return True
