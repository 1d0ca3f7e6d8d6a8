"""Deciding governance requests: approve, deny, expire, auto-approve."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from autopack_site import configuration
from governance.models import GovernanceRequest
from runs import services as run_services
from runs.engine.outcomes import Outcome
from runs.models import Run
from runs.queue import enqueue_advance
from runs.states import AttemptState, PhaseState, RunState


class DecisionError(ValueError):
    pass


class AlreadyDecided(DecisionError):
    pass


def decide(
    request: GovernanceRequest, by: AbstractBaseUser, decision: str, reason: str = ""
) -> None:
    """A person's decision, "approve" or "deny", from any of the places that take one."""
    if decision == "approve":
        approve(request, by, reason)
    elif decision == "deny":
        deny(request, by, reason)
    else:
        raise DecisionError(f"unknown decision {decision!r}: use approve or deny")


def _decide(
    request: GovernanceRequest,
    state: str,
    *,
    by: AbstractBaseUser | None,
    reason: str,
    policy: str = "",
) -> None:
    updated = GovernanceRequest.objects.filter(
        pk=request.pk, state=GovernanceRequest.State.PENDING
    ).update(
        state=state,
        decided_by=by,
        decided_at=timezone.now(),
        decision_reason=reason,
        auto_policy=policy,
    )
    if updated != 1:
        request.refresh_from_db()
        raise AlreadyDecided(f"request #{request.pk} was already {request.state}")
    request.refresh_from_db()


def auto_approve(request: GovernanceRequest, policy: str) -> None:
    """Approved by policy while the attempt is still running: it simply continues."""
    _decide(
        request,
        GovernanceRequest.State.APPROVED,
        by=None,
        reason="approved automatically",
        policy=policy,
    )
    run_services.record_event(
        request.run,
        "governance_decided",
        request=request.pk,
        decision="approved",
        by="",
        policy=policy,
    )


def approve(request: GovernanceRequest, by: AbstractBaseUser, reason: str = "") -> None:
    with transaction.atomic():
        _decide(request, GovernanceRequest.State.APPROVED, by=by, reason=reason)
        if request.attempt is not None:  # a proposal has none: the next step merges it
            run_services.move_attempt(request.attempt, AttemptState.APPROVED)
        _resume_run(request, decision="approved", by=by.get_username(), reason=reason)


def deny(
    request: GovernanceRequest, by: AbstractBaseUser | None, reason: str, expired: bool = False
) -> None:
    if not reason.strip():
        raise DecisionError("a denial needs a reason: the Builder reads it to take another way")
    state = GovernanceRequest.State.EXPIRED if expired else GovernanceRequest.State.DENIED
    who = by.get_username() if by else "expiry"
    paths = ", ".join(request.protected_paths or request.paths)
    with transaction.atomic():
        _decide(request, state, by=by, reason=reason)
        if request.attempt is not None:  # a refused proposal fails its run in the next step
            run_services.finish_attempt(
                request.attempt,
                AttemptState.FAILED,
                outcome=Outcome.DENIED,
                error=f"change to {paths} {'expired' if expired else 'denied by ' + who}: {reason}",
                feedback=(
                    f"A person did not approve your change to {paths}: {reason}\n"
                    "Reach the goal another way, without that change."
                ),
            )
        _resume_run(request, decision=state, by=who, reason=reason)


def _resume_run(request: GovernanceRequest, decision: str, by: str, reason: str) -> None:
    run = Run.objects.get(pk=request.run_id)
    run_services.record_event(
        run, "governance_decided", request=request.pk, decision=decision, by=by, reason=reason
    )
    if run.state != RunState.AWAITING_APPROVAL:
        return  # cancelled or failed meanwhile: the decision is kept, nothing to resume
    phase = request.phase
    if phase.state == PhaseState.AWAITING_APPROVAL:
        run_services.transition_phase(phase, PhaseState.EXECUTING)
    run_services.transition_run(run, RunState.RUNNING)
    transaction.on_commit(lambda: enqueue_advance(Run.objects.get(pk=run.pk)))


def expire_requests() -> int:
    """Deny, as expired, pending requests older than the configured time."""
    minutes = configuration.governance().approval_timeout_minutes
    cutoff = timezone.now() - timedelta(minutes=minutes)
    expired = 0
    for request in GovernanceRequest.objects.filter(
        state=GovernanceRequest.State.PENDING, created_at__lt=cutoff
    ):
        try:
            deny(request, None, f"expired: not decided within {minutes} minutes", expired=True)
        except DecisionError:
            continue  # decided meanwhile
        expired += 1
    return expired
