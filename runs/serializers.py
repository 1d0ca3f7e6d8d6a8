"""Read-side representations of runs for the REST API."""

from rest_framework import serializers

from runs.models import Attempt, Phase, Project, Run, RunEvent, Tier


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
            "created_at",
        ]


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
            "started_at",
            "finished_at",
        ]


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
            "approval_required",
            "escalation_policy",
            "max_attempts",
            "state",
            "attempt_count",
            "last_failure_reason",
            "attempts",
        ]


class TierSerializer(serializers.ModelSerializer):
    phases = PhaseSerializer(many=True, read_only=True)

    class Meta:
        model = Tier
        fields = ["index", "name", "state", "phases"]


class RunSummarySerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="name", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Run
        fields = [
            "id",
            "run_id",
            "project",
            "goal",
            "state",
            "failure_code",
            "failure_reason",
            "token_cap",
            "tokens_used",
            "max_attempts_per_phase",
            "max_duration_seconds",
            "integration_branch",
            "provider",
            "last_savepoint",
            "cancel_requested",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]


class RunSerializer(RunSummarySerializer):
    tiers = TierSerializer(many=True, read_only=True)

    class Meta(RunSummarySerializer.Meta):
        fields = RunSummarySerializer.Meta.fields + ["tiers"]


class RunEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = RunEvent
        fields = ["id", "created_at", "kind", "payload"]


class ConfigErrorSerializer(serializers.Serializer):
    path = serializers.CharField(
        help_text="JSON path of the bad field, e.g. tiers[0].phases[1].complexity"
    )
    message = serializers.CharField()
