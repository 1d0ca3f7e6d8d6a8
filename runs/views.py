"""Dashboard pages for runs and projects. Thin: load, call a service, render."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from runs import access, dashboard, markdown_plans, planning, services
from runs.config import ConfigError
from runs.states import IllegalTransition, RunState


@login_required
def runs_list(request: HttpRequest) -> HttpResponse:
    runs = access.runs(request.user)
    state, project = request.GET.get("state", ""), request.GET.get("project", "")
    if state:
        runs = runs.filter(state=state)
    if project:
        runs = runs.filter(project__name=project)
    page = Paginator(dashboard.runs_with_progress(runs), 50).get_page(request.GET.get("page"))
    rows = [
        {"run": run, "current": dashboard.current_step(run), "elapsed": dashboard.elapsed(run)}
        for run in page
    ]
    return render(
        request,
        "runs/list.html",
        {
            "rows": rows,
            "page": page,
            "states": RunState.CHOICES,
            "state": state,
            "projects": access.projects(request.user).values_list("name", flat=True),
            "project": project,
            "live": not state and not project and page.number == 1,
        },
    )


@login_required
def runs_fragment(request: HttpRequest) -> JsonResponse:
    return JsonResponse(dashboard.list_fragment(access.runs(request.user)))


@login_required
def run_detail(request: HttpRequest, run_id: str) -> HttpResponse:
    run = get_object_or_404(
        access.runs(request.user).select_related("project", "created_by"), run_id=run_id
    )
    lines, last_id = dashboard.log_lines(run)
    return render(
        request,
        "runs/detail.html",
        {**dashboard.run_context(run, request.user), "lines": lines, "last_event": last_id},
    )


@login_required
def run_fragments(request: HttpRequest, run_id: str) -> JsonResponse:
    run = get_object_or_404(access.runs(request.user), run_id=run_id)
    try:
        after = int(request.GET.get("after", 0))
    except ValueError:
        return JsonResponse({"detail": "after must be an event id"}, status=400)
    return JsonResponse(dashboard.fragments(run, request.user, after))


@login_required
@require_POST
def run_cancel(request: HttpRequest, run_id: str) -> HttpResponse:
    run = get_object_or_404(access.runs(request.user), run_id=run_id)
    if not access.can_cancel(request.user, run):
        return HttpResponseForbidden("You may not cancel this run.")
    try:
        done = services.cancel_run(run, by=request.user.get_username())
    except IllegalTransition as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            "Run cancelled."
            if done
            else "Cancelling: the run stops at its next step, at its last savepoint.",
        )
    return redirect("run-detail", run_id=run.run_id)


@login_required
@require_POST
def run_resume(request: HttpRequest, run_id: str) -> HttpResponse:
    run = get_object_or_404(access.runs(request.user), run_id=run_id)
    if not access.can_resume(request.user, run):
        return HttpResponseForbidden("You may not resume this run.")
    options: dict = {}
    try:
        for field in ("token_cap", "max_duration_minutes", "extra_attempts"):
            if request.POST.get(field):
                options[field] = int(request.POST[field])
        if request.POST.get("cost_cap"):
            options["cost_cap"] = Decimal(request.POST["cost_cap"])
        services.resume_run(run, by=request.user.get_username(), **options)
    except (ValueError, InvalidOperation, services.ResumeError, IllegalTransition) as exc:
        messages.error(request, f"Not resumed: {exc}")
    else:
        messages.success(request, "Resumed from the last savepoint.")
    return redirect("run-detail", run_id=run.run_id)


@login_required
def new_run(request: HttpRequest) -> HttpResponse:
    if request.method == "POST" and "markdown" in request.POST:
        return _new_run_from_markdown(request)
    text, errors = "", []
    if request.method == "POST":
        upload = request.FILES.get("config_file")
        text = (
            upload.read().decode("utf-8", errors="replace")
            if upload
            else request.POST.get("config", "")
        )
        try:
            data = json.loads(text)
            run = services.create_run(data, created_by=request.user)
        except json.JSONDecodeError as exc:
            errors = [
                {
                    "path": f"line {exc.lineno}, column {exc.colno}",
                    "message": f"not valid JSON: {exc.msg}",
                }
            ]
        except ConfigError as exc:
            errors = exc.errors
        except services.DuplicateRun as exc:
            errors = [{"path": "run_id", "message": f"{exc}; choose another run_id"}]
        else:
            return redirect("run-detail", run_id=run.run_id)
    tab = "markdown" if request.GET.get("tab") == "markdown" else "json"
    return render(
        request,
        "runs/new.html",
        {"tab": tab, "text": text, "errors": errors, "plan": {}},
        status=400 if errors else 200,
    )


def _new_run_from_markdown(request: HttpRequest) -> HttpResponse:
    """Preview a markdown plan's run config and messages, or create its run; or have the
    Planner draft the plan from notes, to review here before it is previewed or created."""
    plan = {key: request.POST.get(key, "") for key in ("markdown", "repo", "goal", "run_id")}
    action = request.POST.get("action")
    errors: list[dict[str, str]] = []
    result, drafted = None, None
    status = 400
    given = {"repo": plan["repo"], "goal": plan["goal"], "run_id": plan["run_id"]}
    try:
        if action == "draft":
            drafted = planning.draft_for_user(request.user, plan["markdown"], **given)
            plan["markdown"] = drafted.plan.markdown
            result = drafted.plan.result
        else:
            result = markdown_plans.read_for_user(request.user, plan["markdown"], **given)
    except markdown_plans.PlanRefused as exc:
        errors = [{"path": "repo", "message": str(exc)}]
    except markdown_plans.PlanInputError as exc:
        errors = [{"path": exc.field, "message": exc.message}]
    except planning.PlanningFailed as exc:
        errors = [{"path": "planner", "message": str(exc)}]
        status = 502 if exc.kind == "provider" else 400
    if result and result.config and action == "create":
        try:
            run = services.create_run(result.config, created_by=request.user)
        except ConfigError as exc:
            errors = exc.errors
        except services.DuplicateRun as exc:
            errors = [{"path": "run_id", "message": f"{exc}; choose another run id"}]
        else:
            return redirect("run-detail", run_id=run.run_id)
    messages = result.messages if result else []
    refused = drafted is not None and not drafted.plan.accepted
    problems = drafted.plan.problems if drafted else [m for m in messages if m.level == "error"]
    errors += [
        {"path": f"line {m.line}" if m.line else "plan", "message": m.message} for m in problems
    ]
    shown = result and result.config and not refused
    context = {
        "tab": "markdown",
        "plan": plan,
        "plan_errors": errors,
        "warnings": [m for m in messages if m.level == "warning"],
        "inferred": result.inferred if shown else {},
        "config_json": json.dumps(result.config, indent=2) if shown else "",
        "drafted": drafted,
    }
    return render(request, "runs/new.html", context, status=status if errors else 200)


@login_required
def projects_list(request: HttpRequest) -> HttpResponse:
    from django.db.models import Count, Q

    projects = access.projects(request.user).annotate(
        run_count=Count("runs", distinct=True),
        open_issues=Count("issues", filter=Q(issues__status="open"), distinct=True),
    )
    return render(request, "runs/projects.html", {"projects": projects})


@login_required
def project_detail(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_object_or_404(access.projects(request.user), pk=pk)
    rows = [
        {"run": run, "current": dashboard.current_step(run), "elapsed": dashboard.elapsed(run)}
        for run in dashboard.runs_with_progress(project.runs.all())[:100]
    ]
    issues = project.issues.filter(status="open").select_related("run", "phase")[:200]
    return render(
        request, "runs/project.html", {"project": project, "rows": rows, "issues": issues}
    )
