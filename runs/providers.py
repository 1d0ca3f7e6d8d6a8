"""Which LLM providers this process can use, from the environment."""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings
from django.db.models import Count

from runs.engine.protocols import LLMProvider
from runs.engine.providers.anthropic_provider import AnthropicProvider
from runs.engine.providers.openai_provider import OpenAIProvider
from runs.engine.providers.scripted import ScriptedProvider
from runs.models import Run
from telemetry.models import LlmCall

SCRIPTED = "scripted:"


def configured_providers() -> dict[str, LLMProvider]:
    options = {
        "max_retries": settings.AUTOPACK_LLM_MAX_RETRIES,
        "timeout": settings.AUTOPACK_LLM_TIMEOUT,
    }
    providers: dict[str, LLMProvider] = {}
    if os.environ.get("ANTHROPIC_API_KEY"):
        providers["anthropic"] = AnthropicProvider(
            os.environ["ANTHROPIC_API_KEY"], os.environ.get("ANTHROPIC_BASE_URL"), **options
        )
    base_url = os.environ.get("OPENAI_BASE_URL")
    if os.environ.get("OPENAI_API_KEY") or base_url:
        # Local OpenAI-compatible servers (Ollama, llama.cpp) accept any key.
        providers["openai"] = OpenAIProvider(
            os.environ.get("OPENAI_API_KEY") or "not-needed", base_url, **options
        )
    return providers


def validate_provider_option(value: str) -> str:
    """Check a `--provider` value; returns it with an absolute script path."""
    if not value:
        return ""
    if not value.startswith(SCRIPTED):
        raise ValueError(
            f"unknown provider {value!r}; use scripted:FILE (models are routed "
            "by config/models.yaml otherwise)"
        )
    path = Path(value[len(SCRIPTED) :]).expanduser().resolve()
    ScriptedProvider(path)  # fails now, with the reason, if the file is unusable
    return SCRIPTED + str(path)


def override_for(run: Run) -> ScriptedProvider | None:
    if not run.provider.startswith(SCRIPTED):
        return None
    used = dict(
        LlmCall.objects.filter(run=run, provider="scripted")
        .values_list("role")
        .annotate(n=Count("id"))
        .values_list("role", "n")
    )
    return ScriptedProvider(Path(run.provider[len(SCRIPTED) :]), used=used)
