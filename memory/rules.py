"""Learned rules: a failure that a later attempt of the same phase fixed becomes a hint
for future Builders once it recurs."""

from __future__ import annotations

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q

from memory.models import LearnedRule
from runs.engine.failures import normalise
from runs.engine.policy import _normalise_scope
from runs.models import Attempt, Phase, Run


def _what_changed(attempt: Attempt) -> str:
    files = ", ".join(attempt.changed_files[:5]) or "no files"
    return f"the attempt that passed changed {files}"


def learn(run: Run, phase: Phase, passed: Attempt) -> None:
    """Called when an attempt passes: every earlier failure of the phase is a lesson."""
    failures = phase.attempts.filter(state="FAILED", number__lt=passed.number).exclude(
        failure_signature=""
    )
    for failure in failures:
        first_line = failure.error.splitlines()[0] if failure.error else failure.outcome
        hint = (
            f'Earlier builds failed with "{normalise(first_line)[:200]}"; '
            f"{_what_changed(passed)}. Avoid that failure from the start."
        )
        _record(run, phase, failure.failure_signature, normalise(failure.error), hint)


def _record(run: Run, phase: Phase, signature: str, failure: str, hint: str) -> None:
    threshold = settings.AUTOPACK_RULE_THRESHOLD
    rules = LearnedRule.objects.filter(project=run.project, signature=signature)
    if rules.update(occurrences=F("occurrences") + 1):
        rules.filter(
            source=LearnedRule.Source.AUTO, occurrences__gte=threshold, enabled=False
        ).update(enabled=True)
        return
    try:
        with transaction.atomic():
            LearnedRule.objects.create(
                project=run.project,
                signature=signature,
                failure=failure,
                hint=hint,
                category=phase.category,
                paths=list(phase.scope_paths),
                enabled=threshold <= 1,
            )
    except IntegrityError:
        rules.update(occurrences=F("occurrences") + 1)


def _overlaps(rule_paths: list[str], scope: list[str]) -> bool:
    if not rule_paths:
        return True
    mine = [_normalise_scope(p) for p in scope]
    for path in (_normalise_scope(p) for p in rule_paths):
        if any(
            not a or not path or a == path or a.startswith(path + "/") or path.startswith(a + "/")
            for a in mine
        ):
            return True
    return False


def hints_for(run: Run, phase: Phase) -> list[str]:
    """Enabled rules for this phase, read fresh for every attempt."""
    rules = (
        LearnedRule.objects.filter(enabled=True)
        .filter(Q(project=run.project) | Q(project__isnull=True))
        .filter(Q(category="") | Q(category=phase.category))
    )
    return [rule.hint for rule in rules if _overlaps(rule.paths, phase.scope_paths)]
