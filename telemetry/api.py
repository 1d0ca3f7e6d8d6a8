"""GET /api/usage/: tokens and cost over time, grouped; JSON, or CSV with ?format=csv."""

from __future__ import annotations

import csv
import io

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from autopack_site.api import FormatChoice, choice_params
from runs import access
from telemetry.models import LlmCall
from telemetry.usage import GROUPS, PERIODS, usage

COLUMNS = [
    "period_start",
    "group",
    "calls",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost_usd",
    "charged_cost_usd",
    "unpriced_calls",
]


class UsageCSVRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        buffer = io.StringIO()
        if isinstance(data, dict) and "results" in data:
            writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(data["results"])
        elif isinstance(data, dict) and "errors" in data:  # a 400: one line per problem
            writer = csv.DictWriter(buffer, fieldnames=["path", "message"])
            writer.writeheader()
            writer.writerows(data["errors"])
        else:  # another error: {"detail": ...}
            csv.writer(buffer).writerows((data or {}).items())
        return buffer.getvalue().encode()


class UsageRowSerializer(serializers.Serializer):
    period_start = serializers.DateField()
    group = serializers.CharField(
        help_text="provider/model, role, project name or run_id (`-` for calls made "
        "without a run: plans drafted from notes)"
    )
    calls = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField(allow_null=True)
    completion_tokens = serializers.IntegerField(allow_null=True)
    total_tokens = serializers.IntegerField(allow_null=True)
    cost_usd = serializers.DecimalField(
        max_digits=20, decimal_places=6, allow_null=True, help_text="Known cost of priced calls"
    )
    charged_cost_usd = serializers.DecimalField(
        max_digits=20, decimal_places=6, allow_null=True, help_text="Counted against cost caps"
    )
    unpriced_calls = serializers.IntegerField()


class UsageSerializer(serializers.Serializer):
    period = serializers.ChoiceField(choices=list(PERIODS))
    group_by = serializers.ChoiceField(choices=list(GROUPS))
    results = UsageRowSerializer(many=True)


class UsageView(APIView):
    renderer_classes = [JSONRenderer, UsageCSVRenderer]
    content_negotiation_class = FormatChoice

    @extend_schema(
        parameters=[
            OpenApiParameter("period", str, enum=list(PERIODS), default="day"),
            OpenApiParameter("group_by", str, enum=list(GROUPS), default="model"),
            OpenApiParameter("run", str, description="Only this run_id"),
            OpenApiParameter("project", str, description="Only this project name"),
            OpenApiParameter("format", str, enum=["json", "csv"], default="json"),
        ],
        responses={(200, "application/json"): UsageSerializer, (200, "text/csv"): str},
    )
    def get(self, request: Request) -> Response:
        period, group_by = choice_params(
            request, {"period": (list(PERIODS), "day"), "group_by": (list(GROUPS), "model")}
        )
        calls = LlmCall.objects.filter(project__in=access.projects(request.user))
        if run_id := request.query_params.get("run"):
            calls = calls.filter(run__run_id=run_id)
        if project := request.query_params.get("project"):
            calls = calls.filter(project__name=project)
        response = Response(
            {"period": period, "group_by": group_by, "results": usage(calls, period, group_by)}
        )
        if request.accepted_renderer.format == "csv":
            response["Content-Disposition"] = (
                f'attachment; filename="autopack-usage-{period}-{group_by}.csv"'
            )
        return response
