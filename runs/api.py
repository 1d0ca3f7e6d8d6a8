"""REST API for runs and projects. Views load, call a service, and return."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from autopack_site.api import (
    BadRequestSerializer,
    PageNumbers,
    choice_param,
    choice_params,
    error_response,
)
from runs import access, markdown_plans, planning, services
from runs.config import ConfigError, RunConfig
from runs.engine.plans import Message, PlanResult
from runs.models import Project, Run
from runs.serializers import (
    IssueSerializer,
    LlmCallSerializer,
    MemberSerializer,
    ProjectSerializer,
    ResumeSerializer,
    RunEventSerializer,
    RunSerializer,
    RunSummarySerializer,
)
from runs.states import IllegalTransition, RunState

EVENTS_PAGE = 500
MANAGERS = "only the run's creator, the project's owners or staff may {verb} it"
RUN_STATES = [state for state, _ in RunState.CHOICES]
ISSUE_STATUSES = ["open", "closed"]
ISSUE_SCOPES = ["phase", "run", "project"]

RunEventPage = inline_serializer(
    "RunEventPage",
    {
        "results": RunEventSerializer(many=True),
        "last_id": serializers.IntegerField(help_text="Pass as ?after= for the next page"),
        "more": serializers.BooleanField(help_text="More events follow last_id"),
    },
)


class RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    lookup_field = "run_id"
    # The model, for the schema; get_queryset chooses the runs the user may see.
    queryset = Run.objects.none()
    pagination_class = PageNumbers
    # A run config is a nested document that a form cannot express.
    parser_classes = [JSONParser]

    def get_queryset(self) -> QuerySet[Run]:
        runs = access.runs(self.request.user).select_related("project", "created_by")
        if self.action == "list":
            if state := choice_param(self.request, "state", RUN_STATES):
                runs = runs.filter(state=state)
            if project := self.request.query_params.get("project"):
                runs = runs.filter(project__name=project)
            return runs
        return runs.prefetch_related("tiers__phases__attempts")

    def get_serializer_class(self):
        return RunSummarySerializer if self.action == "list" else RunSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("state", str, enum=RUN_STATES),
            OpenApiParameter("project", str, description="Project name"),
        ]
    )
    def list(self, request: Request, *args, **kwargs) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(
        request=RunConfig,
        responses={201: RunSerializer, 409: error_response("A run with this run_id exists")},
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
        request=None,
        responses={
            200: RunSummarySerializer,
            202: RunSummarySerializer,
            409: error_response("The run is already finished"),
        },
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, run_id: str) -> Response:
        run = self.get_object()
        if not run.is_final and not access.may_manage(request.user, run):
            raise PermissionDenied(
                "only the run's creator, the project's owners or staff may cancel it"
            )
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
        request=ResumeSerializer,
        responses={
            200: RunSummarySerializer,
            409: error_response("Only failed or cancelled runs can be resumed"),
        },
    )
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, run_id: str) -> Response:
        run = self.get_object()
        if not access.may_manage(request.user, run):
            raise PermissionDenied(
                "only the run's creator, the project's owners or staff may resume it"
            )
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
            raise ValidationError({exc.field: exc.message}) from None
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
        responses=RunEventPage,
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def events(self, request: Request, run_id: str) -> Response:
        run = self.get_object()
        try:
            after = int(request.query_params.get("after", 0))
        except ValueError:
            raise ValidationError({"after": "must be an integer event id"}) from None
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
    """The projects you are a member of; owners change their settings (PATCH) and
    members."""

    serializer_class = ProjectSerializer
    # The model, for the schema; get_queryset chooses the projects the user may see.
    queryset = Project.objects.none()
    pagination_class = PageNumbers
    # Settings hold lists; and DRF reads an empty form field as "not given".
    parser_classes = [JSONParser]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[Project]:
        return access.projects(self.request.user)

    def perform_update(self, serializer: ProjectSerializer) -> None:
        if not access.can_own(self.request.user, serializer.instance):
            raise PermissionDenied("only the project's owners and staff may change it")
        serializer.save()

    @extend_schema(request=MemberSerializer, responses={200: MemberSerializer(many=True)})
    @action(detail=True, methods=["get", "post"], pagination_class=None)
    def members(self, request: Request, pk: str) -> Response:
        """The project's members; owners add one, or change a role, with POST."""
        project = self.get_object()
        if request.method == "POST":
            if not access.can_own(request.user, project):
                raise PermissionDenied("only the project's owners and staff may add members")
            body = MemberSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            services.set_member(
                project, body.validated_data["username"], body.validated_data["role"]
            )
        members = project.members.select_related("user")
        return Response(MemberSerializer(members, many=True).data)

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["delete"], url_path=r"members/(?P<username>[^/]+)")
    def remove_member(self, request: Request, pk: str, username: str) -> Response:
        """Remove a member from the project; owners and staff only."""
        project = self.get_object()
        if not access.can_own(request.user, project):
            raise PermissionDenied("only the project's owners and staff may remove members")
        if not project.members.filter(user__username=username).delete()[0]:
            raise NotFound(f"{username} is not a member of {project.name}")
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=ISSUE_STATUSES),
            OpenApiParameter("scope", str, enum=ISSUE_SCOPES),
        ],
        responses=IssueSerializer(many=True),
    )
    @action(detail=True, methods=["get"])
    def issues(self, request: Request, pk: str) -> Response:
        """The project's issue backlog, most recently seen first."""
        issues = self.get_object().issues.select_related("run", "phase")
        status_, scope = choice_params(
            request, {"status": (ISSUE_STATUSES, ""), "scope": (ISSUE_SCOPES, "")}
        )
        if status_:
            issues = issues.filter(status=status_)
        if scope:
            issues = issues.filter(scope=scope)
        page = self.paginate_queryset(issues)
        return self.get_paginated_response(IssueSerializer(page, many=True).data)


class PlanRequestSerializer(serializers.Serializer):
    markdown = serializers.CharField(
        trim_whitespace=False, help_text="The markdown plan; with from_notes, the notes"
    )
    from_notes = serializers.BooleanField(
        required=False,
        default=False,
        help_text="The Planner model writes the plan from the notes in `markdown` (README, "
        '"Plans from notes"); its calls are recorded and spent against the project',
    )
    repo = serializers.CharField(
        required=False,
        help_text="The repository to check paths against and build: a directory on the server "
        "(relative to its working directory) or a git URL; or give `project`",
    )
    project = serializers.CharField(required=False, help_text="A project you may run builds in")
    run_id = serializers.CharField(required=False, help_text="Instead of the plan's run_id")
    goal = serializers.CharField(required=False, help_text="Instead of the plan's goal")


class PlanMessageSerializer(serializers.Serializer):
    line = serializers.IntegerField(help_text="The plan's line; 0 for the plan as a whole")
    level = serializers.ChoiceField(choices=["warning", "error"])
    message = serializers.CharField()


class InferredScopeSerializer(serializers.Serializer):
    phase_id = serializers.CharField()
    paths = serializers.ListField(child=serializers.CharField())


class PlannerSpendSerializer(serializers.Serializer):
    model = serializers.CharField(help_text="provider/model of the Planner")
    calls = serializers.IntegerField(help_text="1, or 2 when the plan was sent back once")
    tokens = serializers.IntegerField(help_text="Counted against planning.token_cap")
    cost_usd = serializers.DecimalField(
        max_digits=20, decimal_places=6, allow_null=True, help_text="Null when unknown"
    )


class PlanSerializer(serializers.Serializer):
    config = serializers.JSONField(help_text="The run config, as POST /api/runs/ takes it")
    messages = PlanMessageSerializer(many=True, help_text="Warnings, by line")
    inferred = InferredScopeSerializer(
        many=True, help_text="Phases without [paths:...] and the scope inferred for them"
    )
    markdown = serializers.CharField(
        required=False,
        help_text="from_notes: the Planner's plan, for a person to review (and edit) before "
        "a run is created from it",
    )
    planner = PlannerSpendSerializer(required=False, help_text="from_notes: the Planner's calls")


class PlanRefusedSerializer(BadRequestSerializer):
    markdown = serializers.CharField(
        required=False, help_text="from_notes: the Planner's refused plan, which the lines name"
    )
    planner = PlannerSpendSerializer(required=False, help_text="from_notes: the Planner's calls")


class PlanNormalizeView(APIView):
    """A markdown plan read into a run config (see README, "Markdown plans"). Errors in the
    plan are a 400, one entry per problem with its line; nothing is created. With
    `from_notes`, the Planner model writes the plan from notes first ("Plans from notes"):
    a plan still wrong after one correction is a 400 with its problems and the plan; a
    failing provider a 502. Only the Planner's calls are recorded (and the repository's
    project made, as a run would make it, if it has none)."""

    parser_classes = [JSONParser]

    @extend_schema(
        request=PlanRequestSerializer,
        responses={
            200: PlanSerializer,
            400: OpenApiResponse(
                PlanRefusedSerializer,
                "Bad input, a plan with errors, or (from_notes) a Planner's plan refused "
                "after one correction, or no provider configured for the Planner's model",
            ),
            502: error_response("from_notes: the Planner's model provider failed"),
        },
    )
    def post(self, request: Request) -> Response:
        body = PlanRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        fields = dict(body.validated_data)
        from_notes = fields.pop("from_notes")
        try:
            if from_notes:
                notes = fields.pop("markdown")
                return _drafted(planning.draft_for_user(request.user, notes, **fields))
            result = markdown_plans.read_for_user(request.user, **fields)
        except markdown_plans.PlanRefused as exc:
            raise PermissionDenied(str(exc)) from None
        except markdown_plans.PlanInputError as exc:
            raise ValidationError({exc.field: exc.message}) from None
        except planning.PlanningFailed as exc:
            if exc.kind == "provider":
                return Response({"detail": str(exc)}, status=status.HTTP_502_BAD_GATEWAY)
            raise ValidationError({"from_notes": str(exc)}) from None
        if result.errors:
            return _plan_errors(result.errors)
        return Response(_plan(result))


def _plan(result: PlanResult) -> dict:
    return {
        "config": result.config,
        "messages": [m.as_dict() for m in result.messages],
        "inferred": [
            {"phase_id": phase_id, "paths": paths} for phase_id, paths in result.inferred.items()
        ],
    }


def _plan_errors(problems: list[Message], **more: object) -> Response:
    errors = [
        {"path": "markdown", "message": f"line {m.line}: {m.message}" if m.line else m.message}
        for m in problems
    ]
    return Response({"errors": errors, **more}, status=status.HTTP_400_BAD_REQUEST)


def _drafted(drafted: planning.Draft) -> Response:
    plan = drafted.plan
    if not plan.accepted:
        return _plan_errors(plan.problems, markdown=plan.markdown, planner=drafted.spend())
    return Response({**_plan(plan.result), "markdown": plan.markdown, "planner": drafted.spend()})
