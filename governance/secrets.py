"""Keep secrets out of what Autopack stores. (Commands get an environment built from an
allowlist instead: runs.engine.sandbox.base_env.)"""

from __future__ import annotations

import os
import re
from typing import Any

REDACTED = "[REDACTED]"
SECRET_NAME = re.compile(
    r"(API_KEY|_KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)$|"
    r"^(DATABASE_URL|REDIS_URL|AWS_SESSION_TOKEN)$",
    re.IGNORECASE,
)
KEY_SHAPES = [
    re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"),  # OpenAI and Anthropic keys
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),  # AWS access key ids
    re.compile(r"\b(?:ghp|gho|ghs|github_pat)_[A-Za-z0-9_]{20,}"),
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{12,}"),
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),  # Slack tokens
]
MIN_SECRET_LENGTH = 8


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


def _secret_values() -> list[str]:
    values = {
        value
        for name, value in os.environ.items()
        if is_secret_name(name) and len(value) >= MIN_SECRET_LENGTH
    }
    return sorted(values, key=len, reverse=True)


def scrub(text: str) -> str:
    """Secret values and key-shaped strings replaced; NUL characters (which PostgreSQL
    text cannot hold, and a test's output may contain) dropped."""
    if not text:
        return text
    text = text.replace("\x00", "")
    for value in _secret_values():
        text = text.replace(value, REDACTED)
    for shape in KEY_SHAPES:
        text = shape.sub(REDACTED, text)
    return text


def scrub_data(data: Any) -> Any:
    if isinstance(data, str):
        return scrub(data)
    if isinstance(data, dict):
        return {key: scrub_data(value) for key, value in data.items()}
    if isinstance(data, list):
        return [scrub_data(value) for value in data]
    return data
