"""The words sent to the Builder and the Auditor."""

from __future__ import annotations

from runs.engine.context import Context
from runs.engine.protocols import GateResult
from runs.engine.spec import AttemptPlan

BUILDER_SYSTEM = """\
You are the Builder in Autopack, an autonomous software build system. You change code in
a git repository to complete one phase of a plan. Your changes are applied only inside
the allowed paths, then the project's tests and an Auditor review them.

{format_instructions}"""

AUDITOR_SYSTEM = """\
You are the Auditor in Autopack. You review one change made by the Builder for a phase of
a plan: decide whether it completes the task and meets the acceptance criteria, without
breaking anything. The automatic gates (tests, deliverables) have already run; their
results are included.

Reply with exactly one JSON object and nothing else:
{"verdict": "approve", "reasons": ["..."]}
or
{"verdict": "reject", "reasons": ["what is wrong and what to change", "..."]}
Reject only for real problems; give concrete reasons the Builder can act on."""

# Sections that come from the project's history, not from the run: a replay leaves them
# out of the key it matches recorded requests by (runs/engine/recording.py).
LESSONS_HEADING = "# Lessons from earlier failures in this project"
MEMORY_HEADING = "# From the project's memory"


def _bullets(items: list[str] | tuple[str, ...]) -> str:
    return "\n".join(f"- {item}" for item in items) or "- (none)"


def builder_messages(plan: AttemptPlan, context: Context) -> list[dict[str, str]]:
    spec = plan.spec
    parts = [f"# Intention of the run\n{plan.anchor}"] if plan.anchor else []
    parts += [
        f"# Goal of the run\n{spec.goal}",
        f"# Your task: {spec.task_name}\n{spec.description}".rstrip(),
        f"# Allowed paths (you may create and edit files only here)\n{_bullets(spec.scope_paths)}",
        f"# Deliverables\n{_bullets(spec.deliverables)}",
        f"# Acceptance criteria\n{_bullets(spec.acceptance_criteria)}",
    ]
    if spec.approach:
        parts.append(f"# Approach\n{spec.approach}")
    if plan.hints:
        parts.append(f"{LESSONS_HEADING}\n" + _bullets(plan.hints))
    if plan.memories:
        parts.append(
            f"{MEMORY_HEADING} (earlier runs and phases, most relevant first)\n"
            + _bullets(plan.memories)
        )
    files = "\n\n".join(
        f"{path} ({note})\n```\n{content}\n```" for path, note, content in context.files
    )
    parts.append("# Current files\n" + (files or "(no files exist yet in the allowed paths)"))
    if context.maps:
        maps = "\n\n".join(f"{note}: {content}" for _, note, content in context.maps)
        parts.append(
            "# Files shown as their map (they did not fit whole)\n"
            "Their definitions with line numbers. To edit one, first ask for it: reply with "
            "only a line `NEED FILES: path, path` and the next attempt shows them whole.\n\n" + maps
        )
    if context.left_out:
        parts.append(
            "# Files not shown (same: ask with `NEED FILES:` if you need one)\n"
            + _bullets([f"{path}: {reason}" for path, reason in context.left_out])
        )
    if context.withheld:
        parts.append(
            "# Files not shown (they look like secrets; the project does not send them to "
            "model providers)\n" + _bullets(context.withheld)
        )
    if plan.history:
        parts.append("# Earlier failed attempts of this phase\n" + _bullets(plan.history))
    if plan.feedback:
        parts.append(
            f"# Your previous attempt failed (attempt {plan.number - 1})\n"
            f"{plan.feedback}\n\nFix this in your new reply."
        )
    if plan.recovery_hint:
        parts.append(f"# Diagnosis of the last failure\n{plan.recovery_hint}")
    parts.append("Reply with your edits now.")
    return [{"role": "user", "content": "\n\n".join(parts)}]


def auditor_messages(
    plan: AttemptPlan, criteria: list[str], diff: str, gates: list[GateResult]
) -> list[dict[str, str]]:
    spec = plan.spec
    gate_lines = "\n".join(
        f"- {g.name}: {'passed' if g.passed else 'FAILED'}: {g.summary}" for g in gates
    )
    intention = f"# Intention of the run\n{plan.anchor}\n\n" if plan.anchor else ""
    text = (
        intention + f"# Task: {spec.task_name}\n{spec.description}\n\n"
        f"# Acceptance criteria\n{_bullets(spec.acceptance_criteria)}\n\n"
        f"# Deliverables to check by reading the change\n{_bullets(criteria)}\n\n"
        f"# Gate results\n{gate_lines or '- (no gates ran)'}\n\n"
        f"# The change\n```diff\n{diff or '(no changes)'}\n```\n\n"
        'Reply with the JSON object: {"verdict": "approve" | "reject", "reasons": [...]}'
    )
    return [{"role": "user", "content": text}]
