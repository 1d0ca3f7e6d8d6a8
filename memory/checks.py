"""The embeddings configuration, checked when a process starts (without loading a model
or calling the endpoint)."""

from __future__ import annotations

import os

from django.conf import settings
from django.core.checks import Error, register


@register("autopack")
def embeddings_configuration(app_configs=None, **kwargs) -> list[Error]:
    url = settings.AUTOPACK_EMBEDDINGS_URL
    key_env = settings.AUTOPACK_EMBEDDINGS_KEY_ENV
    errors = []
    if url and not settings.AUTOPACK_EMBEDDINGS_MODEL:
        errors.append(
            Error(
                f"AUTOPACK_EMBEDDINGS_URL is {url!r} but AUTOPACK_EMBEDDINGS_MODEL is empty.",
                hint="Set AUTOPACK_EMBEDDINGS_MODEL to the embedding model the endpoint "
                "serves, or unset AUTOPACK_EMBEDDINGS_URL to use the built-in model.",
                obj="AUTOPACK_EMBEDDINGS_MODEL",
                id="autopack.E005",
            )
        )
    if url and key_env and not os.environ.get(key_env):
        errors.append(
            Error(
                f"AUTOPACK_EMBEDDINGS_KEY_ENV names {key_env}, which is not set.",
                hint=f"Set {key_env} to the endpoint's API key, or empty "
                "AUTOPACK_EMBEDDINGS_KEY_ENV when the server needs none.",
                obj="AUTOPACK_EMBEDDINGS_KEY_ENV",
                id="autopack.E005",
            )
        )
    return errors
