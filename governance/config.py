"""config/governance.yaml, validated on load."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from runs.engine.configfile import load_config_file

EVENTS = ("approval_needed", "run_finished", "phase_failed", "large_deletion")
_ENV = re.compile(r"\$\{(\w+)\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Risk(_Strict):
    critical: list[str] = []
    low: list[str] = []
    large_change_lines: int = Field(default=100, ge=1)
    # A proposal (propose-first run) of at most this many changed lines is small.
    small_change_lines: int = Field(default=40, ge=1)


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


SECRET_FILES = [
    ".env*",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "id_rsa*",
    "id_ed25519*",
    "id_ecdsa*",
    "secrets.*",
    "credentials*",
    ".netrc",
    ".pgpass",
    ".npmrc",
    ".pypirc",
]


class GovernanceConfig(_Strict):
    protected_paths: list[str] = []
    # Files that look like secrets are not sent to model providers, unless the project
    # allows it (Project.send_secret_files).
    secret_files: list[str] = SECRET_FILES
    risk: Risk = Risk()
    auto_approve: list[Literal["low", "medium"]] = ["low"]
    approval_timeout_minutes: int = Field(default=1440, ge=1)
    deletion: Deletion = Deletion()
    notifications: list[Target] = []


def parse_governance(path: Path) -> GovernanceConfig:
    return load_config_file(path, GovernanceConfig, "governance config")
