from __future__ import annotations

import pytest

from runs import services
from runs.models import Run
from runs.states import IllegalTransition, PhaseState, RunState

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(run_config) -> Run:
    return services.create_run(run_config)


def test_run_goes_through_its_normal_life(run):
    services.transition_run(run, RunState.RUNNING)
    services.transition_run(run, RunState.AWAITING_APPROVAL)
    services.transition_run(run, RunState.RUNNING)
    services.transition_run(run, RunState.DONE_SUCCESS)

    run.refresh_from_db()
    assert run.state == RunState.DONE_SUCCESS
    assert run.started_at is not None and run.finished_at is not None
    states = [e.payload["state"] for e in run.events.filter(kind="run_state")]
    assert states == ["RUNNING", "AWAITING_APPROVAL", "RUNNING", "DONE_SUCCESS"]


def test_failed_run_keeps_its_reason_code(run):
    services.transition_run(run, RunState.RUNNING)
    services.transition_run(
        run, RunState.DONE_FAILED, code="phase_failed", reason="search-index failed 5 attempts"
    )

    run.refresh_from_db()
    assert (run.failure_code, run.failure_reason) == (
        "phase_failed",
        "search-index failed 5 attempts",
    )


@pytest.mark.parametrize("final", RunState.FINAL)
def test_final_run_states_allow_no_way_out_but_a_resume(run, final):
    services.transition_run(run, RunState.RUNNING)
    services.transition_run(run, final)

    for target in (RunState.RUNNING, RunState.CANCELLED, RunState.DONE_SUCCESS):
        with pytest.raises(IllegalTransition, match=f"from {final} to {target}"):
            services.transition_run(run, target)
    run.refresh_from_db()
    assert run.state == final
    if final == RunState.DONE_SUCCESS:
        with pytest.raises(IllegalTransition):
            services.transition_run(run, RunState.QUEUED)
    else:
        services.transition_run(run, RunState.QUEUED)  # what resume does
        assert (run.state, run.failure_code, run.finished_at) == (RunState.QUEUED, "", None)


def test_queued_run_cannot_succeed_without_running(run):
    with pytest.raises(IllegalTransition, match="notes-search cannot go from QUEUED"):
        services.transition_run(run, RunState.DONE_SUCCESS)
    run.refresh_from_db()
    assert run.state == RunState.QUEUED


def test_stale_copy_cannot_overwrite_a_newer_state(run):
    stale = Run.objects.get(pk=run.pk)
    services.transition_run(run, RunState.RUNNING)

    with pytest.raises(services.ConcurrentChange):
        services.transition_run(stale, RunState.CANCELLED)
    run.refresh_from_db()
    assert run.state == RunState.RUNNING


def test_phase_transitions_are_checked(run):
    phase = run.phases.get(phase_id="search-index")

    with pytest.raises(IllegalTransition, match="search-index cannot go from QUEUED to COMPLETE"):
        services.transition_phase(phase, PhaseState.COMPLETE)
    services.transition_phase(phase, PhaseState.EXECUTING)
    services.transition_phase(phase, PhaseState.FAILED, reason="tests failed")
    with pytest.raises(IllegalTransition):
        services.transition_phase(phase, PhaseState.EXECUTING)

    phase.refresh_from_db()
    assert (phase.state, phase.last_failure_reason) == (PhaseState.FAILED, "tests failed")


def test_phase_can_wait_for_approval_and_resume(run):
    phase = run.phases.get(phase_id="search-endpoint")
    for target in (
        PhaseState.EXECUTING,
        PhaseState.AWAITING_APPROVAL,
        PhaseState.EXECUTING,
        PhaseState.COMPLETE,
    ):
        services.transition_phase(phase, target)

    assert phase.state == PhaseState.COMPLETE
