"""A run config written as a markdown plan that reads back as the same config.

Run fields go in front matter (the goal as the `# Title` when it is one line), each tier is
a `## heading`, each phase a `- task [tags]` item with its description indented under it
and its acceptance criteria as nested items. The text is read back before it is returned:
a config that markdown cannot express (a read-only path's reason, a phase's own token or
cost cap, a model list for escalation, a multi-line task, gaps in phase_index) is refused
with the fields that would change, never written half right.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from runs.config import PhaseConfig, RunConfig, parse_run_config
from runs.engine.plan_tags import written_tags
from runs.engine.plan_text import FENCE, escape
from runs.engine.plans import phase_ids, read_plan


class PlanWriteError(ValueError):
    """The config cannot be written as markdown that reads back the same."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def write_plan(data: Any) -> str:
    """The markdown plan of a run config (raises ConfigError if the config is invalid,
    PlanWriteError if markdown cannot hold it)."""
    config = parse_run_config(data)
    text = render(config)
    read = read_plan(text, base_dir=Path("."), check_repository=False)
    if read.errors:
        raise PlanWriteError([f"line {m.line} would read as: {m.message}" for m in read.errors])
    assert read.config is not None
    differences = _differences(
        config.model_dump(mode="json"), parse_run_config(read.config).model_dump(mode="json")
    )
    if differences:
        raise PlanWriteError(differences)
    return text


def render(config: RunConfig) -> str:
    lines: list[str] = []
    front = config.model_dump(exclude_unset=True, exclude={"tiers"})
    title = front.get("goal", "")
    if "\n" not in title and title.strip() == title and title:
        del front["goal"]
    else:
        title = ""
    if front:
        lines += ["---", *(f"{key}: {_front_value(value)}" for key, value in front.items())]
        lines += ["---", ""]
    if title:
        lines += [f"# {title}", ""]
    tiers = sorted(config.tiers, key=lambda tier: tier.tier_index)
    phases = [sorted(tier.phases, key=lambda phase: phase.phase_index) for tier in tiers]
    ids = iter(phase_ids([phase.task_name for tier in phases for phase in tier]))
    for tier, tier_phases in zip(tiers, phases, strict=True):
        lines += [f"## {tier.tier_name}", ""]
        for phase in tier_phases:
            lines += _phase(phase, next(ids))
        lines.append("")
    return "\n".join(lines)


def _phase(phase: PhaseConfig, auto_id: str) -> list[str]:
    lines = [" ".join(["-", escape(phase.task_name), *written_tags(phase, auto_id)])]
    fence = ""
    for line in phase.description.split("\n") if phase.description else []:
        opening = FENCE.match(line)
        if fence and line.lstrip(" ").startswith(fence):
            fence, opening = "", None
        lines.append(f"  {line if fence else escape(line)}" if line.strip() else "")
        fence = opening["fence"] if opening else fence
    lines += [f"  - {escape(criterion)}" for criterion in phase.acceptance_criteria]
    return lines


def _front_value(value: Any) -> str:
    """A value as front matter holds it: plain text when it reads back as that text."""
    if isinstance(value, Decimal):
        return str(value)  # a JSON number, read back as the same Decimal
    if isinstance(value, str) and value and value.strip() == value and "\n" not in value:
        try:
            json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, ensure_ascii=False)


def _differences(expected: Any, found: Any, path: str = "") -> list[str]:
    if isinstance(expected, dict) and isinstance(found, dict):
        return [
            difference
            for key in dict.fromkeys([*expected, *found])
            for difference in _differences(
                expected.get(key), found.get(key), f"{path}.{key}" if path else key
            )
        ]
    if isinstance(expected, list) and isinstance(found, list) and len(expected) == len(found):
        return [
            difference
            for index, (one, other) in enumerate(zip(expected, found, strict=True))
            for difference in _differences(one, other, f"{path}[{index}]")
        ]
    if expected == found:
        return []
    return [
        f"{path} cannot be written as markdown: it would read back as {found!r}, not {expected!r}"
    ]
