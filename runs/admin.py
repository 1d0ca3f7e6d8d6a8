from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from runs import services
from runs.models import (
    Attempt,
    Decision,
    Issue,
    Phase,
    PhasePlan,
    Project,
    ProjectMember,
    Run,
    RunEvent,
    TestBaseline,
    Tier,
)
from runs.states import IllegalTransition


class ReadOnlyInline(admin.TabularInline):
    """State is changed by services, never by editing rows in place."""

    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str]:
        return list(self.fields)


class TierInline(ReadOnlyInline):
    model = Tier
    fields = ["index", "name", "state"]


class PhaseInline(ReadOnlyInline):
    model = Phase
    fields = [
        "tier",
        "phase_id",
        "name",
        "complexity",
        "state",
        "attempt_count",
        "last_failure_reason",
    ]


class AttemptInline(ReadOnlyInline):
    model = Attempt
    fields = ["phase", "number", "model", "state", "outcome", "error", "started_at", "finished_at"]


class MemberInline(admin.TabularInline):
    """Who may see the project (viewer), run builds in it (member) or manage it (owner)."""

    model = ProjectMember
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "repository", "base_branch", "created_at"]
    search_fields = ["name", "repository"]
    inlines = [MemberInline]


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = [
        "run_id",
        "project",
        "state",
        "failure_code",
        "created_by",
        "created_at",
        "finished_at",
    ]
    list_filter = ["state", "project"]
    search_fields = ["run_id", "goal"]
    readonly_fields = [
        "run_id",
        "project",
        "state",
        "failure_code",
        "failure_reason",
        "integration_branch",
        "base_commit",
        "environment",
        "config",
        "created_by",
        "created_at",
        "started_at",
        "finished_at",
    ]
    inlines = [TierInline, PhaseInline, AttemptInline]
    actions = ["cancel_runs"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # runs are created from a run config: API, dashboard or CLI

    @admin.action(description="Cancel selected runs")
    def cancel_runs(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        for run in queryset:
            try:
                services.cancel_run(run, by=request.user.get_username())
            except IllegalTransition as exc:
                self.message_user(request, str(exc), messages.WARNING)
            else:
                self.message_user(request, f"Cancelled {run.run_id}")


@admin.register(TestBaseline)
class TestBaselineAdmin(admin.ModelAdmin):
    """Results of a test command on a commit, reused by every run that starts there.
    Deleting one makes the next run that needs it take it again."""

    list_display = ["project", "command", "commit", "ran", "passed", "failed", "created_at"]
    list_filter = ["project"]
    search_fields = ["command", "commit"]
    readonly_fields = [f.name for f in TestBaseline._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Tier)
class TierAdmin(admin.ModelAdmin):
    list_display = ["run", "index", "name", "state"]
    list_filter = ["state", "run__project"]
    search_fields = ["run__run_id", "name"]
    readonly_fields = ["run", "index", "state"]


@admin.register(Phase)
class PhaseAdmin(admin.ModelAdmin):
    list_display = ["phase_id", "run", "name", "complexity", "state", "attempt_count"]
    list_filter = ["state", "complexity", "run__project"]
    search_fields = ["phase_id", "run__run_id", "name"]
    readonly_fields = [
        "run",
        "tier",
        "phase_id",
        "index",
        "state",
        "attempt_count",
        "last_failure_reason",
    ]
    inlines = [AttemptInline]


@admin.register(Attempt)
class AttemptAdmin(admin.ModelAdmin):
    list_display = ["phase", "number", "model", "state", "outcome", "started_at"]
    list_filter = ["state", "outcome", "run__project"]
    search_fields = ["phase__phase_id", "run__run_id"]
    readonly_fields = [f.name for f in Attempt._meta.fields]


@admin.register(Decision)
class DecisionAdmin(admin.ModelAdmin):
    """Recovery decisions after failed attempts (runs/engine/recovery.py): a record."""

    list_display = ["phase", "attempt", "action", "failure_kind", "model", "created_at"]
    list_filter = ["action", "failure_kind", "run__project"]
    search_fields = ["phase__phase_id", "run__run_id", "reason"]
    readonly_fields = [f.name for f in Decision._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(PhasePlan)
class PhasePlanAdmin(admin.ModelAdmin):
    """Versions of a phase's plan: as configured, then each replan."""

    list_display = ["phase", "version", "reason", "created_at"]
    search_fields = ["phase__phase_id", "phase__run__run_id"]
    readonly_fields = [f.name for f in PhasePlan._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Issue)
class IssueAdmin(admin.ModelAdmin):
    actions = ["close_issues"]

    @admin.action(description="Close selected issues")
    def close_issues(self, request: HttpRequest, queryset: QuerySet[Issue]) -> None:
        closed = queryset.update(status=Issue.Status.CLOSED)
        self.message_user(request, f"Closed {closed} issue(s).")

    list_display = [
        "title",
        "scope",
        "severity",
        "project",
        "occurrence_count",
        "last_seen",
        "status",
    ]
    list_filter = ["status", "scope", "severity", "project"]
    search_fields = ["title", "details", "run__run_id", "phase__phase_id"]


@admin.register(RunEvent)
class RunEventAdmin(admin.ModelAdmin):
    list_display = ["id", "run", "kind", "created_at"]
    list_filter = ["kind", "run__project"]
    search_fields = ["run__run_id", "kind"]
    readonly_fields = ["run", "kind", "payload", "created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the log is append-only, written by services
