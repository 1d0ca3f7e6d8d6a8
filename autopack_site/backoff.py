"""How long a supervisor waits before starting a process that died again."""

from __future__ import annotations

MAX_SECONDS = 30
HEALTHY_AFTER_SECONDS = 60


class Backoff:
    """1 s, doubling to 30 s while the process keeps dying young; back to 1 s once it
    ran for a minute."""

    def __init__(self) -> None:
        self.seconds = 1.0

    def after(self, ran_for: float) -> float:
        """The wait before the next start of a process that ran `ran_for` seconds."""
        if ran_for > HEALTHY_AFTER_SECONDS:
            self.seconds = 1.0
        wait = self.seconds
        self.seconds = min(self.seconds * 2, MAX_SECONDS)
        return wait
