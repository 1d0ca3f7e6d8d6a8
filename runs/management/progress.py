"""Live progress of a run in the terminal, read from its event log."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from runs.models import Run, RunEvent


def _describe(event: RunEvent) -> str | None:
    p = event.payload
    match event.kind:
        case "workspace":
            return f"worktree {p['path']} on {p['branch']}"
        case "baseline":
            return (
                f"baseline `{p['command']}`: {p['passed']} passed, {p['failing']} failing "
                f"({p['duration']} s)"
            )
        case "phase_state":
            return f"phase {p['phase_id']}: {p['state']}" + (
                f" ({p['reason']})" if p.get("reason") else ""
            )
        case "attempt_started":
            return (
                f"phase {p['phase_id']} attempt {p['attempt']}: builder {p['model']}"
                f" ({p['reason']})"
            )
        case "llm_call":
            tokens = p["total_tokens"] if p["total_tokens"] is not None else "unreported"
            error = f" ERROR {p['error']}" if p.get("error") else ""
            return f"  {p['role']} {p['provider']}/{p['model']}: {tokens} tokens{error}"
        case "apply_result":
            return f"  applied {p['blocks']} block(s) to {', '.join(p['files']) or 'no files'}"
        case "gate_result":
            return f"  gate {p['gate']}: {'passed' if p['passed'] else 'FAILED'}: {p['summary']}"
        case "verdict":
            return f"  auditor: {p['verdict']}: {'; '.join(p['reasons'])}"
        case "savepoint":
            return f"  savepoint {p['commit'][:10]}"
        case "rollback":
            return f"  rolled back: {p['outcome']}: {p['reason'].splitlines()[0]}"
        case "run_state":
            return f"run {p['state']}" + (f": {p['reason']}" if p.get("reason") else "")
    return None


class Progress:
    def __init__(self, run: Run, out: TextIO = sys.stdout) -> None:
        self.run = run
        self.out = out
        self.last_id = 0
        self.started = time.monotonic()

    def show_new_events(self) -> None:
        for event in self.run.events.filter(id__gt=self.last_id).order_by("id"):
            self.last_id = event.id
            line = _describe(event)
            if line:
                elapsed = int(time.monotonic() - self.started)
                tokens = Run.objects.filter(pk=self.run.pk).values_list("tokens_used", flat=True)[0]
                self.out.write(f"[{elapsed // 60:02d}:{elapsed % 60:02d} {tokens:>7} tok] {line}\n")
                self.out.flush()

    def summary(self) -> str:
        run = Run.objects.get(pk=self.run.pk)
        lines = [
            f"\nRun {run.run_id}: {run.state}"
            + (f" ({run.failure_code}: {run.failure_reason})" if run.failure_code else "")
        ]
        for phase in run.phases.order_by("tier__index", "index"):
            lines.append(f"  {phase.phase_id:<24} {phase.state:<10} attempts {phase.attempt_count}")
        lines.append(
            f"  tokens used {run.tokens_used}, integration branch "
            f"{run.integration_branch}, worktree {run.worktree_path}"
        )
        return "\n".join(lines)
