from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from governance import maintenance, services
from governance.models import (
    APPROVE_PERMISSION,
    Backlog,
    BacklogItem,
    GovernanceRequest,
    NotificationDelivery,
)


def diff_html(diff: str):
    """The diff as readable HTML: one line each, additions and removals coloured."""

    def style(line: str) -> str:
        if line.startswith(("+++", "---", "diff --git")):
            return "font-weight:bold"
        if line.startswith("+"):
            return "background:#e6ffec;color:#0a3d1a"
        if line.startswith("-"):
            return "background:#ffebe9;color:#67060c"
        if line.startswith("@@"):
            return "color:#0550ae"
        return ""

    rows = format_html_join(
        "", '<div style="{}">{}</div>', ((style(line), line or " ") for line in diff.splitlines())
    )
    return format_html(
        '<pre style="font-size:12px;max-height:40em;overflow:auto;'
        'border:1px solid #ccc;padding:.5em">{}</pre>',
        rows,
    )


@admin.register(GovernanceRequest)
class GovernanceRequestAdmin(admin.ModelAdmin):
    list_display = ["id", "run", "phase", "kind", "risk", "state", "created_at", "decided_by"]
    list_filter = ["state", "risk", "kind"]
    search_fields = ["run__run_id", "phase__phase_id"]
    readonly_fields = [
        "run",
        "phase",
        "attempt",
        "kind",
        "risk",
        "risk_reasons",
        "paths",
        "protected_paths",
        "lines_added",
        "lines_removed",
        "reason",
        "change",
        "base_commit",
        "state",
        "decided_by",
        "decided_at",
        "decision_reason",
        "auto_policy",
        "evidence",
        "created_at",
    ]
    exclude = ["diff"]
    actions = ["approve_selected", "deny_selected"]
    change_form_template = "admin/governance/governancerequest/change_form.html"

    @admin.display(description="Change")
    def change(self, obj: GovernanceRequest):
        return diff_html(obj.diff)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # decided through approve/deny only

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def get_actions(self, request: HttpRequest):
        actions = super().get_actions(request)
        if not request.user.has_perm(APPROVE_PERMISSION):
            actions.pop("approve_selected", None)
            actions.pop("deny_selected", None)
        return actions

    def get_urls(self):
        return [
            path(
                "<int:pk>/approve/",
                self.admin_site.admin_view(self.decision_view),
                {"decision": "approve"},
                name="governance_governancerequest_approve",
            ),
            path(
                "<int:pk>/deny/",
                self.admin_site.admin_view(self.decision_view),
                {"decision": "deny"},
                name="governance_governancerequest_deny",
            ),
            *super().get_urls(),
        ]

    def render_change_form(self, request, context, *args, **kwargs):
        context["can_decide"] = request.user.has_perm(APPROVE_PERMISSION)
        return super().render_change_form(request, context, *args, **kwargs)

    def _back(self, pk: int) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:governance_governancerequest_change", args=[pk]))

    def decision_view(self, request: HttpRequest, pk: int, decision: str):
        obj = get_object_or_404(GovernanceRequest, pk=pk)
        if request.method != "POST" or not request.user.has_perm(APPROVE_PERMISSION):
            self.message_user(request, "You may not decide governance requests.", messages.ERROR)
        else:
            self._decide(request, obj, decision, request.POST.get("reason", ""))
        return self._back(pk)

    def _decide(
        self, request: HttpRequest, obj: GovernanceRequest, decision: str, reason: str = ""
    ) -> None:
        try:
            services.decide(obj, request.user, decision, reason)
        except services.DecisionError as exc:
            self.message_user(request, f"Request #{obj.pk}: {exc}", messages.ERROR)
        else:
            obj.refresh_from_db()
            self.message_user(request, f"Request #{obj.pk} {obj.state}.")

    @admin.action(description="Approve selected requests")
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[GovernanceRequest]):
        for obj in queryset:
            self._decide(request, obj, "approve")

    @admin.action(description="Deny selected requests (asks for a reason)")
    def deny_selected(self, request: HttpRequest, queryset: QuerySet[GovernanceRequest]):
        reason = request.POST.get("reason", "").strip()
        if "apply" not in request.POST or not reason:
            return render(
                request,
                "admin/governance/governancerequest/deny_reason.html",
                {
                    **self.admin_site.each_context(request),
                    "requests": queryset,
                    "opts": self.model._meta,
                    "missing": "apply" in request.POST,
                    "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
                },
            )
        for obj in queryset:
            self._decide(request, obj, "deny", reason)
        return None


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(admin.ModelAdmin):
    list_display = ["event", "target", "run", "state", "attempts", "created_at", "delivered_at"]
    list_filter = ["state", "event", "target"]
    readonly_fields = [f.name for f in NotificationDelivery._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


class BacklogItemInline(admin.TabularInline):
    model = BacklogItem
    fields = ["index", "task", "line", "run_link", "status", "detail"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description="Run")
    def run_link(self, item: BacklogItem):
        if item.run is None:
            return "—"
        url = reverse("run-detail", args=[item.run.run_id])
        return format_html('<a href="{}">{}</a>', url, item.run.run_id)

    @admin.display(description="Status")
    def status(self, item: BacklogItem) -> str:
        return maintenance.status(item).status

    @admin.display(description="Outcome")
    def detail(self, item: BacklogItem) -> str:
        return maintenance.status(item).detail


@admin.register(Backlog)
class BacklogAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "project", "branch", "detached", "created_at"]
    readonly_fields = [
        "project",
        "name",
        "branch",
        "detached",
        "provider",
        "created_by",
        "created_at",
        "markdown",
    ]
    inlines = [BacklogItemInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # `autopack backlog` makes them

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # read here; the runs and proposals are where things happen
