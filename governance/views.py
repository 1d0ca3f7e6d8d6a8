"""The governance queue page: pending requests to decide, decided ones to read."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from governance import services
from governance.models import GovernanceRequest
from runs import access
from runs.dashboard import diff_files


def _visible(request: HttpRequest):
    return GovernanceRequest.objects.filter(
        run__project__in=access.projects(request.user)
    ).select_related("run", "run__project", "phase", "decided_by")


@login_required
def queue(request: HttpRequest) -> HttpResponse:
    requests = _visible(request)
    pending = [
        {
            "request": r,
            "files": diff_files(r.diff),
            "can_decide": access.can_decide(request.user, r.run.project),
        }
        for r in requests.filter(state=GovernanceRequest.State.PENDING)
    ]
    decided = requests.exclude(state=GovernanceRequest.State.PENDING)[:50]
    return render(request, "governance/queue.html", {"pending": pending, "decided": decided})


@login_required
@require_POST
def decide(request: HttpRequest, pk: int, decision: str) -> HttpResponse:
    obj = get_object_or_404(_visible(request), pk=pk)
    if not access.can_decide(request.user, obj.run.project):
        return HttpResponseForbidden(
            "Deciding needs the approval permission and membership of the run's project."
        )
    try:
        services.decide(obj, request.user, decision, request.POST.get("reason", ""))
    except services.DecisionError as exc:
        messages.error(request, f"Request #{obj.pk}: {exc}")
    else:
        obj.refresh_from_db()
        messages.success(request, f"Request #{obj.pk} {obj.state}; run {obj.run.run_id} continues.")
    return redirect("governance-queue")
