"""Which LLM providers this process can use, from the environment."""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings
from django.db.models import Count

from runs.engine.protocols import LLMProvider
from runs.engine.providers import configured
from runs.engine.providers.bench_models import BenchModel
from runs.engine.providers.scripted import ScriptedProvider
from runs.models import Run
from runs.replaying import replay_provider
from telemetry.models import LlmCall

SCRIPTED = "scripted:"
BENCH = "bench:"  # bench:MODEL:REFERENCE: a benchmark's scripted model
REPLAY = "replay:"  # replay:RUN_ID: the recorded replies of another run (runs/replaying.py)


def configured_providers() -> dict[str, LLMProvider]:
    return configured(os.environ, settings.AUTOPACK_LLM_TIMEOUT, settings.AUTOPACK_LLM_MAX_RETRIES)


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


def override_for(run: Run) -> LLMProvider | None:
    """The provider that answers every model call of this run instead of the configured
    ones: scripted replies, a benchmark's scripted model, or a recording."""
    if run.provider.startswith(BENCH):
        kind, _, reference = run.provider[len(BENCH) :].partition(":")
        return BenchModel(kind, Path(reference))
    if run.provider.startswith(REPLAY):
        return replay_provider(run)
    if not run.provider.startswith(SCRIPTED):
        return None
    used = dict(
        LlmCall.objects.filter(run=run, provider="scripted")
        .values_list("role")
        .annotate(n=Count("id"))
        .values_list("role", "n")
    )
    return ScriptedProvider(Path(run.provider[len(SCRIPTED) :]), used=used)
