"""REST: the approval queue. Deciding needs governance.approve_governancerequest."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from autopack_site.api import PageNumbers, choice_param, error_response
from governance import services
from governance.models import GovernanceRequest
from runs import access


class GovernanceRequestSerializer(serializers.ModelSerializer):
    run_id = serializers.CharField(source="run.run_id", read_only=True)
    phase_id = serializers.CharField(source="phase.phase_id", read_only=True)
    attempt = serializers.IntegerField(
        source="attempt.number",
        read_only=True,
        allow_null=True,
        help_text="Null for a proposal: the run's whole change, not one attempt's",
    )
    decided_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True, help_text="Null until decided"
    )

    class Meta:
        model = GovernanceRequest
        fields = [
            "id",
            "run_id",
            "phase_id",
            "attempt",
            "kind",
            "risk",
            "risk_reasons",
            "diff",
            "paths",
            "protected_paths",
            "lines_added",
            "lines_removed",
            "reason",
            "base_commit",
            "state",
            "decided_by",
            "decided_at",
            "decision_reason",
            "auto_policy",
            "evidence",
            "created_at",
        ]


class DecisionSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class CanDecide(BasePermission):
    message = "Deciding needs the approval permission and membership of the run's project."

    def has_object_permission(self, request, view, obj: GovernanceRequest) -> bool:
        if view.action in ("approve", "deny"):
            return access.can_decide(request.user, obj.run.project)
        return True


STATES = [state for state, _ in GovernanceRequest.State.choices]
ALREADY_DECIDED = error_response("The request was already decided")


class GovernanceRequestViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    serializer_class = GovernanceRequestSerializer
    # The model, for the schema; get_queryset chooses the requests the user may see.
    queryset = GovernanceRequest.objects.none()
    pagination_class = PageNumbers
    permission_classes = [*viewsets.GenericViewSet.permission_classes, CanDecide]

    def get_queryset(self) -> QuerySet[GovernanceRequest]:
        requests = GovernanceRequest.objects.filter(
            run__project__in=access.projects(self.request.user)
        ).select_related("run", "phase", "attempt", "decided_by")
        if state := choice_param(self.request, "state", STATES):
            requests = requests.filter(state=state)
        if run_id := self.request.query_params.get("run"):
            requests = requests.filter(run__run_id=run_id)
        return requests

    @extend_schema(
        parameters=[
            OpenApiParameter("state", str, enum=STATES),
            OpenApiParameter("run", str, description="Only this run_id"),
        ]
    )
    def list(self, request: Request, *args, **kwargs) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(
        request=DecisionSerializer,
        responses={200: GovernanceRequestSerializer, 409: ALREADY_DECIDED},
    )
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str) -> Response:
        return self._decide(request, "approve")

    @extend_schema(
        request=DecisionSerializer,
        responses={200: GovernanceRequestSerializer, 409: ALREADY_DECIDED},
    )
    @action(detail=True, methods=["post"])
    def deny(self, request: Request, pk: str) -> Response:
        return self._decide(request, "deny")

    def _decide(self, request: Request, decision: str) -> Response:
        obj = self.get_object()
        body = DecisionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            services.decide(obj, request.user, decision, body.validated_data["reason"])
        except services.AlreadyDecided as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        except services.DecisionError as exc:
            raise ValidationError({"reason": str(exc)}) from None
        obj.refresh_from_db()
        return Response(GovernanceRequestSerializer(obj).data)
