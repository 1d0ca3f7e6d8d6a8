"""Human sentences for RunEvents, shared by the CLI progress and the dashboard log."""

from __future__ import annotations

from runs.models import RunEvent


def describe(event: RunEvent) -> str | None:
    p = event.payload
    match event.kind:
        case "workspace":
            where = f" on {p['host']}" if p.get("host") else ""
            return f"worktree {p['path']}{where}, {p['branch']} at {p.get('commit', '')[:10]}"
        case "taken_over":
            return (
                f"taken over by a worker on {p['host']}, {p['seconds_after_expiry']} s after "
                "the previous worker's lease expired"
            )
        case "requeued":
            return f"queued again at step {p['step']}: {p['reason']}"
        case "environment_building":
            return f"environment: building the {p['toolchain']} environment {p['key']}"
        case "environment":
            if not p.get("toolchain"):
                return f"environment: {p['message']}"
            source = "from the cache" if p["from_cache"] else "built"
            decided = (
                "installed by setup_command"
                if p["resolution"] == "setup_command"
                else f"dependencies {p['resolution']}"
            )
            return f"environment: {p['toolchain']}, {source} in {p['seconds']} s, {decided}" + (
                f", {p['interpreter']}" if p.get("interpreter") else ""
            )
        case "setup_failed":
            return f"environment: setup failed: {p['message']}"
        case "baseline":
            known = " (known)" if p.get("cached") else f" ({p['duration']} s)"
            if p.get("problem"):
                return f"tests before the phase: `{p['command']}` could not run: {p['problem']}"
            if not p["ran"] and not p.get("errors"):
                return f"tests before the phase: `{p['command']}` ran no tests yet{known}"
            return f"tests before the phase: `{p['command']}`: {p['summary']}{known}"
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
            if p.get("error"):
                return f"  {p['role']} {p['provider']}/{p['model']}: failed: {p['error']}"
            tokens = p["total_tokens"] if p["total_tokens"] is not None else "unreported"
            return f"  {p['role']} {p['provider']}/{p['model']}: {tokens} tokens"
        case "apply_result":
            return f"  applied {p['blocks']} block(s) to {', '.join(p['files']) or 'no files'}"
        case "gate_result":
            return f"  gate {p['gate']}: {'passed' if p['passed'] else 'FAILED'}: {p['summary']}"
        case "auditor_unreadable":
            return f"  the auditor's reply could not be read ({p['problem']}); asking again"
        case "verdict":
            return f"  auditor: {p['verdict']}: {'; '.join(p['reasons'])}"
        case "decision":
            hint = f" (hint: {p['hint'][:200]})" if p.get("hint") else ""
            return (
                f"  recovery after phase {p['phase_id']} attempt {p['attempt']} "
                f"({p['failure'].replace('_', ' ')}): {p['action'].replace('_', ' ')}: "
                f"{p['reason']}{hint}"
            )
        case "doctor":
            return (
                f"  doctor {p['model']}: {p['action']} (confidence {p['confidence']:.2f}): "
                f"{p['reasoning'][:300]}"
            )
        case "replanned":
            refused = (
                f"; not granted: {', '.join(p['refused_paths'])}" if p.get("refused_paths") else ""
            )
            return f"  phase {p['phase_id']} replanned: plan version {p['version']}{refused}"
        case "fix_applied":
            return f"  known fix {p['pattern']}: {p['action'].replace('_', ' ')}"
        case "fix_executed":
            return f"  doctor's fix `{p['command']}` exited {p['exit_code']}"
        case "fix_refused":
            return f"  doctor's fix refused: {p['reason']}"
        case "rolled_back":
            queued = ", ".join(p["requeued"]) or "nothing"
            return f"rolled back to {p['target']} ({p['commit'][:10]}); queued again: {queued}"
        case "savepoint":
            pushed = f", pushed to {p['pushed_to']}" if p.get("pushed_to") else ""
            return f"  savepoint {p['commit'][:10]}{pushed}"
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
            mapped = f", {len(p['mapped'])} as map" if p.get("mapped") else ""
            omitted = f", {len(p['left_out'])} left out" if p.get("left_out") else ""
            tokens = (
                f" ({p['used_tokens']} of {p['budget_tokens']} tokens)"
                if p.get("budget_tokens")
                else ""
            )
            return f"  context: {len(p['included'])} file(s) whole{mapped}{omitted}{tokens}"
        case "goal_drift":
            verdict = "flagged" if p.get("flagged") else "ok"
            return (
                f"  goal drift: similarity {p['similarity']} to the run's intention "
                f"(threshold {p['threshold']}, {p['mode']}): {verdict}"
            )
        case "files_requested":
            return f"  the Builder asked to see: {', '.join(p['paths'])}"
        case "memory_error":
            return f"  memory: {p['action']} failed: {p['error']} (the run goes on without it)"
        case "truncated":
            return f"  reply cut off at {p['max_tokens']} tokens; asking again with more room"
        case "max_tokens_lowered":
            return f"  {p['role']} output allowance lowered to {p['allowed']} to fit the budget"
        case "attempt_abandoned":
            return f"phase {p['phase_id']} attempt {p['attempt']} abandoned (worker lost)"
        case "large_deletion":
            return f"  large deletion: {p['net_deleted_lines']} lines net"
        case "cancel_requested":
            return f"cancel requested by {p['by'] or 'someone'}"
        case "run_resumed":
            return f"run resumed by {p['by'] or 'someone'}"
        case "run_finished":
            return f"run finished: {p['state']} ({p['tokens_used']} tokens)"
        case "internal_error":
            return f"Autopack failed: {p['error']} (please report it; traceback in this log)"
        case "warning":
            return f"warning: {p['message']}"
        case "run_state":
            reason = (p.get("reason") or "").strip().splitlines()
            return f"run {p['state']}" + (f": {reason[0]}" if reason else "")
    return None
