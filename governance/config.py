"""config/governance.yaml, validated on load."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import yaml
from django.conf import settings
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from runs.engine.routing import ModelConfigError

EVENTS = ("approval_needed", "run_finished", "phase_failed", "large_deletion")
_ENV = re.compile(r"\$\{(\w+)\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Risk(_Strict):
    critical: list[str] = []
    low: list[str] = []
    large_change_lines: int = Field(default=100, ge=1)


class Deletion(_Strict):
    notify: int = Field(default=100, ge=1)
    block: int = Field(default=200, ge=1)


class Target(_Strict):
    name: str
    type: Literal["webhook", "slack", "telegram"]
    url: str = ""
    token: str = ""
    chat_id: str = ""
    api_base: str = "https://api.telegram.org"
    events: list[Literal[EVENTS]] = list(EVENTS)  # type: ignore[valid-type]

    @field_validator("url", "token", "chat_id", "api_base")
    @classmethod
    def _expand(cls, value: str) -> str:
        def variable(match: re.Match) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise ValueError(f"environment variable {name} is not set")
            return os.environ[name]

        return _ENV.sub(variable, value)


class GovernanceConfig(_Strict):
    protected_paths: list[str] = []
    risk: Risk = Risk()
    auto_approve: list[Literal["low", "medium"]] = ["low"]
    approval_timeout_minutes: int = Field(default=1440, ge=1)
    deletion: Deletion = Deletion()
    notifications: list[Target] = []


def load_governance() -> GovernanceConfig:
    path = Path(settings.AUTOPACK_GOVERNANCE)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ModelConfigError(f"cannot read governance config {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ModelConfigError(f"{path} is not valid YAML: {exc}") from None
    try:
        return GovernanceConfig.model_validate(data or {})
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            key = ".".join(str(p) for p in error["loc"])
            message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
            problems.append(f"{key}: {message.removeprefix('Value error, ')}")
        raise ModelConfigError(f"{path}: " + "; ".join(problems)) from None
