"""Read the Auditor's JSON verdict."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

FENCED = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.DOTALL)


class VerdictError(ValueError):
    pass


@dataclass(frozen=True)
class Verdict:
    approved: bool
    reasons: list[str]

    def as_dict(self) -> dict:
        return {"verdict": "approve" if self.approved else "reject", "reasons": self.reasons}


def parse_verdict(text: str) -> Verdict:
    candidates = [m.group(1) for m in FENCED.finditer(text)]
    stripped = text.strip()
    if stripped.startswith("{"):
        candidates.insert(0, stripped)
    elif "{" in stripped and not candidates:
        candidates.append(stripped[stripped.index("{") : stripped.rindex("}") + 1])
    for candidate in candidates:
        try:
            data = json.loads(candidate)
        except ValueError:
            continue
        if not isinstance(data, dict):
            continue
        verdict = str(data.get("verdict", "")).lower()
        reasons = data.get("reasons", [])
        if verdict not in ("approve", "reject") or not isinstance(reasons, list):
            raise VerdictError(
                'the JSON must have "verdict": "approve" or "reject" and a "reasons" list'
            )
        return Verdict(verdict == "approve", [str(r) for r in reasons])
    raise VerdictError("no JSON object found in the Auditor's reply")
