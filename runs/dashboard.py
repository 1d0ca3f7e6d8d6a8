"""What the dashboard shows of runs, as template contexts and live HTML fragments."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Q, Sum
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.safestring import mark_safe
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import DiffLexer

from runs import access
from runs.environments import run_baselines
from runs.events import describe
from runs.models import Attempt, Phase, PhasePlan, Run, RunEvent
from runs.states import AttemptState, PhaseState

LOG_LIMIT = 300


def runs_with_progress(runs):
    return (
        runs.select_related("project", "created_by")
        .annotate(
            phases_total=Count("phases", distinct=True),
            phases_done=Count("phases", filter=Q(phases__state=PhaseState.COMPLETE), distinct=True),
        )
        .order_by("-created_at", "-id")
    )  # aggregate queries drop Meta.ordering


def current_step(run: Run) -> str:
    phase = (
        run.phases.exclude(state__in=(PhaseState.QUEUED, *PhaseState.FINAL))
        .order_by("tier__index", "index")
        .first()
    )
    if phase is None:
        return ""
    return (
        f"{phase.phase_id}, attempt {phase.attempt_count}"
        if phase.attempt_count
        else phase.phase_id
    )


def elapsed(run: Run) -> str:
    if run.started_at is None:
        return ""
    seconds = int(((run.finished_at or timezone.now()) - run.started_at).total_seconds())
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def diff_files(diff: str) -> list[dict]:
    """The diff split per file, each highlighted."""
    files: list[dict] = []
    for chunk in ("\n" + diff).split("\ndiff --git ")[1:]:
        text = "diff --git " + chunk
        header = chunk.split("\n", 1)[0]
        path = header.split(" b/", 1)[-1] if " b/" in header else header
        files.append(
            {
                "path": path,
                "html": mark_safe(
                    highlight(  # noqa: S308 - pygments escapes
                        text, DiffLexer(), HtmlFormatter(nowrap=True)
                    )
                ),
            }
        )
    if diff and not files:
        files.append(
            {
                "path": "change",
                "html": mark_safe(
                    highlight(  # noqa: S308
                        diff, DiffLexer(), HtmlFormatter(nowrap=True)
                    )
                ),
            }
        )
    return files


@dataclass
class AttemptView:
    attempt: Attempt
    duration: str
    diff_files: list[dict]
    gates: list[dict]
    calls: list
    tokens: int
    cost: Decimal | None
    decisions: list


def _attempt_view(attempt: Attempt) -> AttemptView:
    end = attempt.finished_at or timezone.now()
    seconds = (end - attempt.started_at).total_seconds()
    calls = list(attempt.llm_calls.all())
    gates = sorted(attempt.gate_results, key=lambda gate: gate.get("passed", False))
    costs = [c.cost_usd for c in calls]
    return AttemptView(
        attempt=attempt,
        duration=f"{seconds:.1f} s",
        diff_files=diff_files(attempt.diff),
        gates=gates,
        calls=calls,
        tokens=sum(c.total_tokens or 0 for c in calls),
        cost=None if any(c is None for c in costs) or not costs else sum(costs, Decimal(0)),
        decisions=list(attempt.decisions.all()),
    )


def _plan_text(plan: PhasePlan) -> list[str]:
    lines = [f"description: {line}" for line in plan.description.splitlines()]
    lines += [f"criterion: {c}" for c in plan.acceptance_criteria]
    lines += [f"approach: {line}" for line in plan.approach.splitlines()]
    lines += [f"scope: {p}" for p in plan.scope_paths]
    return lines


def plan_versions(phase: Phase) -> list[dict]:
    """Each version of the phase's plan with what changed from the one before."""
    plans = list(phase.plans.all())
    views = []
    for before, plan in zip([None, *plans], plans, strict=False):
        diff = ""
        if before is not None:
            diff = "\n".join(
                difflib.unified_diff(
                    _plan_text(before),
                    _plan_text(plan),
                    f"v{before.version}",
                    f"v{plan.version}",
                    lineterm="",
                )
            )
        views.append({"plan": plan, "diff": diff})
    return views


def _timeline(run: Run, phases: list[Phase]) -> list[dict]:
    attempts = [a for phase in phases for a in phase.attempts.all()]
    if not attempts or run.started_at is None:
        return []
    start = run.started_at
    end = max(
        [run.finished_at or timezone.now()] + [a.finished_at or timezone.now() for a in attempts]
    )
    total = max((end - start).total_seconds(), 1.0)
    rows = []
    for phase in phases:
        bars = []
        for attempt in phase.attempts.all():
            left = max(0.0, (attempt.started_at - start).total_seconds() / total * 100)
            stop = attempt.finished_at or timezone.now()
            width = max(0.5, (stop - attempt.started_at).total_seconds() / total * 100)
            bars.append(
                {
                    "left": f"{left:.2f}",
                    "width": f"{min(width, 100 - left):.2f}",
                    "state": attempt.state,
                    "label": f"attempt {attempt.number}: {attempt.outcome or attempt.state}"
                    f", {attempt.model}",
                }
            )
        marks = [
            {
                "left": f"{min(99.5, (d.created_at - start).total_seconds() / total * 100):.2f}",
                "action": d.action,
                "label": f"after attempt {d.attempt.number}: {d.get_action_display()}: "
                f"{d.reason[:200]}",
            }
            for d in phase.decisions.all()
        ]
        rows.append({"phase": phase, "bars": bars, "marks": marks})
    return rows


def run_context(run: Run, user: AbstractBaseUser) -> dict:
    phases = list(
        run.phases.select_related("tier")
        .prefetch_related(
            "attempts__llm_calls", "attempts__decisions", "plans", "decisions__attempt"
        )
        .order_by("tier__index", "index")
    )
    tiers: dict[int, dict] = {}
    for phase in phases:
        tier = tiers.setdefault(phase.tier.index, {"tier": phase.tier, "phases": []})
        tier["phases"].append(
            {
                "phase": phase,
                "attempts": [_attempt_view(a) for a in phase.attempts.all()],
                "plans": plan_versions(phase) if phase.plan_version > 1 else [],
            }
        )
    done = sum(p.state == PhaseState.COMPLETE for p in phases)
    return {
        "run": run,
        "tiers": list(tiers.values()),
        "phases_done": done,
        "phases_total": len(phases),
        "percent": round(100 * done / len(phases)) if phases else 0,
        "elapsed": elapsed(run),
        "current": current_step(run),
        "timeline": _timeline(run, phases),
        "can_cancel": access.can_cancel(user, run),
        "can_resume": access.can_resume(user, run),
        "pending_requests": run.governance_requests.filter(state="pending"),
        "baselines": list(run_baselines(run)),
        "spent": run.llm_calls.aggregate(tokens=Sum("total_tokens")),
        "awaiting": [
            a for p in phases for a in p.attempts.all() if a.state == AttemptState.AWAITING_APPROVAL
        ],
    }


def log_lines(run: Run, after: int = 0) -> tuple[list[dict], int]:
    events = list(run.events.filter(id__gt=after).order_by("-id")[:LOG_LIMIT])[::-1]
    lines = [
        {"id": e.id, "time": e.created_at, "kind": e.kind, "text": describe(e) or e.kind}
        for e in events
    ]
    return lines, (events[-1].id if events else after)


def fragments(run: Run, user: AbstractBaseUser, after: int) -> dict:
    """The live parts of the run page, rendered, plus log lines after `after`."""
    run.refresh_from_db()
    lines, last_id = log_lines(run, after)
    if after and last_id == after:
        return {"last_id": after}  # nothing new: the page is up to date
    context = run_context(run, user)
    return {
        "last_id": last_id,
        "html": {
            "run-header": render_to_string("runs/_header.html", context),
            "phases": render_to_string("runs/_phases.html", context),
            "timeline": render_to_string("runs/_timeline.html", context),
        },
        "log": render_to_string("runs/_log.html", {"lines": lines}),
    }


def list_fragment(runs) -> dict:
    rows = [
        {"run": run, "current": current_step(run), "elapsed": elapsed(run)}
        for run in runs_with_progress(runs)[:100]
    ]
    return {"html": {"run-rows": render_to_string("runs/_rows.html", {"rows": rows})}}


def latest_event_id(run: Run) -> int:
    return (
        RunEvent.objects.filter(run=run).order_by("-id").values_list("id", flat=True).first() or 0
    )
