"""Approvals of protected changes, and notification deliveries."""

from __future__ import annotations

from django.conf import settings
from django.db import models

# The permission that lets a user decide governance requests (admin, pages and API).
APPROVE_PERMISSION = "governance.approve_governancerequest"


class GovernanceRequest(models.Model):
    class Kind(models.TextChoices):
        PROTECTED_PATH = "protected_path", "protected path"
        APPROVAL_REQUIRED = "approval_required", "phase requires approval"
        LARGE_DELETION = "large_deletion", "large deletion"
        PROPOSAL = "proposal", "proposed change"

    class Risk(models.TextChoices):
        LOW = "low"
        MEDIUM = "medium"
        HIGH = "high"
        CRITICAL = "critical"

    class State(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        DENIED = "denied"
        EXPIRED = "expired"

    run = models.ForeignKey(
        "runs.Run", on_delete=models.CASCADE, related_name="governance_requests"
    )
    phase = models.ForeignKey(
        "runs.Phase", on_delete=models.CASCADE, related_name="governance_requests"
    )
    # The attempt whose change waits; none for a proposal, which is the run's whole change.
    attempt = models.OneToOneField(
        "runs.Attempt",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="governance_request",
    )
    kind = models.CharField(max_length=30, choices=Kind.choices)
    risk = models.CharField(max_length=10, choices=Risk.choices)
    risk_reasons = models.JSONField(default=list)
    diff = models.TextField(help_text="The exact change that is applied when approved")
    paths = models.JSONField(default=list, help_text="Every path the change touches")
    protected_paths = models.JSONField(default=list, help_text="The protected ones among them")
    lines_added = models.PositiveIntegerField()
    lines_removed = models.PositiveIntegerField()
    reason = models.TextField(blank=True, help_text="The Builder's stated reason")
    base_commit = models.CharField(max_length=64, help_text="Worktree HEAD the diff applies to")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)
    auto_policy = models.CharField(
        max_length=200, blank=True, help_text="The policy that decided, when no person did"
    )
    evidence = models.JSONField(
        default=dict,
        blank=True,
        help_text="For a proposal: the branch it merges into, its commit, the test results "
        "and the Auditor's verdict",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("approve_governancerequest", "Can approve or deny governance requests")]
        indexes = [models.Index(fields=["state", "created_at"])]

    def __str__(self) -> str:
        return f"#{self.pk} {self.get_kind_display()} in {self.run.run_id}/{self.phase.phase_id}"

    @property
    def is_pending(self) -> bool:
        return self.state == self.State.PENDING

    @property
    def is_proposal(self) -> bool:
        return self.kind == self.Kind.PROPOSAL


class Backlog(models.Model):
    """A maintenance backlog: each item is a one-phase, propose-first run, built one at a
    time per project; approved proposals are merged into `branch`."""

    project = models.ForeignKey("runs.Project", on_delete=models.CASCADE, related_name="backlogs")
    name = models.CharField(max_length=200, help_text="The backlog file's name")
    markdown = models.TextField()
    branch = models.CharField(max_length=200, help_text="Approved proposals are merged here")
    detached = models.BooleanField(
        default=False, help_text="Workers start each next item (else the command does)"
    )
    provider = models.CharField(
        max_length=1000, blank=True, help_text="The runs' provider override (scripted:FILE)"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"backlog #{self.pk} {self.name} ({self.project.name})"


class BacklogItem(models.Model):
    """One backlog item. Its status is read from its run and its proposal, which are the
    authorities (governance.maintenance.status)."""

    backlog = models.ForeignKey(Backlog, on_delete=models.CASCADE, related_name="items")
    index = models.PositiveIntegerField()
    line = models.PositiveIntegerField(help_text="Its line in the backlog file")
    task = models.TextField()
    config = models.JSONField(help_text="The one-phase run config it runs as")
    run = models.OneToOneField(
        "runs.Run",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="backlog_item",
    )
    error = models.TextField(blank=True, help_text="Why its run could not be created")

    class Meta:
        ordering = ["backlog", "index"]
        constraints = [
            models.UniqueConstraint(fields=["backlog", "index"], name="one_item_per_index")
        ]

    def __str__(self) -> str:
        return f"item {self.index + 1} of backlog #{self.backlog_id}: {self.task[:60]}"


class NotificationDelivery(models.Model):
    class State(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    target = models.CharField(max_length=200, help_text="Target name from the configuration")
    event = models.CharField(max_length=50)
    run = models.ForeignKey(
        "runs.Run", null=True, blank=True, on_delete=models.CASCADE, related_name="notifications"
    )
    payload = models.JSONField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.event} to {self.target}: {self.state}"
