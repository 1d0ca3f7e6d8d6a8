"""The governance queue page: pending requests to decide, decided ones to read."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from governance import services
from governance.models import APPROVE_PERMISSION, GovernanceRequest
from runs.dashboard import diff_files


@login_required
def queue(request: HttpRequest) -> HttpResponse:
    requests = GovernanceRequest.objects.select_related("run", "phase", "decided_by")
    pending = [
        {"request": r, "files": diff_files(r.diff)}
        for r in requests.filter(state=GovernanceRequest.State.PENDING)
    ]
    decided = requests.exclude(state=GovernanceRequest.State.PENDING)[:50]
    return render(
        request,
        "governance/queue.html",
        {
            "pending": pending,
            "decided": decided,
            "can_decide": request.user.has_perm(APPROVE_PERMISSION),
        },
    )


@login_required
@require_POST
def decide(request: HttpRequest, pk: int, decision: str) -> HttpResponse:
    if not request.user.has_perm(APPROVE_PERMISSION):
        return HttpResponseForbidden("You may view governance requests but not decide them.")
    obj = get_object_or_404(GovernanceRequest, pk=pk)
    try:
        services.decide(obj, request.user, decision, request.POST.get("reason", ""))
    except services.DecisionError as exc:
        messages.error(request, f"Request #{obj.pk}: {exc}")
    else:
        obj.refresh_from_db()
        messages.success(request, f"Request #{obj.pk} {obj.state}; run {obj.run.run_id} continues.")
    return redirect("governance-queue")
