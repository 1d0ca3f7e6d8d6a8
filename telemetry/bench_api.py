"""GET /api/bench/...: stored benchmarks, one with its tasks (JSON or CSV), two side by
side. Who sees which is telemetry.bench_dashboard's to say."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import generics, serializers
from rest_framework.exceptions import ValidationError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from autopack_site.api import PageNumbers, error_response
from telemetry import bench_dashboard, bench_report
from telemetry.bench_dashboard import COMPARED
from telemetry.models import BenchRun, BenchTask

BENCH_ID = OpenApiParameter("bench_id", str, OpenApiParameter.PATH, description="The benchmark")


class BenchSummarySerializer(serializers.Serializer):
    """aider's columns; also pass_rate_N (percent of the tasks tried) and pass_num_N
    (tasks passed) after each try N from 1 to the benchmark's tries."""

    tasks = serializers.IntegerField()
    errors = serializers.IntegerField(help_text="Tasks that could not be tried")
    percent_cases_well_formed = serializers.FloatField()
    num_malformed_responses = serializers.IntegerField()
    num_with_malformed_responses = serializers.IntegerField()
    syntax_errors = serializers.IntegerField()
    test_timeouts = serializers.IntegerField()
    exhausted_context_windows = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_cost = serializers.CharField(help_text="USD, a decimal number")
    seconds_per_case = serializers.FloatField(allow_null=True)
    model = serializers.CharField()
    edit_format = serializers.CharField()
    autopack_version = serializers.CharField()
    date = serializers.DateField()


class BenchSerializer(serializers.ModelSerializer):
    replay_of = serializers.SlugRelatedField(slug_field="bench_id", read_only=True, allow_null=True)
    created_by = serializers.SlugRelatedField(
        slug_field="username",
        read_only=True,
        allow_null=True,
        help_text="Who started it; null when started from the command line",
    )
    languages = serializers.ListField(child=serializers.CharField())
    summary = serializers.SerializerMethodField()

    class Meta:
        model = BenchRun
        fields = [
            "bench_id",
            "suite",
            "suite_kind",
            "model",
            "edit_format",
            "tries",
            "workers",
            "languages",
            "limit",
            "autopack_version",
            "replay_of",
            "state",
            "wall_seconds",
            "created_by",
            "created_at",
            "finished_at",
            "summary",
        ]
        read_only_fields = fields

    @extend_schema_field(BenchSummarySerializer)
    def get_summary(self, bench: BenchRun) -> dict:
        return bench_report.summarise(bench)


class BenchTaskSerializer(serializers.Serializer):
    task_id = serializers.CharField()
    language = serializers.CharField()
    status = serializers.ChoiceField(choices=BenchTask.Status.choices)
    passed_try = serializers.IntegerField(allow_null=True)
    tries_used = serializers.IntegerField()
    well_formed = serializers.BooleanField()
    malformed = serializers.IntegerField()
    syntax_errors = serializers.IntegerField()
    test_timeouts = serializers.IntegerField()
    context_exhausted = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    cost_usd = serializers.CharField(help_text="USD, a decimal number")
    seconds = serializers.FloatField(allow_null=True)
    run_id = serializers.CharField(allow_null=True, help_text="The task's run")
    error = serializers.CharField(help_text="Why the task could not be tried")
    tests = serializers.JSONField(help_text="SWE-bench: FAIL_TO_PASS and PASS_TO_PASS results")


class BenchDetailSerializer(serializers.Serializer):
    bench_id = serializers.CharField()
    suite = serializers.CharField()
    suite_kind = serializers.CharField()
    # Text, not a second copy of the list's enum: the schema names a choice set once.
    state = serializers.CharField(help_text="running, done or stopped")
    tries = serializers.IntegerField()
    workers = serializers.IntegerField()
    wall_seconds = serializers.FloatField(allow_null=True)
    replay_of = serializers.CharField(allow_null=True)
    summary = BenchSummarySerializer()
    languages = serializers.DictField(child=BenchSummarySerializer())
    tasks = BenchTaskSerializer(many=True)


class ComparedColumnSerializer(serializers.Serializer):
    heading = serializers.CharField()
    a = serializers.JSONField()
    b = serializers.JSONField()


class ComparedLanguageSerializer(serializers.Serializer):
    language = serializers.CharField()
    a = serializers.ListField(
        child=serializers.FloatField(),
        allow_null=True,
        help_text="Pass rate (%) after each try; null without tasks in this language",
    )
    b = serializers.ListField(child=serializers.FloatField(), allow_null=True)


class ComparisonSerializer(serializers.Serializer):
    a = serializers.CharField()
    b = serializers.CharField()
    columns = ComparedColumnSerializer(many=True)
    languages = ComparedLanguageSerializer(many=True)


class BenchList(generics.ListAPIView):
    serializer_class = BenchSerializer
    pagination_class = PageNumbers

    def get_queryset(self) -> QuerySet[BenchRun]:
        return (
            bench_dashboard.benchmarks(self.request.user)
            .select_related("replay_of", "created_by")
            .prefetch_related("tasks")
        )

    @extend_schema(operation_id="bench_list", summary="Benchmarks, newest first")
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)


class BenchDetail(APIView):
    @extend_schema(
        operation_id="bench_retrieve",
        parameters=[BENCH_ID],
        responses=BenchDetailSerializer,
        summary="A benchmark: its summary, per language, and its tasks",
    )
    def get(self, request: Request, bench_id: str) -> Response:
        return Response(bench_report.as_json(bench_dashboard.find(request.user, bench_id)))


class ErrorsAsJson(BaseContentNegotiation):
    """The view writes its CSV itself; whatever the client accepts, errors are JSON."""

    def select_parser(self, request: Request, parsers):
        return parsers[0]

    def select_renderer(self, request: Request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class BenchTasksCsv(APIView):
    renderer_classes = [JSONRenderer]
    content_negotiation_class = ErrorsAsJson

    @extend_schema(
        operation_id="bench_tasks_csv",
        parameters=[BENCH_ID],
        responses={(200, "text/csv"): OpenApiTypes.STR},
        summary="A benchmark's tasks, one CSV row each",
    )
    def get(self, request: Request, bench_id: str) -> HttpResponse:
        bench = bench_dashboard.find(request.user, bench_id)
        response = HttpResponse(bench_report.as_csv(bench), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{bench.bench_id}-tasks.csv"'
        return response


class BenchCompare(APIView):
    @extend_schema(
        operation_id="bench_compare",
        parameters=[
            OpenApiParameter(name, str, required=True, description=f"{label} benchmark's id")
            for name, label in zip(COMPARED, ("The first", "The second"), strict=True)
        ],
        responses={
            200: ComparisonSerializer,
            404: error_response("No such benchmark among the user's"),
        },
        summary="Two benchmarks side by side, and their pass rates per language",
    )
    def get(self, request: Request) -> Response:
        if problems := bench_dashboard.missing_compared(request.query_params):
            raise ValidationError(problems)
        first, second = (
            bench_dashboard.find(request.user, request.query_params[name]) for name in COMPARED
        )
        columns = [
            {"heading": heading, "a": a, "b": b}
            for heading, a, b in bench_report.compare(first, second)
        ]
        return Response(
            {
                "a": first.bench_id,
                "b": second.bench_id,
                "columns": columns,
                "languages": bench_report.languages_compared(first, second),
            }
        )
