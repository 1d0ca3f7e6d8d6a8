from django.conf import settings
from django.db import models


class LlmCall(models.Model):
    """One request to a model provider, with usage exactly as the provider reported it
    (null where it reported nothing). A call made before any run exists (a plan drafted
    from notes) has no run, only its project; a run's call has its run's project."""

    run = models.ForeignKey(
        "runs.Run", null=True, blank=True, on_delete=models.CASCADE, related_name="llm_calls"
    )
    project = models.ForeignKey(
        "runs.Project", null=True, blank=True, on_delete=models.CASCADE, related_name="llm_calls"
    )
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

    def save(self, *args, **kwargs) -> None:
        # Usage is counted by project: a run's call is always its project's.
        if self.run_id is not None and self.project_id is None:
            self.project_id = self.run.project_id
        super().save(*args, **kwargs)


class BenchRun(models.Model):
    """One benchmark: every task of a suite run as an ordinary run with one model."""

    class State(models.TextChoices):
        RUNNING = "running"
        DONE = "done"
        STOPPED = "stopped"  # interrupted before every task finished

    bench_id = models.SlugField(max_length=100, unique=True)
    suite = models.CharField(max_length=1000, help_text="The suite's folder or JSONL file")
    suite_kind = models.CharField(max_length=20, help_text="exercism or swebench")
    model = models.CharField(max_length=200, help_text="The Builder's model, or a scripted one")
    edit_format = models.CharField(max_length=30)
    tries = models.PositiveIntegerField()
    workers = models.PositiveIntegerField()
    languages = models.JSONField(default=list, blank=True)
    limit = models.PositiveIntegerField(null=True, blank=True)
    autopack_version = models.CharField(max_length=50)
    replay_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replays"
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.RUNNING)
    wall_seconds = models.FloatField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.bench_id} ({self.model})"


class BenchTask(models.Model):
    """One task of a benchmark and how its run went."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        PASSED = "passed"
        FAILED = "failed"
        ERROR = "error"  # the task could not be tried: its environment, its repository

    bench = models.ForeignKey(BenchRun, on_delete=models.CASCADE, related_name="tasks")
    task_id = models.CharField(max_length=300)
    language = models.CharField(max_length=30)
    run = models.ForeignKey(
        "runs.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="bench_tasks"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True, help_text="Why the task could not be tried")
    passed_try = models.PositiveIntegerField(null=True, blank=True)
    tries_used = models.PositiveIntegerField(default=0)
    well_formed = models.BooleanField(default=True, help_text="Every reply was well formed")
    malformed = models.PositiveIntegerField(default=0)
    syntax_errors = models.PositiveIntegerField(default=0)
    test_timeouts = models.PositiveIntegerField(default=0)
    context_exhausted = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, default=0)
    seconds = models.FloatField(null=True, blank=True)
    tests = models.JSONField(
        default=dict, blank=True, help_text="SWE-bench: FAIL_TO_PASS and PASS_TO_PASS results"
    )

    class Meta:
        ordering = ["language", "task_id"]
        constraints = [
            models.UniqueConstraint(fields=["bench", "task_id"], name="bench_task_unique")
        ]

    def __str__(self) -> str:
        return f"{self.task_id}: {self.status}"
