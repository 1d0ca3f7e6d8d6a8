"""What every API view shares: query parameters checked against their allowed values."""

from __future__ import annotations

from rest_framework.exceptions import ValidationError
from rest_framework.request import Request


def choice_param(request: Request, name: str, choices: list[str]) -> str | None:
    """The query parameter `name`, which must be one of `choices` (case-insensitive for
    upper-case choices); None when it is absent or empty."""
    value = request.query_params.get(name)
    if not value:
        return None
    for choice in choices:
        if value == choice or (choice.isupper() and value.upper() == choice):
            return choice
    raise ValidationError({name: f"unknown value {value!r}; use one of {', '.join(choices)}"})


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


def errors(detail: object, path: str = "") -> list[dict[str, str]]:
    """DRF's nested error details as `[{"path": ..., "message": ...}]`, the one shape of
    every 400 the API answers (the run config's errors have it too)."""
    if isinstance(detail, dict):
        return [
            error
            for key, value in detail.items()
            for error in errors(
                value, key if key == "non_field_errors" and not path else _join(path, key)
            )
        ]
    if isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            return [{"path": path or "(body)", "message": str(item)} for item in detail]
        return [error for i, item in enumerate(detail) for error in errors(item, f"{path}[{i}]")]
    return [{"path": path or "(body)", "message": str(detail)}]


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def exception_handler(exc: Exception, context: dict):
    """DRF's handler, with 400 bodies as {"errors": [...]}."""
    from rest_framework.views import exception_handler as default

    response = default(exc, context)
    if response is not None and isinstance(exc, ValidationError):
        response.data = {"errors": errors(exc.detail)}
    return response
