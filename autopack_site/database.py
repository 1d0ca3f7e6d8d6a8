"""DATABASES["default"]: DATABASE_URL when set, else the embedded PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

EMBEDDED_DATABASE_NAME = "autopack"


def from_url(url: str) -> dict:
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ImproperlyConfigured(
            f"DATABASE_URL must be a postgres:// or postgresql:// URL, got scheme "
            f"{parts.scheme!r}. Autopack needs PostgreSQL with the vector extension; "
            "unset DATABASE_URL to use the embedded database."
        )
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise ImproperlyConfigured("DATABASE_URL has no database name (postgres://host/NAME)")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    # libpq style: ?host=/socket/dir&port=5433 may stand in for the network location.
    host = query.pop("host", None) or (unquote(parts.hostname) if parts.hostname else "")
    port = query.pop("port", None) or parts.port
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": host,
        "PORT": str(port or ""),
        "OPTIONS": query,
    }


def embedded(pgdata: Path) -> tuple[dict, bool]:
    """Settings for the embedded server, and whether this process started it."""
    from autopack_site import embedded_db

    server = embedded_db.start(pgdata)
    embedded_db.ensure_database(server, EMBEDDED_DATABASE_NAME)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": EMBEDDED_DATABASE_NAME,
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": str(server.socket_dir),
        "PORT": str(server.port),
        "OPTIONS": {},
    }, server.started_here
