from typing import Any


def provider_message(body: Any, fallback: str) -> str:
    """The human message inside a provider's error body ({"error": {"message": ...}})."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return inner["message"]
    return fallback
