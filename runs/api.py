"""REST API for runs and projects. Views load, call a service, and return."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from runs import permissions, services
from runs.config import ConfigError, RunConfig
from runs.models import Project, Run
from runs.serializers import (
    ConfigErrorSerializer,
    IssueSerializer,
    LlmCallSerializer,
    ProjectSerializer,
    ResumeSerializer,
    RunEventSerializer,
    RunSerializer,
    RunSummarySerializer,
)
from runs.states import IllegalTransition, RunState

EVENTS_PAGE = 500


class RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    lookup_field = "run_id"

    def get_queryset(self) -> QuerySet[Run]:
        runs = Run.objects.select_related("project", "created_by")
        if self.action == "list":
            state = self.request.query_params.get("state")
            project = self.request.query_params.get("project")
            if state:
                if state.upper() not in RunState.TRANSITIONS:
                    raise ValidationError(
                        {
                            "detail": f"unknown state {state!r}; use one of "
                            + ", ".join(RunState.TRANSITIONS)
                        }
                    )
                runs = runs.filter(state=state.upper())
            if project:
                runs = runs.filter(project__name=project)
            return runs
        return runs.prefetch_related("tiers__phases__attempts")

    def get_serializer_class(self):
        return RunSummarySerializer if self.action == "list" else RunSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("state", str, enum=[s for s, _ in RunState.CHOICES]),
            OpenApiParameter("project", str, description="Project name"),
        ]
    )
    def list(self, request: Request, *args, **kwargs) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(
        request=RunConfig,
        responses={
            201: RunSerializer,
            400: OpenApiResponse(ConfigErrorSerializer(many=True), "Invalid run config"),
            409: OpenApiResponse(description="A run with this run_id exists"),
        },
    )
    def create(self, request: Request) -> Response:
        try:
            run = services.create_run(request.data, created_by=request.user)
        except ConfigError as exc:
            return Response({"errors": exc.errors}, status=status.HTTP_400_BAD_REQUEST)
        except services.DuplicateRun as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        run = self.get_queryset().get(pk=run.pk)
        return Response(RunSerializer(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=None, responses={200: RunSummarySerializer, 202: RunSummarySerializer, 409: None}
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, run_id: str) -> Response:
        run = self.get_object()
        if not run.is_final and not permissions.may_manage(request.user, run):
            raise PermissionDenied("only the run's creator or staff may cancel it")
        try:
            done = services.cancel_run(run, by=request.user.get_username())
        except IllegalTransition:
            return Response(
                {"detail": f"run {run.run_id} is already {run.state} and cannot be cancelled"},
                status=status.HTTP_409_CONFLICT,
            )
        # A running run stops at its next step, at its last savepoint: 202 until then.
        return Response(
            RunSummarySerializer(run).data,
            status=status.HTTP_200_OK if done else status.HTTP_202_ACCEPTED,
        )

    @extend_schema(
        request=ResumeSerializer, responses={200: RunSummarySerializer, 400: None, 409: None}
    )
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, run_id: str) -> Response:
        run = self.get_object()
        if not permissions.may_manage(request.user, run):
            raise PermissionDenied("only the run's creator or staff may resume it")
        options = ResumeSerializer(data=request.data)
        options.is_valid(raise_exception=True)
        try:
            services.resume_run(run, by=request.user.get_username(), **options.validated_data)
        except IllegalTransition:
            return Response(
                {
                    "detail": f"run {run.run_id} is {run.state}; only failed or "
                    "cancelled runs can be resumed"
                },
                status=status.HTTP_409_CONFLICT,
            )
        except services.ResumeError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        run.refresh_from_db()
        return Response(RunSummarySerializer(run).data)

    @extend_schema(responses=LlmCallSerializer(many=True))
    @action(detail=True, methods=["get"], url_path="llm-calls")
    def llm_calls(self, request: Request, run_id: str) -> Response:
        """The run's model calls with their usage and cost (prompts stay in admin)."""
        calls = self.get_object().llm_calls.select_related("phase", "attempt")
        page = self.paginate_queryset(calls)
        return self.get_paginated_response(LlmCallSerializer(page, many=True).data)

    @extend_schema(
        parameters=[OpenApiParameter("after", int, description="Return events after this id")],
        responses=RunEventSerializer(many=True),
    )
    @action(detail=True, methods=["get"])
    def events(self, request: Request, run_id: str) -> Response:
        run = self.get_object()
        try:
            after = int(request.query_params.get("after", 0))
        except ValueError:
            return Response({"detail": "after must be an integer event id"}, status=400)
        events = list(run.events.filter(id__gt=after).order_by("id")[: EVENTS_PAGE + 1])
        more = len(events) > EVENTS_PAGE
        events = events[:EVENTS_PAGE]
        return Response(
            {
                "results": RunEventSerializer(events, many=True).data,
                "last_id": events[-1].id if events else after,
                "more": more,
            }
        )


class ProjectViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Projects; staff change a project's commands and settings with PATCH."""

    queryset = Project.objects.all()
    serializer_class = ProjectSerializer
    http_method_names = ["get", "patch", "head", "options"]

    def perform_update(self, serializer: ProjectSerializer) -> None:
        if not self.request.user.is_staff:
            raise PermissionDenied("only staff may change a project's settings")
        serializer.save()

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=["open", "closed"]),
            OpenApiParameter("scope", str, enum=["phase", "run", "project"]),
        ],
        responses=IssueSerializer(many=True),
    )
    @action(detail=True, methods=["get"])
    def issues(self, request: Request, pk: str) -> Response:
        """The project's issue backlog, most recently seen first."""
        issues = self.get_object().issues.select_related("run", "phase")
        for field in ("status", "scope"):
            if value := request.query_params.get(field):
                issues = issues.filter(**{field: value})
        page = self.paginate_queryset(issues)
        return self.get_paginated_response(IssueSerializer(page, many=True).data)
