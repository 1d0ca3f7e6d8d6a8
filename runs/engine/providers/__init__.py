"""LLM providers behind one protocol: Anthropic, OpenAI (and OpenAI-compatible servers),
and a scripted provider for the demo and tests.

`REGISTRY` is the one place that knows the providers a model id may name: the prefix
(`anthropic/...`), the bare model names that imply it, the variables that configure it
and how to build it from them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from runs.engine.protocols import LLMProvider


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    bare_prefixes: tuple[str, ...]  # bare model names that mean this provider
    variables: str  # what to set, for messages
    build: Callable[[Mapping[str, str], float, int], LLMProvider | None]


def _anthropic(environ: Mapping[str, str], timeout: float, retries: int) -> LLMProvider | None:
    from runs.engine.providers.anthropic_provider import AnthropicProvider

    if not environ.get("ANTHROPIC_API_KEY"):
        return None
    return AnthropicProvider(
        environ["ANTHROPIC_API_KEY"],
        environ.get("ANTHROPIC_BASE_URL"),
        max_retries=retries,
        timeout=timeout,
    )


def _openai(environ: Mapping[str, str], timeout: float, retries: int) -> LLMProvider | None:
    from runs.engine.providers.openai_provider import OpenAIProvider

    base_url = environ.get("OPENAI_BASE_URL")
    if not (environ.get("OPENAI_API_KEY") or base_url):
        return None
    # Local OpenAI-compatible servers (Ollama, llama.cpp) accept any key.
    key = environ.get("OPENAI_API_KEY") or "not-needed"
    return OpenAIProvider(key, base_url, max_retries=retries, timeout=timeout)


REGISTRY: dict[str, ProviderSpec] = {
    spec.name: spec
    for spec in (
        ProviderSpec(
            "anthropic",
            ("claude-",),
            "ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL for a proxy)",
            _anthropic,
        ),
        ProviderSpec(
            "openai",
            ("gpt-", "o1", "o3", "o4"),
            "OPENAI_API_KEY (and OPENAI_BASE_URL for an OpenAI-compatible server)",
            _openai,
        ),
    )
}


def configured(environ: Mapping[str, str], timeout: float, retries: int) -> dict[str, LLMProvider]:
    """The providers the environment configures, by name."""
    built = {name: spec.build(environ, timeout, retries) for name, spec in REGISTRY.items()}
    return {name: provider for name, provider in built.items() if provider is not None}
