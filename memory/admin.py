from django.contrib import admin
from django.http import HttpRequest

from memory.models import LearnedRule, Memory


@admin.register(Memory)
class MemoryAdmin(admin.ModelAdmin):
    """Entries are written by runs; people read them here."""

    list_display = [
        "kind",
        "title",
        "project",
        "run",
        "phase_id",
        "path",
        "embedding_model",
        "updated_at",
    ]
    list_filter = ["kind", "project", "embedding_model"]
    search_fields = ["title", "text", "path"]
    fields = [
        "project",
        "kind",
        "run",
        "phase_id",
        "path",
        "symbol",
        "line",
        "title",
        "text",
        "meta",
        "embedding_model",
        "embedding_dim",
        "content_hash",
        "created_at",
        "updated_at",
    ]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(LearnedRule)
class LearnedRuleAdmin(admin.ModelAdmin):
    list_display = ["hint", "project", "category", "occurrences", "enabled", "source", "updated_at"]
    list_filter = ["enabled", "source", "project"]
    list_editable = ["enabled"]
    search_fields = ["hint", "failure"]
