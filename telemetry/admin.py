from django.contrib import admin

from telemetry.models import LlmCall


@admin.register(LlmCall)
class LlmCallAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "project",
        "run",
        "role",
        "provider",
        "model",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "stop_reason",
        "duration_ms",
        "created_at",
    ]
    list_filter = ["role", "provider", "model"]
    search_fields = ["run__run_id", "project__name", "model"]
    readonly_fields = [field.name for field in LlmCall._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
