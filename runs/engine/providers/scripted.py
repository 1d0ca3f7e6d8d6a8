"""Replies read from a JSON file, by role, in order: for the demo and tests.

No model is called; everything that uses this provider says so. The file looks like
{"builder": ["reply", ...], "auditor": ["reply", ...]}.
"""

from __future__ import annotations

import json
from pathlib import Path

from runs.engine.outcomes import ConfigurationError
from runs.engine.protocols import LLMRequest, LLMResponse

NOTICE = "scripted provider: replies come from {path}; no model was called"


class ScriptedProvider:
    name = "scripted"
    bills_tokens = False  # no model runs, so nothing counts against a token cap

    def __init__(self, path: Path, used: dict[str, int] | None = None) -> None:
        self.path = path
        try:
            script = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read scripted replies from {path}: {exc}") from None
        if not isinstance(script, dict) or not all(
            isinstance(v, list) and all(isinstance(r, str) for r in v) for v in script.values()
        ):
            raise ValueError(f"{path} must map roles to lists of reply strings")
        self.script = script
        # How many replies each role has used so far: a run resumed by another process
        # continues where the script left off.
        self.used = dict(used or {})

    @property
    def notice(self) -> str:
        return NOTICE.format(path=self.path)

    def complete(self, request: LLMRequest) -> LLMResponse:
        replies = self.script.get(request.role, [])
        position = self.used.get(request.role, 0)
        if position >= len(replies):
            # Not a provider failure to retry: the script is shorter than the run.
            raise ConfigurationError(
                f"{self.path} has no reply left for the {request.role} (it holds "
                f"{len(replies)}); add replies to the file, or run with a model"
            )
        self.used[request.role] = position + 1
        return LLMResponse(
            text=replies[position],
            stop_reason="scripted",
            truncated=False,
            prompt_tokens=None,
            completion_tokens=None,
            total_tokens=None,
        )
