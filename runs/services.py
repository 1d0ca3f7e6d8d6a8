"""The one place that creates runs and changes run, phase and attempt state."""

from __future__ import annotations

import hashlib
import logging
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from autopack_site import configuration
from governance.secrets import scrub_data
from runs import access, live
from runs.config import ConfigError, RunConfig, parse_run_config
from runs.engine.failures import classify
from runs.engine.outcomes import ConfigurationError
from runs.engine.spec import title
from runs.models import Attempt, Phase, Project, ProjectMember, Role, Run, RunEvent, Tier
from runs.queue import enqueue_advance
from runs.states import AttemptState, IllegalTransition, PhaseState, RunState, check_transition

logger = logging.getLogger(__name__)


class DuplicateRun(Exception):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"a run with run_id {run_id!r} already exists")
        self.run_id = run_id


class ConcurrentChange(Exception):
    """The row changed under us: another process got there first."""


def record_event(run: Run, kind: str, **payload: Any) -> RunEvent:
    event = RunEvent.objects.create(run=run, kind=kind, payload=scrub_data(payload))
    # Announce only once the event is visible to other processes.
    transaction.on_commit(lambda: live.publish(run.run_id, event.id, kind))
    return event


def _resolve_repository(config: RunConfig, base_dir: Path) -> str:
    if config.repository_is_url:
        return config.repository
    return str((base_dir / config.repository).expanduser().resolve())


def _refused(field: str, message: str) -> ConfigError:
    return ConfigError([{"path": field, "message": message}])


def project_for(config: RunConfig, repository: str, user: AbstractBaseUser | None) -> Project:
    """The project named in the config, else the one that already has this repository,
    else a new one named after the repository (made unique if another repository took
    the name). Only its members create runs in a project; only those allowed to create
    projects make new ones, for repositories they may use."""
    if config.project:
        project = Project.objects.filter(name=config.project).first()
        if project is not None and project.repository != repository:
            if user is not None and not access.can_run(user, project):
                raise _refused("project", not_yours(config.project))
            raise _refused(
                "project",
                f"project {project.name!r} already uses repository {project.repository}, "
                f"not {repository}; choose another project name (`project` in the run "
                "config, `autopack run --project NAME`)",
            )
    else:
        project = Project.objects.filter(repository=repository).order_by("pk").first()
    if project is not None:
        if user is not None and not access.can_run(user, project):
            raise _refused("project", not_yours(project.name if config.project else repository))
        return project
    return _new_project(config, repository, user)


def not_yours(name: str) -> str:
    # The same words whether the project exists or not: nothing leaks to non-members.
    return (
        f"you may not create runs for {name}: ask the project's owner to add you as a "
        "member, or an administrator to create the project"
    )


def _new_project(config: RunConfig, repository: str, user: AbstractBaseUser | None) -> Project:
    field = "repo" if config.repo else "workspace"
    if user is not None and not access.can_create_projects(user):
        raise _refused("project", not_yours(config.project or repository))
    problem = access.repository_allowed(user, repository, config.repository_is_url)
    if problem:
        raise _refused(field, problem)
    if not config.repository_is_url and not Path(repository).is_dir():
        raise _refused(field, f"directory {repository} does not exist")
    project = Project.objects.create(
        name=config.project or _default_name(repository),
        repository=repository,
        base_branch=config.base_branch or "main",
    )
    if user is not None:
        ProjectMember.objects.create(project=project, user=user, role=Role.OWNER)
    return project


def _default_name(repository: str) -> str:
    name = Path(repository.rstrip("/")).name.removesuffix(".git") or "project"
    if not Project.objects.filter(name=name).exists():
        return name
    return f"{name}-{hashlib.sha1(repository.encode()).hexdigest()[:8]}"


def create_run(
    data: Any,
    *,
    created_by: AbstractBaseUser | None = None,
    base_dir: Path | None = None,
    provider: str = "",
    enqueue: bool = True,
) -> Run:
    """Validate a run-config, store the run and its plan, and enqueue it.

    Relative repository paths are resolved against `base_dir` (the config file's folder
    for the CLI, the server's working directory for the API).
    """
    config = parse_run_config(data)
    repository = _resolve_repository(config, base_dir or Path.cwd())
    if Run.objects.filter(run_id=config.run_id).exists():
        raise DuplicateRun(config.run_id)
    try:
        with transaction.atomic():
            run = _store_plan(config, repository, data, created_by, provider)
    except IntegrityError as exc:
        if Run.objects.filter(run_id=config.run_id).exists():
            raise DuplicateRun(config.run_id) from exc
        raise
    if enqueue:
        enqueue_advance(run)
    return run


def set_member(project: Project, username: str, role: str) -> ProjectMember:
    """Add a user to a project, or change their role."""
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.get(username=username)
    member, _ = ProjectMember.objects.update_or_create(
        project=project, user=user, defaults={"role": role}
    )
    return member


def _default_max_attempts() -> int:
    try:
        models = configuration.models()
    except ConfigurationError as exc:
        raise ConfigError(
            [
                {
                    "path": "max_attempts_per_phase",
                    "message": "not set, and the "
                    f"default cannot be read from the model config: {exc}",
                }
            ]
        ) from None
    return models.complexity_escalation.max_attempts_per_phase


def _store_plan(
    config: RunConfig,
    repository: str,
    data: dict,
    created_by: AbstractBaseUser | None,
    provider: str,
) -> Run:
    project = project_for(config, repository, created_by)
    run = Run.objects.create(
        project=project,
        run_id=config.run_id,
        goal=config.goal,
        token_cap=config.token_cap,
        cost_cap=config.cost_cap,
        health_budget=config.health_budget.model_dump(exclude_none=True),
        max_attempts_per_phase=config.max_attempts_per_phase or _default_max_attempts(),
        max_duration_seconds=(config.max_duration_minutes or 0) * 60 or None,
        base_branch=config.base_branch or "",
        setup_command=config.setup_command,
        test_command=config.test_command,
        dependency_resolution=config.dependency_resolution or "",
        integration_branch=f"autopack/{config.run_id}",
        config=data,
        provider=provider,
        created_by=created_by,
    )
    for tier_config in sorted(config.tiers, key=lambda t: t.tier_index):
        tier = Tier.objects.create(
            run=run, index=tier_config.tier_index, name=tier_config.tier_name
        )
        for phase in sorted(tier_config.phases, key=lambda p: p.phase_index):
            Phase.objects.create(
                run=run,
                tier=tier,
                phase_id=phase.phase_id,
                index=phase.phase_index,
                name=phase.task_name,
                description=phase.description,
                category=phase.task_category,
                complexity=phase.complexity,
                scope_paths=phase.scope.paths,
                read_only_context=[item.model_dump() for item in phase.scope.read_only_context],
                deliverables=phase.scope.deliverables,
                acceptance_criteria=phase.acceptance_criteria,
                test_command=phase.test_command,
                setup_command=phase.setup_command,
                approval_required=phase.approval_required,
                allow_binary=phase.allow_binary,
                escalation_policy=phase.escalation_policy,
                max_attempts=phase.max_attempts or run.max_attempts_per_phase,
                token_cap=phase.token_cap,
                cost_cap=phase.cost_cap,
            )
    run.intention_anchor = intention_anchor(config)
    run.save(update_fields=["intention_anchor"])
    record_event(run, "run_created", run_id=run.run_id, phases=run.phases.count())
    return run


ANCHOR_BYTES = 2048


def intention_anchor(config: RunConfig) -> str:
    """The run's goal and plan in at most 2 KB: what every model it asks is reminded of,
    and what a change is compared with before it is applied (goal drift)."""
    lines = [f"Goal: {config.goal.strip()}", "Plan:"]
    for tier in sorted(config.tiers, key=lambda t: t.tier_index):
        for phase in sorted(tier.phases, key=lambda p: p.phase_index):
            paths = ", ".join(phase.scope.paths[:4])
            lines.append(f"- {title(phase.task_name)}" + (f" ({paths})" if paths else ""))
    text = "\n".join(lines)
    data = text.encode()
    if len(data) <= ANCHOR_BYTES:
        return text
    return data[: ANCHOR_BYTES - 3].decode(errors="ignore").rstrip() + "…"


def _conditional_update(obj: models.Model, current: str, **changes: Any) -> None:
    updated = type(obj).objects.filter(pk=obj.pk, state=current).update(**changes)
    if updated != 1:
        raise ConcurrentChange(f"{obj} is no longer {current}")
    for field, value in changes.items():
        setattr(obj, field, value)


def transition_run(run: Run, target: str, *, code: str = "", reason: str = "") -> None:
    check_transition(RunState, "run", run.run_id, run.state, target)
    previous = run.state
    changes: dict[str, Any] = {"state": target, "updated_at": timezone.now()}
    if target == RunState.RUNNING and previous == RunState.QUEUED:
        changes["active_since"] = timezone.now()
        if run.started_at is None:
            changes["started_at"] = changes["active_since"]
    if target in RunState.FINAL:
        changes.update(finished_at=timezone.now(), failure_code=code, failure_reason=reason)
    if target == RunState.QUEUED:
        changes.update(
            finished_at=None,
            failure_code="",
            failure_reason="",
            cancel_requested=False,
            lease_owner="",
            lease_expires_at=None,
        )
    _conditional_update(run, previous, **changes)
    record_event(run, "run_state", previous=previous, state=target, code=code, reason=reason)


def transition_phase(phase: Phase, target: str, *, reason: str = "") -> None:
    check_transition(PhaseState, "phase", phase.phase_id, phase.state, target)
    previous = phase.state
    changes: dict[str, Any] = {"state": target}
    if target == PhaseState.FAILED:
        changes["last_failure_reason"] = reason
    _conditional_update(phase, previous, **changes)
    record_event(
        phase.run,
        "phase_state",
        phase_id=phase.phase_id,
        previous=previous,
        state=target,
        reason=reason,
    )


def move_attempt(attempt: Attempt, target: str, **fields: Any) -> None:
    """Move an attempt between non-final states (awaiting approval, approved)."""
    check_transition(AttemptState, "attempt", f"{attempt.number}", attempt.state, target)
    _conditional_update(attempt, attempt.state, state=target, **fields)


def finish_attempt(attempt: Attempt, target: str, **fields: Any) -> None:
    check_transition(AttemptState, "attempt", f"{attempt.number}", attempt.state, target)
    if target != AttemptState.PASSED and not fields.get("failure_kind"):
        fields["failure_kind"] = classify(
            fields.get("outcome", ""), fields.get("error", ""), fields.get("gate_results")
        )
    _conditional_update(attempt, attempt.state, state=target, finished_at=timezone.now(), **fields)


def sync_tier_state(tier: Tier) -> None:
    """A tier's state follows its phases."""
    states = set(tier.phases.values_list("state", flat=True))
    if PhaseState.FAILED in states:
        state = PhaseState.FAILED
    elif states <= {PhaseState.COMPLETE, PhaseState.SKIPPED}:
        state = PhaseState.COMPLETE
    elif states == {PhaseState.QUEUED}:
        state = PhaseState.QUEUED
    else:
        state = PhaseState.EXECUTING
    Tier.objects.filter(pk=tier.pk).update(state=state)


class ResumeError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field} {message}")
        self.field = field
        self.message = message


def resume_run(
    run: Run,
    *,
    token_cap: int | None = None,
    cost_cap: Decimal | None = None,
    max_duration_minutes: int | None = None,
    extra_attempts: int | None = None,
    by: str = "",
) -> None:
    """Continue a failed or cancelled run from its last savepoint, with raised budgets.

    A phase that failed gets `extra_attempts` more (default: the run's attempts per phase).
    """
    if run.state not in RunState.RESUMABLE:
        raise IllegalTransition("run", run.run_id, run.state, RunState.QUEUED)
    if token_cap is not None and token_cap <= run.tokens_used:
        raise ResumeError("token_cap", f"must be above the {run.tokens_used:,} tokens already used")
    if cost_cap is not None and cost_cap <= run.cost_usd:
        raise ResumeError("cost_cap", f"must be above the ${run.cost_usd:.4f} already spent")
    with transaction.atomic():
        changes: dict[str, Any] = {}
        if token_cap is not None:
            changes["token_cap"] = token_cap
        if cost_cap is not None:
            changes["cost_cap"] = cost_cap
        if max_duration_minutes is not None:
            changes["max_duration_seconds"] = max_duration_minutes * 60
        Run.objects.filter(pk=run.pk).update(**changes)
        for field, value in changes.items():
            setattr(run, field, value)
        for phase in run.phases.filter(state=PhaseState.FAILED):
            more = extra_attempts or run.max_attempts_per_phase
            Phase.objects.filter(pk=phase.pk).update(max_attempts=phase.attempt_count + more)
            transition_phase(phase, PhaseState.QUEUED, reason=f"resumed with {more} more attempts")
            sync_tier_state(phase.tier)
        transition_run(run, RunState.QUEUED)
        record_event(
            run,
            "run_resumed",
            by=by,
            **{k: str(v) for k, v in changes.items()},
            extra_attempts=extra_attempts,
        )
    enqueue_advance(Run.objects.get(pk=run.pk))


def cancel_run(run: Run, *, by: str = "") -> bool:
    """Cancel a run that has not finished; IllegalTransition if it has.

    A run a worker is executing is only flagged: the worker stops it between steps, at
    its last savepoint. Returns whether the run is already CANCELLED.
    """
    reason = f"cancelled by {by}" if by else "cancelled"
    if run.state == RunState.RUNNING:
        Run.objects.filter(pk=run.pk).update(cancel_requested=True)
        run.cancel_requested = True
        record_event(run, "cancel_requested", by=by)
        return False
    transition_run(run, RunState.CANCELLED, reason=reason)
    return True
