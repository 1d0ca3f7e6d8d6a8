"""Logging: Autopack's own messages at AUTOPACK_LOG_LEVEL; libraries' chatter (one line
per HTTP request, "nobody listens to this group") only when that level is DEBUG."""

from __future__ import annotations

import logging

# Loggers of libraries whose INFO lines carry nothing for the user.
CHATTY = ("httpx", "httpx2", "httpcore", "anthropic", "openai", "urllib3", "pgserver", "asyncio")


class NobodyListening(logging.Filter):
    """channels_postgres warns for every event published to a group without listeners,
    which is the normal case for a run nobody watches."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "did you call group_add" not in record.getMessage()


def config(level: str) -> dict:
    debug = level.upper() == "DEBUG"
    libraries = {name: {"level": "DEBUG" if debug else "WARNING"} for name in CHATTY}
    listening = {} if debug else {"filters": ["nobody_listening"]}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "filters": {"nobody_listening": {"()": NobodyListening}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
        "root": {"handlers": ["console"], "level": level.upper()},
        "loggers": {**libraries, "channels_postgres.core": listening},
    }
