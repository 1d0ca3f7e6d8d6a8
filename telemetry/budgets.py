"""Budgets for one step of a run: spend caps for the engine, health limits checked here."""

from __future__ import annotations

from django.conf import settings
from django.db.models import Q

from autopack_site import configuration
from runs.engine.budget import Allowance, Budget
from runs.engine.outcomes import BudgetExhausted
from runs.models import Attempt, Phase, Run
from runs.states import AttemptState
from telemetry.models import LlmCall

PATCH_FAILURES = ("apply_error", "format_error")


def budget_for(run: Run, phase: Phase) -> Budget:
    prices = configuration.prices()
    deadline = None
    if run.max_duration_seconds and run.active_since:
        deadline = run.active_since.timestamp() + run.max_duration_seconds
    return Budget(
        allowances=[
            Allowance("run", run.token_cap, run.cost_cap, run.tokens_used, run.cost_usd),
            Allowance(
                f"phase {phase.phase_id}",
                phase.token_cap,
                phase.cost_cap,
                phase.tokens_used,
                phase.cost_usd,
            ),
        ],
        prices=prices,
        deadline=deadline,
        deadline_label=f"maximum duration of {run.max_duration_seconds:,} s reached"
        if run.max_duration_seconds
        else "",
    )


def health_limits(run: Run) -> dict[str, int]:
    return {**settings.AUTOPACK_HEALTH_BUDGET, **run.health_budget}


def _health_counts(run: Run) -> tuple[dict[str, tuple[int, str]], list[Attempt]]:
    """Failures counted against each health budget since the run's last (re)start."""
    since = run.active_since
    attempts = Attempt.objects.filter(run=run, started_at__gte=since)
    # Attempts abandoned by a dying worker count as failures.
    failed = list(
        attempts.filter(state__in=(AttemptState.FAILED, AttemptState.ABANDONED)).order_by(
            "started_at", "id"
        )
    )
    server_errors = (
        LlmCall.objects.filter(run=run, created_at__gte=since)
        .filter(Q(status_code__gte=500) | (~Q(error="") & Q(status_code__isnull=True)))
        .count()
    )
    counts = {
        "server_errors": (server_errors, "provider server errors"),
        "patch_failures": (
            sum(a.outcome in PATCH_FAILURES for a in failed),
            "edits that could not be applied",
        ),
        "total_failures": (len(failed), "failed attempts"),
    }
    return counts, failed


def health_used(run: Run) -> float:
    """How much of its fullest health budget the run has used, 0 to 1 (or more)."""
    limits = health_limits(run)
    counts, _ = _health_counts(run)
    return max(count / limits[key] for key, (count, _) in counts.items())


def check_health(run: Run) -> None:
    """Stop the run before another attempt once a health budget is used up. Failures are
    counted from the run's last (re)start, so a resumed run gets a fresh allowance."""
    limits = health_limits(run)
    counts, failed = _health_counts(run)
    for key, (count, what) in counts.items():
        if count >= limits[key]:
            raise BudgetExhausted(
                f"health budget: {count} {what} since the run (re)started (limit {limits[key]})"
            )
    repeated = limits["repeated_failures"]
    tail = [a.failure_signature for a in failed[-repeated:]]
    if len(tail) == repeated and len(set(tail)) == 1 and tail[0]:
        raise BudgetExhausted(
            f"health budget: the same failure {repeated} times in a row: "
            f"{failed[-1].error.splitlines()[0][:200]}"
        )
