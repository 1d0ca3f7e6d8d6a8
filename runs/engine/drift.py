"""Goal drift: how far a change is from the run's intention anchor (its goal and plan),
measured by the caller's embedding model before the change is applied."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Drift:
    similarity: float
    threshold: float
    blocking: bool  # refuse a change below the threshold (else only flag it)

    @property
    def flagged(self) -> bool:
        return self.similarity < self.threshold

    def record(self) -> dict:
        return {
            "similarity": round(self.similarity, 3),
            "threshold": self.threshold,
            "mode": "blocking" if self.blocking else "advisory",
            "flagged": self.flagged,
        }


def change_summary(reply: str, diff: str) -> str:
    """What a change is about, for comparing with the run's intention: the Builder's own
    words around its edits and the lines the change adds and removes."""
    prose = re.sub(r"(?s)```.*?```|<<<<<<<.*?>>>>>>>[^\n]*", " ", reply)
    lines = [
        line[1:]
        for line in diff.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    return (prose.strip()[:2000] + "\n" + "\n".join(lines))[:6000]
