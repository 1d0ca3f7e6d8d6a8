"""Projects, runs and their plan (tiers, phases), attempts, issues and the event log.

State fields are changed only through `runs.services`, which checks each transition.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from runs.engine.failures import FailureKind
from runs.engine.recovery import Action
from runs.engine.spec import title
from runs.states import AttemptState, FailureCode, Outcome, PhaseState, RunState


class Resolution:
    """How dependencies without a lockfile are resolved."""

    COMMIT_DATE = "commit-date"
    NEWEST = "newest"
    CHOICES = [
        (COMMIT_DATE, "as of the base commit's date"),
        (NEWEST, "newest versions"),
    ]


class Project(models.Model):
    name = models.CharField(max_length=200, unique=True)
    repository = models.CharField(max_length=1000, help_text="Local path or git URL")
    base_branch = models.CharField(max_length=200, default="main")
    protected_paths = models.JSONField(default=list, blank=True)
    test_command = models.CharField(
        max_length=1000, blank=True, help_text="Empty: detected from the repository"
    )
    setup_command = models.CharField(
        max_length=2000,
        blank=True,
        help_text="Installs the project's dependencies instead of the detected installer",
    )
    dependency_resolution = models.CharField(
        max_length=20, choices=Resolution.CHOICES, default=Resolution.COMMIT_DATE
    )
    push_branches = models.BooleanField(
        default=True,
        help_text="Push each run's integration branch (autopack/<run_id>) to the repository "
        "at every savepoint, so the team sees it and any worker on any machine can continue "
        "the run",
    )
    branch_remote = models.CharField(
        max_length=1000,
        blank=True,
        help_text="Push integration branches here instead (a URL or path every worker can "
        "reach); empty: the repository",
    )
    share_memory = models.BooleanField(
        default=False,
        help_text="Let this project's runs learn from other projects that share their memory "
        "too, and share its own (off: memory never crosses projects)",
    )
    send_secret_files = models.BooleanField(
        default=False,
        help_text="Send files that look like secrets (.env, keys, certificates) to model "
        "providers as context",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def integration_remote(self) -> str:
        """Where runs' integration branches are pushed ("" when nowhere)."""
        return self.branch_remote or (self.repository if self.push_branches else "")


class Role:
    """What a member may do in a project: owners manage it and its members, members run
    builds, viewers read. Staff may do everything everywhere."""

    OWNER = "owner"
    MEMBER = "member"
    VIEWER = "viewer"
    CHOICES = [(OWNER, "owner"), (MEMBER, "member"), (VIEWER, "viewer")]


class ProjectMember(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="project_memberships"
    )
    role = models.CharField(max_length=10, choices=Role.CHOICES, default=Role.MEMBER)
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "user"]
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="one_membership_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.role}) in {self.project}"


class Run(models.Model):
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="runs")
    run_id = models.SlugField(max_length=100, unique=True)
    goal = models.TextField()
    intention_anchor = models.TextField(
        blank=True, help_text="The run's goal and plan in at most 2 KB, for every model it asks"
    )
    state = models.CharField(max_length=20, choices=RunState.CHOICES, default=RunState.QUEUED)
    failure_code = models.CharField(max_length=30, choices=FailureCode.CHOICES, blank=True)
    failure_reason = models.TextField(blank=True)
    token_cap = models.PositiveBigIntegerField(null=True, blank=True)
    max_attempts_per_phase = models.PositiveIntegerField(default=5)
    max_duration_seconds = models.PositiveIntegerField(null=True, blank=True)
    tokens_used = models.PositiveBigIntegerField(default=0)
    cost_cap = models.DecimalField(
        max_digits=12, decimal_places=4, null=True, blank=True, help_text="USD"
    )
    cost_usd = models.DecimalField(
        max_digits=14,
        decimal_places=8,
        default=0,
        help_text="Spent so far, counted against the cost cap",
    )
    health_budget = models.JSONField(
        default=dict, blank=True, help_text="Overrides of the health budget defaults"
    )
    active_since = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Last (re)start: duration and health budgets count from here",
    )
    integration_branch = models.CharField(max_length=250)
    provider = models.CharField(
        max_length=500,
        blank=True,
        help_text="Empty: route models by config/models.yaml. scripted:PATH: replies from a file",
    )
    base_branch = models.CharField(max_length=200, blank=True, help_text="Empty: the project's")
    setup_command = models.CharField(max_length=2000, blank=True)
    test_command = models.CharField(max_length=1000, blank=True)
    dependency_resolution = models.CharField(
        max_length=20, choices=Resolution.CHOICES, blank=True, help_text="Empty: the project's"
    )
    base_commit = models.CharField(
        max_length=64, blank=True, help_text="The base branch's commit the run started from"
    )
    environment = models.JSONField(
        null=True, blank=True, help_text="The project environment the last step used"
    )
    worktree_path = models.CharField(
        max_length=1000,
        blank=True,
        help_text="The worktree the last step used, on the machine that ran it",
    )
    last_savepoint = models.CharField(
        max_length=64,
        blank=True,
        help_text="The commit every step starts from: the last completed phase's savepoint "
        "(empty: the base commit)",
    )
    sandboxed = models.BooleanField(
        null=True, blank=True, help_text="Whether gate commands run under bubblewrap"
    )
    cancel_requested = models.BooleanField(default=False)
    step = models.PositiveIntegerField(
        default=0,
        help_text="Steps executed; a queued task "
        "carries the step it is for, so a duplicate does nothing",
    )
    lease_owner = models.CharField(max_length=64, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(
        null=True, blank=True, help_text="When the current step was last put on the queue"
    )
    config = models.JSONField(help_text="The run-config JSON as submitted")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["state", "-created_at"])]

    def __str__(self) -> str:
        return self.run_id

    @property
    def is_final(self) -> bool:
        return self.state in RunState.FINAL

    @property
    def failure_kind(self) -> str:
        """ "user" (a code saying what to change), "application" (a bug) or ""."""
        return FailureCode.kind(self.failure_code)


class Tier(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="tiers")
    index = models.PositiveIntegerField()
    name = models.CharField(max_length=200)
    state = models.CharField(max_length=20, choices=PhaseState.CHOICES, default=PhaseState.QUEUED)

    class Meta:
        ordering = ["run", "index"]
        constraints = [
            models.UniqueConstraint(fields=["run", "index"], name="tier_index_unique_in_run")
        ]

    def __str__(self) -> str:
        return f"{self.run.run_id} tier {self.index}: {self.name}"


class Complexity:
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CHOICES = [(LOW, "low"), (MEDIUM, "medium"), (HIGH, "high")]


class Phase(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="phases")
    tier = models.ForeignKey(Tier, on_delete=models.CASCADE, related_name="phases")
    phase_id = models.CharField(max_length=100)
    index = models.PositiveIntegerField()
    name = models.TextField(help_text="The run config's task_name, whole")
    description = models.TextField(blank=True)
    category = models.CharField(max_length=100, blank=True)
    complexity = models.CharField(max_length=10, choices=Complexity.CHOICES)
    scope_paths = models.JSONField(default=list)
    read_only_context = models.JSONField(default=list, blank=True)
    deliverables = models.JSONField(default=list, blank=True)
    acceptance_criteria = models.JSONField(default=list, blank=True)
    test_command = models.CharField(max_length=1000, blank=True)
    setup_command = models.CharField(max_length=2000, blank=True)
    approval_required = models.BooleanField(default=False)
    allow_binary = models.BooleanField(
        default=False, help_text="The Builder may write files with binary content (NUL bytes)"
    )
    escalation_policy = models.JSONField(null=True, blank=True)
    max_attempts = models.PositiveIntegerField()
    token_cap = models.PositiveBigIntegerField(null=True, blank=True)
    cost_cap = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    tokens_used = models.PositiveBigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, default=0)
    state = models.CharField(max_length=20, choices=PhaseState.CHOICES, default=PhaseState.QUEUED)
    attempt_count = models.PositiveIntegerField(default=0)
    last_failure_reason = models.TextField(blank=True)
    savepoint = models.CharField(
        max_length=64, blank=True, help_text="The commit recorded when the phase completed"
    )
    approach = models.TextField(blank=True, help_text="How to go about it (from a replan)")
    plan_version = models.PositiveIntegerField(
        default=1, help_text="Replans made a new version of the description and criteria"
    )
    executables = models.JSONField(
        default=list, blank=True, help_text="Files a known fix marks executable"
    )

    class Meta:
        ordering = ["run", "tier__index", "index"]
        constraints = [
            models.UniqueConstraint(fields=["run", "phase_id"], name="phase_id_unique_in_run"),
            models.UniqueConstraint(fields=["tier", "index"], name="phase_index_unique_in_tier"),
        ]

    def __str__(self) -> str:
        return f"{self.run.run_id}/{self.phase_id}"

    @property
    def title(self) -> str:
        """The task's first line, shortened; the whole task is `name`."""
        return title(self.name)

    @property
    def has_more_text(self) -> bool:
        return self.title != self.name.strip()


class Attempt(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="attempts")
    phase = models.ForeignKey(Phase, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    model = models.CharField(max_length=200, help_text="The Builder's model")
    auditor_model = models.CharField(max_length=200, blank=True)
    model_reason = models.CharField(
        max_length=500, blank=True, help_text="Why this model was chosen"
    )
    state = models.CharField(
        max_length=20, choices=AttemptState.CHOICES, default=AttemptState.RUNNING
    )
    outcome = models.CharField(max_length=50, choices=Outcome.CHOICES, blank=True)
    error = models.TextField(blank=True)
    feedback = models.TextField(blank=True, help_text="What the next attempt is told")
    diff = models.TextField(blank=True)
    changed_files = models.JSONField(default=list, blank=True)
    gate_results = models.JSONField(default=list, blank=True)
    auditor_verdict = models.JSONField(null=True, blank=True)
    savepoint = models.CharField(max_length=64, blank=True)
    failure_signature = models.CharField(max_length=40, blank=True)
    failure_kind = models.CharField(max_length=30, choices=FailureKind.CHOICES, blank=True)
    diagnostics = models.JSONField(
        default=list, blank=True, help_text="Read-only probes run after the failure"
    )
    context_files = models.JSONField(default=list, blank=True)
    omitted_files = models.JSONField(default=list, blank=True)
    context = models.JSONField(
        default=dict,
        blank=True,
        help_text="What the Builder was shown: files whole, files as their map, files left "
        "out with the reason, and the token budget",
    )
    drift = models.JSONField(
        null=True, blank=True, help_text="The change's similarity to the run's intention anchor"
    )
    truncations = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["phase", "number"]
        constraints = [
            models.UniqueConstraint(fields=["phase", "number"], name="attempt_number_unique")
        ]

    def __str__(self) -> str:
        return f"{self.phase} attempt {self.number}"


class Decision(models.Model):
    """One step of recovery after a failed attempt (runs/engine/recovery.py): what was
    decided, why, and the inputs it was decided from."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="decisions")
    phase = models.ForeignKey(Phase, on_delete=models.CASCADE, related_name="decisions")
    attempt = models.ForeignKey(Attempt, on_delete=models.CASCADE, related_name="decisions")
    action = models.CharField(max_length=30, choices=Action.CHOICES)
    reason = models.TextField()
    failure_kind = models.CharField(max_length=30, choices=FailureKind.CHOICES, blank=True)
    hint = models.TextField(blank=True, help_text="What the next Builder is told")
    model = models.CharField(max_length=200, blank=True)
    inputs = models.JSONField(default=dict)
    result = models.JSONField(
        default=dict, blank=True, help_text="What carrying it out gave: advice, a fix's output"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.phase} after attempt {self.attempt.number}: {self.action}"


class PhasePlan(models.Model):
    """A version of a phase's plan: the first as configured, later ones from replans."""

    phase = models.ForeignKey(Phase, on_delete=models.CASCADE, related_name="plans")
    version = models.PositiveIntegerField()
    description = models.TextField(blank=True)
    acceptance_criteria = models.JSONField(default=list, blank=True)
    approach = models.TextField(blank=True)
    scope_paths = models.JSONField(default=list)
    refused_paths = models.JSONField(
        default=list, blank=True, help_text="Asked for outside the scope: not granted"
    )
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["phase", "version"]
        constraints = [
            models.UniqueConstraint(fields=["phase", "version"], name="phase_plan_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.phase} plan v{self.version}"


class TestBaseline(models.Model):
    """A test command's results on one commit in one project environment: what a phase
    starting from that commit is compared with. Taken once, used by every run."""

    __test__ = False  # not a pytest test class

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="baselines")
    command = models.CharField(max_length=1000)
    commit = models.CharField(max_length=64)
    environment = models.CharField(max_length=100, help_text="The environment's cache key")
    results = models.JSONField(help_text="Outcome of every test, by id")
    ran = models.PositiveIntegerField(default=0)
    passed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0, help_text="Test files that could not load")
    problem = models.TextField(blank=True, help_text="Why the command could not run, if so")
    output = models.TextField(blank=True, help_text="The end of what the command printed")
    duration = models.FloatField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "command", "commit", "environment"], name="baseline_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.project} {self.commit[:10]} `{self.command}`"


class Issue(models.Model):
    """The three-level issue tracker: a problem seen in a phase, a run or a project."""

    class Scope(models.TextChoices):
        PHASE = "phase"
        RUN = "run"
        PROJECT = "project"

    class Severity(models.TextChoices):
        LOW = "low"
        MEDIUM = "medium"
        HIGH = "high"
        CRITICAL = "critical"

    class Status(models.TextChoices):
        OPEN = "open"
        CLOSED = "closed"

    scope = models.CharField(max_length=10, choices=Scope.choices)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="issues")
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.CASCADE)
    phase = models.ForeignKey(Phase, null=True, blank=True, on_delete=models.CASCADE)
    signature = models.CharField(max_length=64, help_text="Hash of the normalised failure")
    severity = models.CharField(max_length=10, choices=Severity.choices)
    title = models.CharField(max_length=300)
    details = models.TextField(blank=True)
    occurrence_count = models.PositiveIntegerField(default=1)
    first_seen = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)

    class Meta:
        ordering = ["-last_seen"]
        indexes = [models.Index(fields=["project", "scope", "signature"])]

    def __str__(self) -> str:
        return f"[{self.scope}] {self.title}"


class RunEvent(models.Model):
    """Append-only log of everything that happens to a run."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events")
    created_at = models.DateTimeField(auto_now_add=True)
    kind = models.CharField(max_length=50)
    payload = models.JSONField(default=dict)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["run", "id"])]

    def __str__(self) -> str:
        return f"{self.run.run_id} #{self.id} {self.kind}"
