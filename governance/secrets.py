"""Keep secrets out of what Autopack stores and of test output sent back to a model.
(Commands get an environment built from an allowlist instead: runs.engine.sandbox.base_env.)

Two nets: the values of every secret Autopack knows (its SECRET_KEY, the admin password,
the database password, notification tokens, and environment variables whose names say
secret), and the shapes of well-known keys.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

REDACTED = "[REDACTED]"
SECRET_NAME = re.compile(
    r"(API_KEY|_KEY|TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|CREDENTIALS?|"
    r"PRIVATE|AUTH|COOKIE|DSN)$|"
    r"^(DATABASE_URL|REDIS_URL|AWS_SESSION_TOKEN)$",
    re.IGNORECASE,
)
KEY_SHAPES = [
    re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"),  # OpenAI and Anthropic keys
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),  # AWS access key ids
    re.compile(r"\b(?:ghp|gho|ghs|github_pat)_[A-Za-z0-9_]{20,}"),
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{12,}"),
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),  # Slack tokens
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)"),
]
MIN_SECRET_LENGTH = 8
# Known values are looked up again after this many seconds (a password file may appear).
REFRESH_SECONDS = 30.0
_SURROGATES = re.compile("[\ud800-\udfff]")

_known: tuple[float, list[str]] = (0.0, [])


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


def known_secrets() -> list[str]:
    """Every secret value Autopack knows, longest first."""
    global _known
    stamp, from_settings = _known
    if time.monotonic() - stamp >= REFRESH_SECONDS:
        from_settings = _settings_secrets()
        _known = (time.monotonic(), from_settings)
    found = {value for name, value in os.environ.items() if is_secret_name(name)}
    found.update(from_settings)
    return sorted(
        {value for value in found if value and len(value) >= MIN_SECRET_LENGTH},
        key=len,
        reverse=True,
    )


def forget_known_secrets() -> None:
    """Look the values up again on the next scrub (after a secret changed)."""
    global _known
    _known = (0.0, [])


def _settings_secrets() -> list[str]:
    from django.conf import settings

    if not settings.configured:
        return []
    values = [settings.SECRET_KEY]
    values += [db.get("PASSWORD") or "" for db in settings.DATABASES.values()]
    home = Path(getattr(settings, "AUTOPACK_HOME", "") or ".")
    for name in ("admin_password", "secret_key"):
        try:
            values.append((home / name).read_text().strip())
        except OSError:
            pass
    try:
        from autopack_site.configuration import governance

        for target in governance().notifications:
            values += [target.token, target.url]
    except Exception:  # noqa: BLE001 - an invalid config is reported where it is used
        pass
    return values


def scrub(text: str) -> str:
    """Secret values and key-shaped strings replaced; NUL characters (which PostgreSQL
    text cannot hold, and a test's output may contain) dropped; lone surrogates (which
    UTF-8 cannot encode, and a model's reply may contain) replaced by U+FFFD."""
    if not text:
        return text
    text = _SURROGATES.sub("\ufffd", text.replace("\x00", ""))
    for value in known_secrets():
        text = text.replace(value, REDACTED)
    for shape in KEY_SHAPES:
        text = shape.sub(REDACTED, text)
    return text


def scrub_data(data: Any) -> Any:
    if isinstance(data, str):
        return scrub(data)
    if isinstance(data, dict):
        return {
            scrub(key) if isinstance(key, str) else key: scrub_data(value)
            for key, value in data.items()
        }
    if isinstance(data, list | tuple):
        return [scrub_data(value) for value in data]
    return data
