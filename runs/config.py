"""The run-config JSON users already have, validated strictly.

Unknown fields are errors (a misspelt `aproval_required` must not silently vanish), and
every error names the JSON path of the bad field, e.g. `tiers[0].phases[1].complexity`.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from autopack_site.text import data_problems, nul_issue
from runs.engine.routing import parse_policy

RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$"
GIT_URL = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|[\w.-]+@[\w.-]+:)", re.IGNORECASE)


def is_git_url(repository: str) -> bool:
    return bool(GIT_URL.match(repository))


BRANCH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")


def branch_name_problem(name: str) -> str:
    """Why `name` cannot be a branch Autopack writes ("" when it can): git's rules, kept
    to plain characters, and not under autopack/ (the runs' own branches)."""
    if (
        not BRANCH_NAME.match(name)
        or ".." in name
        or "//" in name
        or name.endswith((".", "/", ".lock"))
        or "/." in name
    ):
        return (
            f"{name!r} is not a usable branch name: letters, digits, '.', '_', '-' and '/', "
            "no '..', not ending in '.', '/' or '.lock'"
        )
    if name.startswith("autopack/"):
        return f"{name!r} is under autopack/, where each run's own branch lives"
    return ""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ReadOnlyContext(_Strict):
    path: str = Field(min_length=1)
    reason: str = ""


class Scope(_Strict):
    paths: list[str] = Field(min_length=1)
    deliverables: list[str] = []
    read_only_context: list[ReadOnlyContext] = []

    @field_validator("read_only_context", mode="before")
    @classmethod
    def _strings_become_objects(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"path": item} if isinstance(item, str) else item for item in value]
        return value

    @field_validator("paths")
    @classmethod
    def _paths_not_empty(cls, value: list[str]) -> list[str]:
        if any(not item.strip() for item in value):
            raise ValueError("scope paths must not be empty strings")
        return value


class PhaseConfig(_Strict):
    phase_id: str = Field(pattern=RUN_ID_PATTERN)
    phase_index: int = Field(ge=0)
    task_name: str = Field(min_length=1)
    task_category: str = Field(default="", max_length=100)
    complexity: Literal["low", "medium", "high"]
    scope: Scope
    description: str = ""
    acceptance_criteria: list[str] = []
    test_command: str = Field(default="", max_length=1000)
    setup_command: str = Field(default="", max_length=2000)
    approval_required: bool = False
    allow_binary: bool = False
    max_attempts: int | None = Field(default=None, ge=1, le=50)
    token_cap: int | None = Field(default=None, ge=1)
    cost_cap: Decimal | None = Field(default=None, gt=0, max_digits=12, decimal_places=4)
    escalation_policy: str | dict[str, Any] | None = None

    @field_validator("escalation_policy")
    @classmethod
    def _known_policy(cls, value: str | dict | None) -> str | dict | None:
        if value is not None:
            parse_policy(value)
        return value

    @field_validator("acceptance_criteria", mode="before")
    @classmethod
    def _single_criterion(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class TierConfig(_Strict):
    tier_index: int = Field(ge=0)
    tier_name: str = Field(min_length=1, max_length=200)
    phases: list[PhaseConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_phase_indexes(self) -> TierConfig:
        seen: set[int] = set()
        for phase in self.phases:
            if phase.phase_index in seen:
                raise ValueError(f"phase_index {phase.phase_index} appears twice in this tier")
            seen.add(phase.phase_index)
        return self


class HealthBudget(_Strict):
    """Limits on failures within one (re)start of a run; defaults from the settings."""

    server_errors: int | None = Field(default=None, ge=1)
    patch_failures: int | None = Field(default=None, ge=1)
    total_failures: int | None = Field(default=None, ge=1)
    repeated_failures: int | None = Field(default=None, ge=1)


class RunConfig(_Strict):
    run_id: str = Field(pattern=RUN_ID_PATTERN)
    goal: str = Field(min_length=1)
    token_cap: int | None = Field(default=None, ge=1)
    cost_cap: Decimal | None = Field(default=None, gt=0, max_digits=12, decimal_places=4)
    health_budget: HealthBudget = HealthBudget()
    workspace: str | None = None
    repo: str | None = None
    project: str | None = Field(default=None, min_length=1, max_length=200)
    base_branch: str | None = Field(default=None, min_length=1, max_length=200)
    max_attempts_per_phase: int | None = Field(default=None, ge=1, le=50)
    max_duration_minutes: int | None = Field(default=None, ge=1)
    setup_command: str = Field(default="", max_length=2000)
    test_command: str = Field(default="", max_length=1000)
    dependency_resolution: Literal["commit-date", "newest"] | None = None
    # False: the run neither reads nor writes the project's memory and learned rules
    # (benchmarks and replays, whose prompts must not depend on earlier runs).
    memory: bool = True
    # True: the tests may fail to run on the base commit (a stub that does not compile);
    # the run starts anyway and the phases' gates still require the tests to run.
    allow_broken_baseline: bool = False
    # Propose first: the run builds and tests its change on its integration branch, then
    # waits in the governance queue as a proposal; approved, it is merged into this
    # branch (never the base branch). Unset: a run is done when its phases are.
    propose_into: str | None = Field(default=None, min_length=1, max_length=200)
    tiers: list[TierConfig] = Field(min_length=1)

    @field_validator("propose_into")
    @classmethod
    def _branch_name(cls, value: str | None) -> str | None:
        if value is not None and (problem := branch_name_problem(value)):
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _plan_is_consistent(self) -> RunConfig:
        if self.workspace and self.repo and self.workspace != self.repo:
            raise ValueError("give the repository once: `workspace` and `repo` differ")
        if not (self.workspace or self.repo):
            raise ValueError("the repository is missing: set `workspace` or `repo`")
        if self.propose_into and self.propose_into == self.base_branch:
            raise ValueError(
                f"propose_into is the base branch {self.base_branch!r}: proposals are merged "
                "into another branch, never the base branch"
            )
        tier_indexes: set[int] = set()
        phase_ids: set[str] = set()
        for tier in self.tiers:
            if tier.tier_index in tier_indexes:
                raise ValueError(f"tier_index {tier.tier_index} appears twice")
            tier_indexes.add(tier.tier_index)
            for phase in tier.phases:
                if phase.phase_id in phase_ids:
                    raise ValueError(f"phase_id {phase.phase_id!r} appears twice")
                phase_ids.add(phase.phase_id)
        return self

    @property
    def repository(self) -> str:
        return self.repo or self.workspace or ""

    @property
    def repository_is_url(self) -> bool:
        return is_git_url(self.repository)


class ConfigError(ValueError):
    """A run-config that cannot be accepted; `errors` maps JSON paths to messages."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['path']}: {e['message']}" for e in errors))
        self.errors = errors


def json_path(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(root)"


def parse_run_config(data: Any) -> RunConfig:
    if not isinstance(data, dict):
        raise ConfigError([{"path": "(root)", "message": "a run config must be a JSON object"}])
    # NUL first: the database cannot store it, and the model would accept it.
    if problems := data_problems(data, nul_issue, root="(root)"):
        raise ConfigError([{"path": path, "message": message} for path, message in problems])
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        errors = []
        for error in exc.errors():
            location = error["loc"]
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = f"unknown field {location[-1]!r}"
            errors.append({"path": json_path(location), "message": message})
        raise ConfigError(errors) from None
