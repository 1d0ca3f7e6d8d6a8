"""Answers given before or instead of a view.

Text the database cannot store is refused at the door, with a 400 that names where it
was, instead of a 500 from deep in a query.

PostgreSQL text cannot hold a NUL character, and psycopg cannot encode a lone surrogate
(JSON allows "\\ud800"). Django decodes query strings and forms leniently, replacing
invalid UTF-8, so such input would otherwise reach views changed without a word. Every
request is checked: headers (the token and session cookie are looked up in the
database), URL path values, query parameters, form fields and JSON bodies. API routes
answer in the API's error shape, pages with plain text.

A URL under /api/ that names no route is a 404 in the API's shape too, not the HTML page
meant for browsers.
"""

from __future__ import annotations

import json
from urllib.parse import unquote_to_bytes

from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.urls import Resolver404, resolve
from django.utils.deprecation import MiddlewareMixin

from autopack_site.text import Problem, data_problems, shown, text_issue

API_PREFIX = "/api/"


class RejectUnstorableText(MiddlewareMixin):
    def process_request(self, request: HttpRequest) -> HttpResponse | None:
        problems = input_problems(request)
        if not problems:
            return None
        if request.path_info.startswith(API_PREFIX):
            return JsonResponse(
                {"errors": [{"path": path, "message": message} for path, message in problems]},
                status=400,
            )
        return HttpResponseBadRequest(
            "".join(f"{path}: {message}\n" for path, message in problems),
            content_type="text/plain; charset=utf-8",
        )


class ApiNotFoundAsJson(MiddlewareMixin):
    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        # No resolver match: the URL named no route, so no API view could answer.
        if (
            response.status_code == 404
            and request.path_info.startswith(API_PREFIX)
            and getattr(request, "resolver_match", None) is None
        ):
            return JsonResponse({"detail": "Not found."}, status=404)
        return response


def input_problems(request: HttpRequest) -> list[Problem]:
    problems = [
        (key.removeprefix("HTTP_").replace("_", "-").title(), issue)
        for key, value in request.META.items()
        if key.startswith("HTTP_") and isinstance(value, str) and (issue := text_issue(value))
    ]
    problems += path_problems(request)
    problems += urlencoded_problems(request.META.get("QUERY_STRING", "").encode())
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        try:
            problems += body_problems(request)
        except (MultiPartParserError, SuspiciousOperation) as exc:
            problems.append(("(body)", f"cannot be read: {exc}"))
    return problems


def body_problems(request: HttpRequest) -> list[Problem]:
    content_type = request.content_type or ""
    if content_type == "application/x-www-form-urlencoded":
        return urlencoded_problems(request.body)
    if content_type == "multipart/form-data":
        return [
            (shown(name), issue)
            for name, values in request.POST.lists()
            for value in values
            if (issue := text_issue(name) or text_issue(value))
        ]
    if content_type == "application/json" or content_type.endswith("+json"):
        return json_problems(request.body)
    return []


def path_problems(request: HttpRequest) -> list[Problem]:
    """Values taken from the URL path, named as the URL pattern names them. A path that
    matches no pattern is a 404 that reaches no view."""
    if text_issue(request.path_info) is None:
        return []
    try:
        match = resolve(request.path_info, getattr(request, "urlconf", None))
    except Resolver404:
        return []
    return [
        (name, issue)
        for name, value in match.kwargs.items()
        if isinstance(value, str) and (issue := text_issue(value))
    ]


def urlencoded_problems(data: bytes) -> list[Problem]:
    """Each `name=value` pair of a query string or form body, decoded strictly."""
    problems = []
    for field in data.split(b"&"):
        raw_name, _, raw_value = field.partition(b"=")
        name = unquote_to_bytes(raw_name.replace(b"+", b" "))
        value = unquote_to_bytes(raw_value.replace(b"+", b" "))
        issue = None
        for part in (name, value):
            try:
                issue = issue or text_issue(part.decode())
            except UnicodeDecodeError:
                issue = issue or "is not valid UTF-8; percent-encode text as UTF-8"
        if issue:
            problems.append((shown(name.decode(errors="replace")), issue))
    return problems


def json_problems(body: bytes) -> list[Problem]:
    """Every string and key of a JSON body. A body that does not parse is left to the
    view's parser to report."""
    try:
        return data_problems(json.loads(body))
    except ValueError:
        return []
    except RecursionError:
        return [("(body)", "is nested too deeply; send flatter JSON")]
