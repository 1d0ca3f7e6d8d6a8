"""Read-side representations of runs for the REST API."""

from rest_framework import serializers

from runs.environments import run_baselines
from runs.models import (
    Attempt,
    Issue,
    Phase,
    Project,
    ProjectMember,
    Run,
    RunEvent,
    TestBaseline,
    Tier,
)
from telemetry.models import LlmCall
from telemetry.usage import attempt_usage


class ProjectSerializer(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = [
            "id",
            "name",
            "repository",
            "base_branch",
            "protected_paths",
            "test_command",
            "setup_command",
            "dependency_resolution",
            "send_secret_files",
            "push_branches",
            "share_memory",
            "branch_remote",
            "created_at",
        ]
        read_only_fields = ["id", "name", "repository", "created_at"]

    def validate(self, attrs: dict) -> dict:
        unknown = set(self.initial_data) - set(self.fields)
        read_only = set(self.initial_data) & set(self.Meta.read_only_fields)
        errors = {name: "unknown field" for name in sorted(unknown)}
        errors.update({name: "cannot be changed" for name in sorted(read_only)})
        if errors:
            raise serializers.ValidationError(errors)
        return attrs

    def validate_protected_paths(self, value: object) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise serializers.ValidationError("a list of path patterns")
        return value


class MemberSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", max_length=150)

    class Meta:
        model = ProjectMember
        fields = ["username", "role", "added_at"]
        read_only_fields = ["added_at"]

    def validate_username(self, value: str) -> str:
        from django.contrib.auth import get_user_model

        if not get_user_model().objects.filter(username=value).exists():
            raise serializers.ValidationError(f"no user named {value!r}")
        return value

    def validate(self, attrs: dict) -> dict:
        return {"username": attrs["user"]["username"], "role": attrs["role"]}


class AttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = Attempt
        fields = [
            "number",
            "model",
            "auditor_model",
            "model_reason",
            "state",
            "outcome",
            "error",
            "feedback",
            "diff",
            "changed_files",
            "gate_results",
            "auditor_verdict",
            "savepoint",
            "failure_signature",
            "context_files",
            "omitted_files",
            "context",
            "drift",
            "truncations",
            "usage",
            "started_at",
            "finished_at",
        ]

    usage = serializers.SerializerMethodField()

    def get_usage(self, attempt: Attempt) -> dict:
        """Model calls of the attempt: tokens as reported, cost where known."""
        return attempt_usage(attempt)


class PhaseSerializer(serializers.ModelSerializer):
    attempts = AttemptSerializer(many=True, read_only=True)

    class Meta:
        model = Phase
        fields = [
            "phase_id",
            "index",
            "name",
            "description",
            "category",
            "complexity",
            "scope_paths",
            "read_only_context",
            "deliverables",
            "acceptance_criteria",
            "test_command",
            "setup_command",
            "token_cap",
            "cost_cap",
            "tokens_used",
            "cost_usd",
            "approval_required",
            "allow_binary",
            "escalation_policy",
            "max_attempts",
            "state",
            "attempt_count",
            "last_failure_reason",
            "savepoint",
            "attempts",
        ]


class TierSerializer(serializers.ModelSerializer):
    phases = PhaseSerializer(many=True, read_only=True)

    class Meta:
        model = Tier
        fields = ["index", "name", "state", "phases"]


class RunSummarySerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="name", read_only=True)
    failure_kind = serializers.ChoiceField(
        choices=["", "user", "application"],
        read_only=True,
        help_text="user: the failure code says what to change; application: a bug in "
        "Autopack (please report it)",
    )
    created_by = serializers.SlugRelatedField(
        slug_field="username",
        read_only=True,
        allow_null=True,
        help_text="Who created the run; null for runs created from the command line",
    )

    class Meta:
        model = Run
        fields = [
            "id",
            "run_id",
            "project",
            "goal",
            "state",
            "failure_code",
            "failure_kind",
            "failure_reason",
            "token_cap",
            "tokens_used",
            "cost_cap",
            "cost_usd",
            "health_budget",
            "max_attempts_per_phase",
            "max_duration_seconds",
            "integration_branch",
            "provider",
            "last_savepoint",
            "cancel_requested",
            "sandboxed",
            "created_by",
            "created_at",
            "started_at",
            "active_since",
            "finished_at",
        ]


class TestBaselineSerializer(serializers.ModelSerializer):
    class Meta:
        model = TestBaseline
        fields = [
            "command",
            "commit",
            "environment",
            "ran",
            "passed",
            "failed",
            "skipped",
            "errors",
            "problem",
            "duration",
            "created_at",
        ]


class RunSerializer(RunSummarySerializer):
    tiers = TierSerializer(many=True, read_only=True)
    baselines = serializers.SerializerMethodField()

    class Meta(RunSummarySerializer.Meta):
        fields = RunSummarySerializer.Meta.fields + [
            "setup_command",
            "test_command",
            "dependency_resolution",
            "base_commit",
            "environment",
            "baselines",
            "tiers",
        ]

    def get_baselines(self, run: Run) -> list[dict]:
        """The test results the run's phases were compared with: on the base commit and
        on each savepoint a phase started from."""
        return TestBaselineSerializer(run_baselines(run), many=True).data


class RunEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = RunEvent
        fields = ["id", "created_at", "kind", "payload"]


class ResumeSerializer(serializers.Serializer):
    token_cap = serializers.IntegerField(min_value=1, required=False)
    cost_cap = serializers.DecimalField(
        max_digits=12, decimal_places=4, min_value=0, required=False, help_text="USD"
    )
    max_duration_minutes = serializers.IntegerField(min_value=1, required=False)
    extra_attempts = serializers.IntegerField(
        min_value=1,
        max_value=50,
        required=False,
        help_text="More attempts for a phase that failed (default: the run's attempts per phase)",
    )

    def validate(self, attrs: dict) -> dict:
        unknown = set(self.initial_data) - set(self.fields)
        if unknown:
            raise serializers.ValidationError({name: "unknown field" for name in sorted(unknown)})
        return attrs


class IssueSerializer(serializers.ModelSerializer):
    run_id = serializers.CharField(
        source="run.run_id", default=None, read_only=True, allow_null=True
    )
    phase_id = serializers.CharField(
        source="phase.phase_id", default=None, read_only=True, allow_null=True
    )

    class Meta:
        model = Issue
        fields = [
            "id",
            "scope",
            "run_id",
            "phase_id",
            "severity",
            "title",
            "details",
            "occurrence_count",
            "first_seen",
            "last_seen",
            "status",
        ]


class LlmCallSerializer(serializers.ModelSerializer):
    phase_id = serializers.CharField(
        source="phase.phase_id", default=None, read_only=True, allow_null=True
    )
    attempt = serializers.IntegerField(
        source="attempt.number", default=None, read_only=True, allow_null=True
    )

    class Meta:
        model = LlmCall
        fields = [
            "id",
            "phase_id",
            "attempt",
            "role",
            "provider",
            "model",
            "max_tokens",
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "charged_tokens",
            "cost_usd",
            "stop_reason",
            "duration_ms",
            "error",
            "created_at",
        ]
