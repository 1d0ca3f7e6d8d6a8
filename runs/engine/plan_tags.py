"""The inline tags of a markdown plan's items, read into a phase's fields and written back
from them. `[name:value]` sets a field; `[approval]` and `[allow_binary]` are flags; list
tags take comma-separated entries and may be given more than once."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any

from runs.config import RUN_ID_PATTERN, PhaseConfig
from runs.engine.plan_scope import clean_path, path_problem

DEFAULT_COMPLEXITY = "medium"
DEFAULT_CATEGORY = "feature"
# tag -> an example value (None: a flag, written without one), in the order tags are written
TAGS: dict[str, str | None] = {
    "id": "add-login-form",
    "complexity": "low",
    "category": "tests",
    "paths": "src/,tests/",
    "deliverables": "src/login.py",
    "read_only": "docs/",
    "test": "pytest -q tests/test_login.py",
    "setup": "pip install -e .",
    "max_attempts": "3",
    "escalation": "progressive",
    "approval": None,
    "allow_binary": None,
}
LIST_TAGS = ("paths", "read_only", "deliverables")
CHOICES = {"complexity": ("low", "medium", "high"), "escalation": ("progressive", "best_first")}

Tag = tuple[int, str, str | None]  # line, name as written, value (None for a flag)


def did_you_mean(name: str, known: Iterable[str], form: str = "{}") -> str:
    """A near name to use instead of `name` (`form` writes it), or ""."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"did you mean {form.format(close[0])}?" if close else ""


def tag_values(tags: list[Tag]) -> tuple[dict[str, Any], list[tuple[int, str]]]:
    """The phase's fields from its tags by tag name, and (line, problem) for each bad tag."""
    values: dict[str, Any] = {}
    problems: list[tuple[int, str]] = []
    for line, written, raw in tags:
        name = written.lower()
        if name not in TAGS:
            problems.append(
                (
                    line,
                    f"unknown tag [{written}]: "
                    + (did_you_mean(name, TAGS, "[{}]") or f"use one of {_known_tags()}")
                    + " (write \\[ for a literal bracket)",
                )
            )
            continue
        try:
            value = _value(name, raw)
        except ValueError as exc:
            problems.append((line, f"[{written}{'' if raw is None else ':' + raw}]: {exc}"))
            continue
        if name in LIST_TAGS:
            values[name] = list(dict.fromkeys([*values.get(name, []), *value]))
        elif name in values:
            problems.append((line, f"[{name}] is given twice for this phase"))
        else:
            values[name] = value
    return values, problems


def _known_tags() -> str:
    return ", ".join(f"[{name}]" for name in TAGS)


def _value(name: str, value: str | None) -> Any:
    """The tag's value, checked; ValueError says what is wrong with it."""
    example = TAGS[name]
    if example is None:
        if value is not None:
            raise ValueError(f"takes no value: write [{name}]")
        return True
    if value is None or not value.strip():
        raise ValueError(f"needs a value, e.g. [{name}:{example}]")
    value = value.strip()
    if name in CHOICES:
        if value.lower() not in CHOICES[name]:
            raise ValueError(f"{value!r} is not one of {', '.join(CHOICES[name])}")
        return value.lower()
    if name in LIST_TAGS:
        return _entries(name, value)
    if name == "id" and not re.match(RUN_ID_PATTERN, value):
        raise ValueError(
            "use at most 100 letters, digits, _ and -, starting with a letter or digit"
        )
    if name == "category" and not re.fullmatch(r"[\w.-]{1,100}", value):
        raise ValueError("use one word of at most 100 letters, digits, _ . and -")
    if name == "max_attempts":
        if not (value.isascii() and value.isdigit() and 1 <= int(value) <= 50):
            raise ValueError("must be a whole number from 1 to 50")
        return int(value)
    return value


def _entries(name: str, value: str) -> list[str]:
    paths = name != "deliverables"
    entries = [clean_path(entry) if paths else entry.strip() for entry in value.split(",")]
    if not all(entries):
        raise ValueError("has an empty entry; separate entries with one comma")
    for problem in map(path_problem, entries if paths else []):
        if problem:
            raise ValueError(problem)
    return entries


def phase_config(
    position: int, task: str, description: str, criteria: list[str], values: dict[str, Any]
) -> dict[str, Any]:
    """A run config's phase: the tags' fields over the defaults; fields left at their
    defaults are left out."""
    scope: dict[str, Any] = {"paths": values.get("paths", [])}
    for tag, key in (("deliverables", "deliverables"), ("read_only", "read_only_context")):
        if values.get(tag):
            scope[key] = values[tag]
    config: dict[str, Any] = {
        "phase_id": values["id"],
        "phase_index": position,
        "task_name": task,
        "task_category": values.get("category", DEFAULT_CATEGORY),
        "complexity": values.get("complexity", DEFAULT_COMPLEXITY),
        "scope": scope,
    }
    optional = {
        "description": description,
        "acceptance_criteria": criteria,
        "test_command": values.get("test"),
        "setup_command": values.get("setup"),
        "approval_required": values.get("approval"),
        "allow_binary": values.get("allow_binary"),
        "max_attempts": values.get("max_attempts"),
        "escalation_policy": values.get("escalation"),
    }
    return config | {key: value for key, value in optional.items() if value}


def written_tags(phase: PhaseConfig, auto_id: str) -> list[str]:
    """The tags that give `phase` its fields when read back (the id only when reading
    would not make it the same)."""
    values: dict[str, Any] = {
        "id": phase.phase_id if phase.phase_id != auto_id else None,
        "complexity": phase.complexity if phase.complexity != DEFAULT_COMPLEXITY else None,
        "category": phase.task_category if phase.task_category != DEFAULT_CATEGORY else None,
        "paths": phase.scope.paths,
        "deliverables": phase.scope.deliverables,
        "read_only": [context.path for context in phase.scope.read_only_context],
        "test": phase.test_command,
        "setup": phase.setup_command,
        "max_attempts": phase.max_attempts,
        "escalation": phase.escalation_policy,
        "approval": phase.approval_required,
        "allow_binary": phase.allow_binary,
    }
    written = []
    for name, value in values.items():
        if value is True:
            written.append(f"[{name}]")
        elif isinstance(value, list) and value:
            written.append(f"[{name}:{','.join(value)}]")
        elif value and not isinstance(value, list):
            written.append(f"[{name}:{value}]")
    return written
