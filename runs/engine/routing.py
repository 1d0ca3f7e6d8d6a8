"""config/models.yaml: which model builds and audits at each complexity, and when to
escalate. Validated on load; every error names the key that is wrong."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from runs.engine.configfile import load_config_file
from runs.engine.providers import REGISTRY

LEVELS = ("low", "medium", "high")


def qualify_model(name: str) -> str:
    """`claude-*` -> anthropic/, `gpt-*`/`o1`/`o3`/`o4` -> openai/; prefixed ids unchanged."""
    name = name.strip()
    provider, slash, model = name.partition("/")
    if slash:
        if provider not in REGISTRY or not model:
            raise ValueError(
                f"{name!r}: the provider prefix must be one of "
                f"{', '.join(p + '/' for p in REGISTRY)}"
            )
        return name
    for spec in REGISTRY.values():
        if name.startswith(spec.bare_prefixes):
            return f"{spec.name}/{name}"
    raise ValueError(
        f"{name!r} does not say which provider serves it; write "
        f"'openai/{name}' (OpenAI or any OpenAI-compatible server such as Ollama "
        f"or vLLM) or 'anthropic/{name}'"
    )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Chain(_Strict):
    models: list[str] = Field(min_length=1)

    @field_validator("models")
    @classmethod
    def _qualified(cls, models: list[str]) -> list[str]:
        return [qualify_model(m) for m in models]


class RoleChains(_Strict):
    low: Chain
    medium: Chain
    high: Chain


class EscalationChains(_Strict):
    builder: RoleChains
    auditor: RoleChains


class Thresholds(_Strict):
    low_to_medium: int = Field(default=2, ge=1)
    medium_to_high: int = Field(default=2, ge=1)


class ComplexityEscalation(_Strict):
    enabled: bool = True
    thresholds: Thresholds = Thresholds()
    max_attempts_per_phase: int = Field(default=5, ge=1, le=50)
    failure_types: list[str] = []


class BuilderSettings(_Strict):
    @model_validator(mode="before")
    @classmethod
    def _characters_to_tokens(cls, data: object) -> object:
        """`context_chars` (a budget in characters, before token budgets) still reads."""
        if isinstance(data, dict) and "context_chars" in data:
            data = dict(data)
            chars = data.pop("context_chars")
            if isinstance(chars, int) and "context_budget_tokens" not in data:
                data["context_budget_tokens"] = max(500, chars // 4)
        return data

    edit_format: Literal["search_replace", "whole_file", "unified_diff"] = "search_replace"
    max_output_tokens: int = Field(default=8192, ge=256)
    max_output_tokens_limit: int = Field(default=32000, ge=256)
    # Tokens of files shown to the Builder (runs/engine/context.py chooses them).
    context_budget_tokens: int = Field(default=30_000, ge=500)
    fuzzy_match_threshold: float | None = Field(default=0.95, gt=0.5, le=1.0)
    max_file_bytes: int = Field(default=1_000_000, ge=1)
    max_change_bytes: int = Field(default=2_000_000, ge=1)


class AuditorSettings(_Strict):
    complexities: list[Literal["low", "medium", "high"]] = list(LEVELS)
    max_output_tokens: int = Field(default=2048, ge=128)


class DoctorModels(_Strict):
    """Which model diagnoses a failure: `cheap` for routine ones, `strong` for high-risk
    kinds, a health budget near its limit, or when the cheap one is unsure."""

    cheap: str = "anthropic/claude-sonnet-4-5"
    strong: str = "anthropic/claude-opus-4-5"
    min_confidence_for_cheap: float = Field(default=0.7, ge=0, le=1)
    health_budget_near_limit_ratio: float = Field(default=0.8, gt=0, le=1)
    # Failure kinds (or import / logic / patch, or a phase's task_category).
    high_risk_categories: list[str] = ["import", "logic"]

    @field_validator("cheap", "strong")
    @classmethod
    def _qualified(cls, model: str) -> str:
        return qualify_model(model)


class DoctorSettings(_Strict):
    enabled: bool = True
    min_failures: int = Field(default=2, ge=1)  # failures of a phase before it is asked
    max_calls_per_phase: int = Field(default=2, ge=0)
    max_calls_per_run: int = Field(default=10, ge=0)
    max_output_tokens: int = Field(default=1024, ge=128)
    allow_execute_fix_global: bool = False
    max_execute_fix_per_phase: int = Field(default=1, ge=0)
    allowed_fix_types: list[Literal["git", "file"]] = ["git", "file"]
    max_rollbacks_per_run: int = Field(default=1, ge=0)


class ReplanSettings(_Strict):
    enabled: bool = True
    trigger_threshold: int = Field(default=2, ge=1)
    message_similarity_enabled: bool = True
    similarity_threshold: float = Field(default=0.8, ge=0, le=1)
    min_message_length: int = Field(default=30, ge=0)
    max_replans_per_phase: int = Field(default=1, ge=0)
    # Failure kinds, or words the failure's message carries, that replan at once.
    fatal_error_types: list[str] = ["wrong_tech_stack", "schema_mismatch", "api_contract_wrong"]
    model: str | None = None  # the planner; default: doctor_models.strong
    max_output_tokens: int = Field(default=2048, ge=256)

    @field_validator("model")
    @classmethod
    def _qualified(cls, model: str | None) -> str | None:
        return qualify_model(model) if model else None


class PlanningSettings(_Strict):
    """Plans from notes (`autopack plan NOTES.md --from-notes`): the Planner turns free
    text into a markdown plan, with one correction at most."""

    model: str | None = None  # default: the replanning Planner's model
    max_output_tokens: int = Field(default=4096, ge=256)
    # Over both calls of one planning (the plan and its one correction).
    token_cap: int | None = Field(default=100_000, ge=1)
    cost_cap: Decimal | None = Field(default=None, gt=0)

    @field_validator("model")
    @classmethod
    def _qualified(cls, model: str | None) -> str | None:
        return qualify_model(model) if model else None


class FailureHardening(_Strict):
    enabled: bool = True  # deterministic fixes for known failure patterns


BEST_FIRST, PROGRESSIVE = "best_first", "progressive"


def parse_policy(value: object) -> str | tuple[str, ...]:
    """An escalation policy: "progressive" (start at the cheapest model of the chain and
    escalate), "best_first" (start at its strongest) or {"models": [...]} (exactly these
    models, in this order). Raises ValueError saying what is accepted."""
    if value in (BEST_FIRST, PROGRESSIVE):
        return value
    if value == "cheap_first":  # the older name of progressive
        return PROGRESSIVE
    if isinstance(value, dict) and set(value) == {"models"} and isinstance(value["models"], list):
        models = value["models"]
        if models and all(isinstance(m, str) for m in models):
            return tuple(qualify_model(m) for m in models)
    raise ValueError(
        f'unknown escalation policy {value!r}; use "best_first", "progressive" or '
        '{"models": ["provider/model", ...]}'
    )


def _valid_policy(value: str | dict) -> str | dict:
    parse_policy(value)
    return value


Policy = Annotated[str | dict, AfterValidator(_valid_policy)]


class ModelsConfig(_Strict):
    escalation_chains: EscalationChains
    complexity_escalation: ComplexityEscalation = ComplexityEscalation()
    builder: BuilderSettings = BuilderSettings()
    auditor: AuditorSettings = AuditorSettings()
    doctor_models: DoctorModels = DoctorModels()
    doctor: DoctorSettings = DoctorSettings()
    replan: ReplanSettings = ReplanSettings()
    planning: PlanningSettings = PlanningSettings()
    failure_hardening: FailureHardening = FailureHardening()
    # The escalation policy for phases of a task_category that set none of their own.
    llm_routing_policies: dict[str, Policy] = {}

    @property
    def planner_model(self) -> str:
        return self.replan.model or self.doctor_models.strong

    @property
    def notes_planner_model(self) -> str:
        """The model that turns notes into a plan."""
        return self.planning.model or self.planner_model

    def threshold(self, level: str) -> int:
        thresholds = self.complexity_escalation.thresholds
        return thresholds.low_to_medium if level == "low" else thresholds.medium_to_high

    def chain(self, role: str, level: str) -> list[str]:
        return getattr(getattr(self.escalation_chains, role), level).models

    def policy_for(self, category: str, own: object) -> str | tuple[str, ...]:
        """A phase's policy: its own, else its category's, else progressive."""
        if own is not None:
            return parse_policy(own)
        return parse_policy(self.llm_routing_policies.get(category, PROGRESSIVE))


def load_models_config(path: Path) -> ModelsConfig:
    return load_config_file(path, ModelsConfig, "model config")
