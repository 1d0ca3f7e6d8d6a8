"""What every API view shares: query parameters checked against their allowed values, the
one shape of error bodies, and a schema that documents the errors every operation can
answer."""

from __future__ import annotations

from drf_spectacular import openapi
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request

from autopack_site.text import join_path


def choice_param(request: Request, name: str, choices: list[str]) -> str | None:
    """The query parameter `name`, which must be one of `choices` (case-insensitive for
    upper-case choices); None when it is absent. An empty value is refused like any
    other: the schema's enum does not hold it."""
    value = request.query_params.get(name)
    if value is None:
        return None
    for choice in choices:
        if value == choice or (choice.isupper() and value.upper() == choice):
            return choice
    raise ValidationError({name: unknown_choice(value, choices)})


def unknown_choice(value: str, choices: list[str]) -> str:
    return f"unknown value {value!r}; use one of {', '.join(choices)}, or leave it out"


def choice_params(request: Request, params: dict[str, tuple[list[str], str]]) -> list[str]:
    """Several choice parameters with their defaults, every bad one reported at once."""
    values, problems = [], {}
    for name, (choices, default) in params.items():
        try:
            values.append(choice_param(request, name, choices) or default)
        except ValidationError as exc:
            problems.update(exc.detail)
    if problems:
        raise ValidationError(problems)
    return values


class PageNumbers(PageNumberPagination):
    """DRF's page numbers, with a page that is not a number from 1 refused with a 400
    naming `page`; a page past the last is still a 404.

    Views name it as their pagination_class: REST_FRAMEWORK's DEFAULT_PAGINATION_CLASS is
    imported while DRF itself is loading, before this module's drf-spectacular import
    can be."""

    def get_page_number(self, request: Request, paginator) -> int | str:
        value = request.query_params.get(self.page_query_param)
        if value is None:
            return 1
        if value in self.last_page_strings:
            return paginator.num_pages
        if not (value.isascii() and value.isdigit() and int(value) >= 1):
            raise ValidationError(
                {self.page_query_param: f"{value!r} is not a page number; use 1, 2, … or last"}
            )
        return int(value)

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_query_param:
                parameter["schema"]["minimum"] = 1
        return parameters


class FormatChoice(DefaultContentNegotiation):
    """An unknown ?format= is a 400 naming the parameter, like any other bad choice,
    rather than DRF's 404. (A view's content_negotiation_class, as for PageNumbers.)"""

    def select_renderer(self, request: Request, renderers, format_suffix=None):
        # DRF takes an empty ?format= for none.
        if request.query_params.get(self.settings.URL_FORMAT_OVERRIDE) == "":
            self.filter_renderers(renderers, "")
        return super().select_renderer(request, renderers, format_suffix)

    def filter_renderers(self, renderers, format: str):
        matching = [renderer for renderer in renderers if renderer.format == format]
        if not matching:
            choices = [renderer.format for renderer in renderers]
            name = self.settings.URL_FORMAT_OVERRIDE
            raise ValidationError({name: unknown_choice(format, choices)})
        return matching


def errors(detail: object, path: str = "") -> list[dict[str, str]]:
    """DRF's nested error details as `[{"path": ..., "message": ...}]`, the one shape of
    every 400 the API answers (the run config's errors have it too)."""
    if isinstance(detail, dict):
        return [
            error
            for key, value in detail.items()
            for error in errors(
                value, key if key == "non_field_errors" and not path else join_path(path, key)
            )
        ]
    if isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            return [{"path": path or "(body)", "message": str(item)} for item in detail]
        return [error for i, item in enumerate(detail) for error in errors(item, f"{path}[{i}]")]
    return [{"path": path or "(body)", "message": str(detail)}]


def exception_handler(exc: Exception, context: dict):
    """DRF's handler, with every 400 body as {"errors": [...]}: invalid fields and
    parameters, and bodies that do not parse."""
    from rest_framework.views import exception_handler as default

    response = default(exc, context)
    if response is not None and response.status_code == status.HTTP_400_BAD_REQUEST:
        response.data = {"errors": errors(exc.detail)}
    return response


class FieldErrorSerializer(serializers.Serializer):
    path = serializers.CharField(
        help_text="The bad parameter, header or JSON path, e.g. state or "
        "tiers[0].phases[1].complexity; (body) for the body as a whole"
    )
    message = serializers.CharField(help_text="What is wrong, and what to send instead")


class BadRequestSerializer(serializers.Serializer):
    errors = FieldErrorSerializer(many=True)


class ErrorDetailSerializer(serializers.Serializer):
    detail = serializers.CharField()


def error_response(description: str) -> OpenApiResponse:
    """A {"detail": ...} response, for the codes an operation declares itself (409)."""
    return OpenApiResponse(ErrorDetailSerializer, description)


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's, with the error responses of every operation that can answer
    them: 400 anywhere (a NUL byte is refused in any input, see autopack_site.middleware),
    401 without credentials, 403 on changes the user may not make (or a session without
    its CSRF token), 404 where the path names an object or a page is asked for. Codes an
    operation declares itself are kept."""

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses = operation["responses"]
        for code, response in self._error_responses(operation).items():
            if code not in responses:
                responses[code] = self._get_response_for_code(response, code)
                # Renderers other than JSON (CSV) write the same fields as text.
                for media_type, content in responses[code].get("content", {}).items():
                    if not media_type.endswith("json"):
                        content["schema"] = {"type": "string"}
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def _error_responses(self, operation: dict) -> dict[str, OpenApiResponse]:
        responses = {
            "400": OpenApiResponse(
                BadRequestSerializer, "Bad input: each problem with its parameter or JSON path"
            )
        }
        if {} not in operation.get("security", [{}]):
            responses["401"] = error_response("No credentials, or invalid ones")
        if self.method not in ("GET", "HEAD", "OPTIONS"):
            responses["403"] = error_response("Not allowed for this user")
        # A page past the last is a 404 too.
        queries = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        if "{" in self.path or "page" in queries:
            responses["404"] = error_response(
                "Not found: no such object among the user's projects, or a page past the last"
            )
        return responses


def nulls_as_in_openapi_3_1(result: dict, generator, request, public) -> dict:
    """Null allowed the way OpenAPI 3.1 (JSON Schema) says it, where drf-spectacular does
    not: DRF's page links come as `nullable: true`, a 3.0 keyword that 3.1 ignores; and a
    nullable field of any type (a JSONField) as oneOf [{}, {"type": "null"}], which null
    matches twice and so fails (tfranzel/drf-spectacular#1534), where any value already
    includes null."""

    def fix(node: object) -> None:
        if isinstance(node, dict):
            # A bool: a schema's keyword, not a field of that name among properties.
            nullable = isinstance(node.get("nullable"), bool) and node.pop("nullable")
            if nullable and isinstance(node.get("type"), str):
                node["type"] = [node["type"], "null"]
            if node.get("oneOf") == [{}, {"type": "null"}]:
                del node["oneOf"]
            for value in node.values():
                fix(value)
        elif isinstance(node, list):
            for value in node:
                fix(value)

    fix(result)
    return result
