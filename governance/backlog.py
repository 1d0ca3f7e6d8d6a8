"""The three-level issue backlog: each failure is an Issue of its phase, its run and its
project; the same signature again raises the count instead of adding a row."""

from __future__ import annotations

from django.db.models import F
from django.utils import timezone

from runs.models import Attempt, Issue

SEVERITY = {
    "policy_violation": "high",
    "provider_error": "medium",
    "denied": "medium",
    "gate_failed": "medium",
    "auditor_rejected": "low",
    "format_error": "low",
    "apply_error": "low",
    "truncated": "low",
}


def record_failure(attempt: Attempt) -> None:
    run, phase = attempt.run, attempt.phase
    title = (attempt.error.splitlines()[0] if attempt.error else attempt.outcome)[:300]
    severity = SEVERITY.get(attempt.outcome, "medium")
    levels = [
        (Issue.Scope.PHASE, {"run": run, "phase": phase}),
        (Issue.Scope.RUN, {"run": run, "phase": None}),
        (Issue.Scope.PROJECT, {"run": None, "phase": None}),
    ]
    for scope, owner in levels:
        existing = Issue.objects.filter(
            project=run.project, scope=scope, signature=attempt.failure_signature, **owner
        )
        if existing.update(
            occurrence_count=F("occurrence_count") + 1,
            last_seen=timezone.now(),
            status=Issue.Status.OPEN,
        ):
            continue
        Issue.objects.create(
            project=run.project,
            scope=scope,
            signature=attempt.failure_signature,
            severity=severity,
            title=title,
            details=attempt.error[:4000],
            **owner,
        )
