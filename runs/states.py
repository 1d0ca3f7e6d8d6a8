"""States of runs, phases and attempts, and the transitions allowed between them.
(Why a run failed and how an attempt ended: FailureCode and Outcome, in the engine.)"""

from __future__ import annotations

from runs.engine.outcomes import FailureCode, Outcome

__all__ = ["AttemptState", "FailureCode", "Outcome", "PhaseState", "RunState", "check_transition"]


class RunState:
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    AWAITING_APPROVAL = "AWAITING_APPROVAL"
    PAUSED = "PAUSED"
    DONE_SUCCESS = "DONE_SUCCESS"
    DONE_FAILED = "DONE_FAILED"
    CANCELLED = "CANCELLED"

    CHOICES = [
        (s, s.replace("_", " ").title())
        for s in (QUEUED, RUNNING, AWAITING_APPROVAL, PAUSED, DONE_SUCCESS, DONE_FAILED, CANCELLED)
    ]
    # Final: no worker touches the run. Only a resume (back to QUEUED, from the last
    # savepoint) moves a failed or cancelled run on; a successful run is done for good.
    FINAL = (DONE_SUCCESS, DONE_FAILED, CANCELLED)
    # A worker executes steps of these; AWAITING_APPROVAL and PAUSED wait for a person.
    ACTIVE = (QUEUED, RUNNING)
    RESUMABLE = (DONE_FAILED, CANCELLED)
    TRANSITIONS = {
        QUEUED: {RUNNING, DONE_FAILED, CANCELLED},
        RUNNING: {AWAITING_APPROVAL, PAUSED, DONE_SUCCESS, DONE_FAILED, CANCELLED},
        AWAITING_APPROVAL: {RUNNING, DONE_FAILED, CANCELLED},
        PAUSED: {RUNNING, DONE_FAILED, CANCELLED},
        DONE_SUCCESS: set(),
        DONE_FAILED: {QUEUED},
        CANCELLED: {QUEUED},
    }


class PhaseState:
    QUEUED = "QUEUED"
    EXECUTING = "EXECUTING"
    AWAITING_APPROVAL = "AWAITING_APPROVAL"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"

    CHOICES = [
        (s, s.replace("_", " ").title())
        for s in (QUEUED, EXECUTING, AWAITING_APPROVAL, COMPLETE, FAILED, SKIPPED)
    ]
    FINAL = (COMPLETE, FAILED, SKIPPED)
    TRANSITIONS = {
        QUEUED: {EXECUTING, SKIPPED},
        # Recovery may skip a phase, or roll the run back and queue it again.
        EXECUTING: {AWAITING_APPROVAL, COMPLETE, FAILED, SKIPPED, QUEUED},
        AWAITING_APPROVAL: {EXECUTING, FAILED},
        COMPLETE: {QUEUED},  # a rollback to an earlier savepoint queues it again
        FAILED: {QUEUED},  # a resumed run retries its failed phase
        SKIPPED: set(),
    }


class AttemptState:
    RUNNING = "RUNNING"
    AWAITING_APPROVAL = "AWAITING_APPROVAL"  # its change waits for a person
    APPROVED = "APPROVED"  # approved; the next step applies the change and verifies it
    PASSED = "PASSED"
    FAILED = "FAILED"
    ABANDONED = "ABANDONED"

    CHOICES = [
        (s, s.replace("_", " ").title())
        for s in (RUNNING, AWAITING_APPROVAL, APPROVED, PASSED, FAILED, ABANDONED)
    ]
    FINAL = (PASSED, FAILED, ABANDONED)
    TRANSITIONS = {
        RUNNING: {AWAITING_APPROVAL, PASSED, FAILED, ABANDONED},
        AWAITING_APPROVAL: {APPROVED, FAILED},
        APPROVED: {PASSED, FAILED},
        PASSED: set(),
        FAILED: set(),
        ABANDONED: set(),
    }


class IllegalTransition(ValueError):
    def __init__(self, kind: str, label: str, current: str, target: str) -> None:
        super().__init__(f"{kind} {label} cannot go from {current} to {target}")
        self.current = current
        self.target = target


def check_transition(machine: type, kind: str, label: str, current: str, target: str) -> None:
    if target not in machine.TRANSITIONS[current]:
        raise IllegalTransition(kind, label, current, target)
