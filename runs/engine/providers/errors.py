from typing import Any

from runs.engine.outcomes import ProviderError

# What reading a reply of the wrong shape raises inside the SDKs and our own parsing:
# invalid UTF-8 or JSON (ValueError), missing or mistyped fields.
UNREADABLE = (ValueError, TypeError, AttributeError, KeyError, IndexError)


def unreadable(provider: str, exc: Exception) -> ProviderError:
    """A provider error for a reply Autopack cannot read; retried like any other."""
    return ProviderError(f"{provider} API returned a reply Autopack cannot read: {exc}")


def provider_message(body: Any, fallback: str) -> str:
    """The human message inside a provider's error body ({"error": {"message": ...}})."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return inner["message"]
    return fallback
