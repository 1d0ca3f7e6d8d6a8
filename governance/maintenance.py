"""Backlog maintenance: a markdown backlog (the rules of markdown plans) becomes one
propose-first, one-phase run per item. A project builds one item at a time; an item
whose proposal waits for a person no longer holds the project, so the next one starts.

An item's status is read from its run and its proposal, the authorities for both; the
item itself only links to its run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from governance.models import Backlog, BacklogItem, GovernanceRequest
from runs import services
from runs.config import ConfigError, branch_name_problem, is_git_url, parse_run_config
from runs.engine.outcomes import FailureCode
from runs.engine.plans import Message, read_plan
from runs.models import Project, Run
from runs.queue import enqueue_advance
from runs.states import RunState

DEFAULT_BRANCH = "autopack-maintenance"
# A run in these states holds its project: the next item waits.
HOLDING = ("queued", "building")


class BacklogError(Exception):
    def __init__(self, messages: list[Message]) -> None:
        super().__init__("; ".join(m.message for m in messages))
        self.messages = messages


@dataclass(frozen=True)
class Status:
    status: str  # queued, building, proposed, merged, rejected, failed, cancelled, error
    detail: str = ""


def create_backlog(
    markdown: str,
    project: Project,
    *,
    name: str,
    branch: str = DEFAULT_BRANCH,
    user: AbstractBaseUser | None = None,
    provider: str = "",
    detached: bool = False,
) -> Backlog:
    """The backlog and its items, each with its checked run config; BacklogError with
    every problem (and its line) when any item or option is wrong. Nothing starts here."""
    if problem := branch_name_problem(branch) or _base_problem(branch, project):
        raise BacklogError([Message(0, "error", f"--branch: {problem}")])
    key = "repo" if is_git_url(project.repository) else "workspace"
    result = read_plan(
        markdown,
        base_dir=Path.cwd(),
        overrides={key: project.repository, "project": project.name, "run_id": "backlog"},
        defaults={"goal": f"Backlog {name}"},
    )
    if result.errors:
        raise BacklogError(result.errors)
    assert result.config is not None
    with transaction.atomic():
        backlog = Backlog.objects.create(
            project=project,
            name=name,
            markdown=markdown,
            branch=branch,
            created_by=user,
            provider=provider,
            detached=detached,
        )
        configs = _item_configs(result.config, result.lines, backlog, branch)
        for index, (line, task, config) in enumerate(configs):
            BacklogItem.objects.create(
                backlog=backlog, index=index, line=line, task=task, config=config
            )
    return backlog


def _base_problem(branch: str, project: Project) -> str:
    if branch == project.base_branch:
        return f"{branch!r} is the project's base branch, which Autopack never writes"
    return ""


def _item_configs(
    plan: dict, lines: dict[str, int], backlog: Backlog, branch: str
) -> list[tuple[int, str, dict]]:
    shared = {k: v for k, v in plan.items() if k not in ("run_id", "goal", "tiers")}
    configs, problems = [], []
    for tier in plan["tiers"]:
        for phase in tier["phases"]:
            config = {
                **shared,
                "run_id": f"backlog{backlog.pk}-{phase['phase_id']}",
                "goal": phase["task_name"],
                "propose_into": branch,
                "tiers": [
                    {
                        "tier_index": 0,
                        "tier_name": tier["tier_name"],
                        "phases": [{**phase, "phase_index": 0}],
                    }
                ],
            }
            line = lines.get(phase["phase_id"], 0)
            try:
                parse_run_config(config)
            except ConfigError as exc:
                problems += [Message(line, "error", e["message"]) for e in exc.errors]
                continue
            configs.append((line, phase["task_name"], config))
    if problems:
        raise BacklogError(problems)
    return configs


def status(item: BacklogItem) -> Status:
    run = item.run
    if item.error:
        return Status("error", item.error)
    if run is None:
        return Status("queued")
    if run.state in RunState.ACTIVE or run.state == RunState.PAUSED:
        return Status("building", f"run {run.run_id} is {run.state.lower()}")
    proposal = (
        GovernanceRequest.objects.filter(run=run, kind=GovernanceRequest.Kind.PROPOSAL)
        .order_by("-pk")
        .first()
    )
    if run.state == RunState.AWAITING_APPROVAL:
        if proposal is not None and proposal.is_pending:
            return Status(
                "proposed",
                f"request #{proposal.pk} waits for approval (risk {proposal.risk})",
            )
        return Status("building", f"run {run.run_id} waits for approval of a protected change")
    if run.state == RunState.DONE_SUCCESS:
        assert proposal is not None
        by = proposal.decided_by.get_username() if proposal.decided_by else "auto-approved"
        merged = proposal.evidence.get("merged", "")
        return Status("merged", f"into {proposal.evidence.get('branch')} as {merged[:12]} ({by})")
    if run.state == RunState.DONE_FAILED:
        rejected = run.failure_code == FailureCode.PROPOSAL_REJECTED
        return Status("rejected" if rejected else "failed", run.failure_reason)
    return Status("cancelled", run.failure_reason)


def start_next(project: Project, *, enqueue: bool = True) -> Run | None:
    """Start the project's next queued item unless one is still building; its run."""
    with transaction.atomic():
        Project.objects.select_for_update().get(pk=project.pk)
        items = BacklogItem.objects.filter(backlog__project=project).select_related(
            "run", "backlog"
        )
        started = items.filter(run__isnull=False).exclude(run__state__in=RunState.FINAL)
        if any(status(item).status in HOLDING for item in started):
            return None
        queued = items.filter(run__isnull=True, error="").order_by(
            "backlog__created_at", "backlog_id", "index"
        )
        for item in queued:
            try:
                run = services.create_run(
                    item.config,
                    created_by=item.backlog.created_by,
                    provider=item.backlog.provider,
                    enqueue=False,
                )
            except (ConfigError, services.DuplicateRun) as exc:
                BacklogItem.objects.filter(pk=item.pk).update(error=f"not started: {exc}")
                continue
            BacklogItem.objects.filter(pk=item.pk).update(run=run)
            if enqueue:
                transaction.on_commit(lambda run=run: enqueue_advance(run))
            return run
    return None


def after_run(run: Run) -> None:
    """A run stopped building (proposed, finished): a worker starts its backlog's next
    item, when the backlog was handed to workers."""
    item = BacklogItem.objects.filter(run=run).select_related("backlog").first()
    if item is not None and item.backlog.detached:
        start_next(run.project)


def start_waiting() -> int:
    """The worker's sweep: start the next item of every project whose detached backlog
    has queued items and nothing building (a run cancelled while it waited, say)."""
    projects = Project.objects.filter(
        backlogs__detached=True, backlogs__items__run__isnull=True, backlogs__items__error=""
    ).distinct()
    return sum(start_next(project) is not None for project in projects)
