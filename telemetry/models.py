from django.db import models


class LlmCall(models.Model):
    """One request to a model provider, with usage exactly as the provider reported it
    (null where it reported nothing)."""

    run = models.ForeignKey("runs.Run", on_delete=models.CASCADE, related_name="llm_calls")
    phase = models.ForeignKey(
        "runs.Phase", null=True, blank=True, on_delete=models.CASCADE, related_name="llm_calls"
    )
    attempt = models.ForeignKey(
        "runs.Attempt", null=True, blank=True, on_delete=models.CASCADE, related_name="llm_calls"
    )
    role = models.CharField(max_length=20)
    provider = models.CharField(max_length=30)
    model = models.CharField(max_length=200)
    system_prompt = models.TextField(blank=True)
    request_messages = models.JSONField(default=list)
    max_tokens = models.PositiveIntegerField()
    response_text = models.TextField(blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    total_tokens = models.PositiveIntegerField(null=True, blank=True)
    cache_read_tokens = models.PositiveIntegerField(null=True, blank=True)
    cache_write_tokens = models.PositiveIntegerField(null=True, blank=True)
    charged_tokens = models.PositiveIntegerField(
        default=0,
        help_text="Counted against the token cap: the provider's total, or the "
        "worst case when it reported none",
    )
    prompt_tokens_checked = models.PositiveIntegerField(
        default=0,
        help_text="Prompt size the budget admitted the call with (counted by the "
        "provider where it can, else estimated)",
    )
    cost_usd = models.DecimalField(
        max_digits=14,
        decimal_places=8,
        null=True,
        blank=True,
        help_text="Exact, from reported usage; null when unknown",
    )
    charged_cost_usd = models.DecimalField(
        max_digits=14,
        decimal_places=8,
        default=0,
        help_text="Counted against cost caps: the exact cost, else the worst case",
    )
    status_code = models.PositiveIntegerField(null=True, blank=True)
    stop_reason = models.CharField(max_length=50, blank=True)
    duration_ms = models.PositiveIntegerField()
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["run", "role"]), models.Index(fields=["created_at"])]

    def __str__(self) -> str:
        return f"{self.role} {self.provider}/{self.model} ({self.total_tokens} tokens)"
