"""The Doctor: an LLM diagnosis of a phase that keeps failing, answered as JSON, and the
Planner's revision of a phase whose approach is flawed. Prompts and the parsing of the
replies; the calls go through the LLMCaller like every other."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from runs.engine.failures import Failure
from runs.engine.policy import in_scope
from runs.engine.recovery import DOCTOR_ACTIONS, Advice
from runs.engine.spec import PhaseSpec

DOCTOR_SYSTEM = """\
You are the Doctor in Autopack, an autonomous software build system. A phase of a plan
keeps failing. Read its task, the history of its failed attempts, the last change, the
test output and the diagnostics, find the cause, and choose one recovery action:

- "retry_with_fix": the Builder can succeed with a precise hint; give it in "hint".
- "replan": the approach is wrong; the phase's description and criteria must change.
- "skip_phase": the phase cannot and need not be done; later phases can go on without it.
- "mark_fatal": nothing automatic can fix this; a person must look (say why).
- "rollback_run": an earlier phase's change is the cause; give the phase id to return to
  (or "base") in "rollback_to".
{execute_fix}
Reply with exactly one JSON object and nothing else:
{{"action": "...", "confidence": 0.0-1.0, "reasoning": "...", "hint": "..."{fix_key}}}"""

EXECUTE_FIX = """\
- "execute_fix": the worktree is in a state a command fixes; give "fix":
  {"type": "git", "args": ["checkout" | "reset" | "stash" | "clean" | "merge", ...]} or
  {"type": "file", "args": ["rm" | "mkdir" | "cp" | "mv", path, ...]} (paths inside the
  repository)."""

PLANNER_SYSTEM = """\
You are the Planner in Autopack. A phase of a plan failed in the same way more than
once: its approach is flawed. Revise the phase so that a Builder can complete it: a
clearer description, concrete acceptance criteria and the approach to take. Stay within
the phase's allowed paths and deliverables.

Reply with exactly one JSON object and nothing else:
{"description": "...", "acceptance_criteria": ["..."], "approach": "...", "scope_paths": ["..."]}
("scope_paths" only if the phase needs different paths; widening them needs a person.)"""

HISTORY_CHARS = 600
DIFF_CHARS = 6000
OUTPUT_CHARS = 4000


class ReplyError(ValueError):
    """A Doctor or Planner reply that is not the JSON asked for."""


ANCHOR_CHARS = 512  # of the run's intention anchor, as a reminder


def _bullets(items) -> str:
    return "\n".join(f"- {item}" for item in items) or "- (none)"


def _history(failures: tuple[Failure, ...]) -> str:
    return "\n".join(
        f"- attempt {f.attempt} ({f.model or 'unknown model'}): {f.kind}, signature "
        f"{f.signature}: {f.message.strip()[:HISTORY_CHARS]}"
        for f in failures
    )


def _task(spec: PhaseSpec, approach: str = "") -> str:
    text = (
        f"# Goal of the run\n{spec.goal}\n\n"
        f"# Phase {spec.phase_id}: {spec.task_name}\n{spec.description}".rstrip()
        + f"\n\n# Allowed paths\n{_bullets(spec.scope_paths)}"
        f"\n\n# Deliverables\n{_bullets(spec.deliverables)}"
        f"\n\n# Acceptance criteria\n{_bullets(spec.acceptance_criteria)}"
    )
    return text + (f"\n\n# Approach\n{approach}" if approach else "")


def doctor_messages(
    spec: PhaseSpec,
    failures: tuple[Failure, ...],
    diagnostics: str,
    earlier_phases: list[str],
    anchor: str = "",
) -> list[dict[str, str]]:
    last = failures[-1]
    parts = [f"# Intention of the run\n{anchor[:ANCHOR_CHARS]}"] if anchor else []
    parts += [
        _task(spec, spec.approach),
        f"# Failed attempts\n{_history(failures)}",
        f"# The last change\n```diff\n{last.diff[:DIFF_CHARS] or '(no change was applied)'}\n```",
        f"# What the Builder was told\n{last.feedback.strip()[:OUTPUT_CHARS] or '(nothing)'}",
    ]
    if last.gate_output:
        parts.append(f"# Test output (end)\n```\n{last.gate_output[-OUTPUT_CHARS:]}\n```")
    if diagnostics:
        parts.append(f"# Diagnostics\n{diagnostics}")
    if earlier_phases:
        parts.append("# Completed phases (savepoints to roll back to)\n" + _bullets(earlier_phases))
    parts.append("Reply with the JSON object.")
    return [{"role": "user", "content": "\n\n".join(parts)}]


def doctor_system(allow_execute_fix: bool) -> str:
    return DOCTOR_SYSTEM.format(
        execute_fix=EXECUTE_FIX if allow_execute_fix else "",
        fix_key=', "fix": {...}' if allow_execute_fix else "",
    )


def _json_object(text: str) -> dict:
    match = re.search(r"\{.*\}", text, re.S)
    if match is None:
        raise ReplyError("no JSON object in the reply")
    try:
        data = json.loads(match.group())
    except json.JSONDecodeError as exc:
        raise ReplyError(f"the JSON does not parse: {exc}") from None
    if not isinstance(data, dict):
        raise ReplyError("the reply is not a JSON object")
    return data


def parse_advice(text: str, model: str, strong: bool) -> Advice:
    data = _json_object(text)
    action = data.get("action")
    if action not in (*DOCTOR_ACTIONS, "execute_fix"):
        raise ReplyError(f"unknown action {action!r}; expected one of {', '.join(DOCTOR_ACTIONS)}")
    try:
        confidence = float(data.get("confidence", 0))
    except (TypeError, ValueError):
        raise ReplyError(f"confidence {data.get('confidence')!r} is not a number") from None
    fix = data.get("fix")
    if action == "execute_fix" and not (
        isinstance(fix, dict) and isinstance(fix.get("args"), list) and fix["args"]
    ):
        raise ReplyError('execute_fix needs "fix": {"type": ..., "args": [...]}')
    return Advice(
        action=action,
        confidence=min(1.0, max(0.0, confidence)),
        reasoning=str(data.get("reasoning", "")).strip()[:2000],
        model=model,
        strong=strong,
        hint=str(data.get("hint", "")).strip()[:2000],
        rollback_to=str(data.get("rollback_to", "") or "").strip(),
        fix=fix if action == "execute_fix" else None,
    )


@dataclass(frozen=True)
class Revision:
    description: str
    acceptance_criteria: tuple[str, ...]
    approach: str
    scope_paths: tuple[str, ...]
    refused_paths: tuple[str, ...]  # asked for, outside the original scope: not granted


def planner_messages(
    spec: PhaseSpec, failures: tuple[Failure, ...], reason: str, advice: str
) -> list[dict[str, str]]:
    parts = [
        _task(spec, spec.approach),
        f"# Why the phase is replanned\n{reason}",
        f"# Failed attempts\n{_history(failures)}",
    ]
    if advice:
        parts.append(f"# The Doctor's diagnosis\n{advice}")
    parts.append("Reply with the JSON object.")
    return [{"role": "user", "content": "\n\n".join(parts)}]


def parse_revision(text: str, spec: PhaseSpec) -> Revision:
    """The Planner's revision, kept within the phase's scope: paths outside it are
    refused (recorded, not granted); a person widens a scope."""
    data = _json_object(text)
    description = str(data.get("description", "")).strip()
    criteria = data.get("acceptance_criteria", [])
    if not description:
        raise ReplyError('the revision has no "description"')
    if not isinstance(criteria, list) or not all(isinstance(c, str) for c in criteria):
        raise ReplyError('"acceptance_criteria" must be a list of strings')
    asked = data.get("scope_paths") or list(spec.scope_paths)
    if not isinstance(asked, list) or not all(isinstance(p, str) and p.strip() for p in asked):
        raise ReplyError('"scope_paths" must be a list of paths')
    inside = tuple(p for p in asked if in_scope(p, spec.scope_paths))
    return Revision(
        description=description,
        acceptance_criteria=tuple(c.strip() for c in criteria if c.strip()),
        approach=str(data.get("approach", "")).strip(),
        scope_paths=inside or spec.scope_paths,
        refused_paths=tuple(p for p in asked if not in_scope(p, spec.scope_paths)),
    )
