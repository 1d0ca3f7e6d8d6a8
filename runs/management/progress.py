"""Live progress of a run in the terminal, read from its event log."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from runs.events import describe
from runs.models import Run
from runs.states import PhaseState


class Progress:
    def __init__(self, run: Run, out: TextIO = sys.stdout) -> None:
        self.run = run
        self.out = out
        self.last_id = 0
        self.started = time.monotonic()

    def show_new_events(self) -> None:
        for event in self.run.events.filter(id__gt=self.last_id).order_by("id"):
            self.last_id = event.id
            line = describe(event)
            if line:
                elapsed = int(time.monotonic() - self.started)
                tokens = Run.objects.filter(pk=self.run.pk).values_list("tokens_used", flat=True)[0]
                self.out.write(f"[{elapsed // 60:02d}:{elapsed % 60:02d} {tokens:>7} tok] {line}\n")
                self.out.flush()

    def summary(self) -> str:
        run = Run.objects.get(pk=self.run.pk)
        lines = [f"\nRun {run.run_id}: {run.state}"]
        if run.failure_kind == "application":
            lines.append(f"  {run.failure_reason}")
        elif run.failure_code:
            lines.append(f"  failed ({run.failure_code}): {run.failure_reason}")
        for phase in run.phases.order_by("tier__index", "index"):
            # A run that stopped in the middle of a phase leaves it where it was: say so.
            state = (
                "stopped" if run.is_final and phase.state not in PhaseState.FINAL else (phase.state)
            )
            lines.append(
                f"  {phase.phase_id:<24} {state:<10} attempts {phase.attempt_count:<3} "
                f"{phase.title}"
            )
        where = f", worktree {run.worktree_path}" if run.worktree_path else ""
        lines.append(
            f"  tokens used {run.tokens_used}, integration branch {run.integration_branch}{where}"
        )
        return "\n".join(lines)
