"""Human sentences for RunEvents, shared by the CLI progress and the dashboard log."""

from __future__ import annotations

from runs.models import RunEvent


def describe(event: RunEvent) -> str | None:
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
        case "approval_needed":
            return f"change waits for approval: request #{p['request']} ({p['risk']} risk)"
        case "governance_decided":
            return (
                f"request #{p['request']} {p['decision']}"
                + (f" by {p['by']}" if p.get("by") else "")
                + (f": {p['reason']}" if p.get("reason") else "")
            )
        case "context":
            omitted = f", {len(p['omitted'])} left out" if p.get("omitted") else ""
            return f"  context: {len(p['included'])} file(s){omitted}"
        case "truncated":
            return f"  reply cut off at {p['max_tokens']} tokens; asking again with more room"
        case "max_tokens_lowered":
            return f"  {p['role']} output allowance lowered to {p['allowed']} to fit the budget"
        case "attempt_abandoned":
            return f"phase {p['phase_id']} attempt {p['attempt']} abandoned (worker stopped)"
        case "large_deletion":
            return f"  large deletion: {p['net_deleted_lines']} lines net"
        case "cancel_requested":
            return f"cancel requested by {p['by'] or 'someone'}"
        case "run_resumed":
            return f"run resumed by {p['by'] or 'someone'}"
        case "run_finished":
            return f"run finished: {p['state']} ({p['tokens_used']} tokens)"
        case "warning":
            return f"warning: {p['message']}"
        case "run_state":
            return f"run {p['state']}" + (f": {p['reason']}" if p.get("reason") else "")
    return None
