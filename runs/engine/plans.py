"""Markdown plans read into run configs, deterministically (the rules users read are in
README.md, "Markdown plans").

- Each top-level list item (`-`, `*`, `+`, `1.`, `1)`, with or without a `[ ]` checkbox)
  is a phase; a checked `[x]` item is skipped, with a warning naming it. Its first line is
  the task; the lines that continue it are its description; items nested under it are its
  acceptance criteria, one each.
- Headings start tiers, in order; items before any heading are in the tier DEFAULT_TIER.
  A plan whose first heading is its only `#` heading, with no item before it, has that
  heading as its title: the goal, unless a goal is given (options or front matter).
- Tags anywhere in an item set its fields and are removed from its text (plan_tags); a phase
  without `[paths:...]` gets a scope inferred from the repository (plan_scope), reported
  in `inferred` and as a warning.
- Phase ids: `[id:...]`, else a slug of the task and 4 hex digits of its SHA-1 (`phase_ids`);
  the k-th phase with the same task text gets `-k` added.
- Run fields come from the options (`overrides`), then front matter (`key: value` lines
  between `---` lines at the top; values are JSON when they parse as JSON), then
  `defaults`.
Every problem is a Message with its line (0: the plan as a whole or an option); any error
means no config. The config is finally checked by `parse_run_config`.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from runs.config import ConfigError, RunConfig, is_git_url, parse_run_config
from runs.engine import plan_tags, plan_text
from runs.engine.outcomes import RepositoryError
from runs.engine.plan_scope import Repository

DEFAULT_TIER = "Plan"
SLUG_CHARS = 40
RUN_FIELDS = [name for name in RunConfig.model_fields if name != "tiers"]


@dataclass(frozen=True)
class Message:
    line: int  # 0: the plan as a whole, or an option given with it
    level: Literal["error", "warning"]
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "level": self.level, "message": self.message}


@dataclass
class PlanResult:
    config: dict[str, Any] | None  # None when there is an error
    messages: list[Message]
    inferred: dict[str, list[str]] = field(default_factory=dict)  # phase_id -> paths
    lines: dict[str, int] = field(default_factory=dict)  # phase_id -> the item's line

    @property
    def errors(self) -> list[Message]:
        return [m for m in self.messages if m.level == "error"]


def slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = re.sub(r"[^a-z0-9]+", " ", ascii_text.lower()).split()
    kept = ""
    for word in words:
        if kept and len(kept) + 1 + len(word) > SLUG_CHARS:
            break
        kept = f"{kept}-{word}" if kept else word[:SLUG_CHARS]
    return kept or "phase"


def short_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:4]


def phase_ids(tasks: list[str]) -> list[str]:
    """Ids from the tasks' own text, so that reordering or adding other phases leaves them
    as they are; the k-th phase with the same text gets `-k` added."""
    seen: Counter[str] = Counter()
    ids = []
    for task in tasks:
        base = f"{slug(task)}-{short_hash(task)}"
        seen[base] += 1
        ids.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return ids


@dataclass
class _Phase:
    line: int
    task: str
    description: str
    criteria: list[str]
    values: dict[str, Any]  # tag -> value
    tagged: set[str]  # the tags written, with good values or not


def read_plan(
    markdown: str,
    *,
    base_dir: Path,
    overrides: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
    check_repository: bool = True,
) -> PlanResult:
    """The run config of a markdown plan, with every problem found (see the module's doc).
    A relative repository path is taken from `base_dir`."""
    return _Reading(overrides or {}, defaults or {}).read(markdown, base_dir, check_repository)


class _Reading:
    def __init__(self, overrides: Mapping[str, Any], defaults: Mapping[str, Any]) -> None:
        self.overrides, self.defaults = overrides, defaults
        self.messages: list[Message] = []
        self.run_lines: dict[str, int] = {}
        self.tier_lines: list[int] = []
        self.phase_lines: list[list[int]] = []

    def error(self, line: int, message: str) -> None:
        self.messages.append(Message(line, "error", message))

    def warn(self, line: int, message: str) -> None:
        self.messages.append(Message(line, "warning", message))

    def read(self, markdown: str, base_dir: Path, check_repository: bool) -> PlanResult:
        document = plan_text.parse(markdown)
        for line, problem in document.problems:
            self.error(line, problem)
        for line in document.stray:
            self.warn(
                line,
                "this paragraph is in no list item, so no phase has it; indent it "
                "under an item to make it that item's description",
            )
        run = self._run_fields(document)
        tiers = self._tiers(document, run)
        phases = [phase for _, tier in tiers for phase in tier]
        ids = phase_ids([phase.task for phase in phases])
        first_line: dict[str, int] = {}
        for phase, auto_id in zip(phases, ids, strict=True):
            phase_id = phase.values.setdefault("id", auto_id)
            if phase_id in first_line:
                self.error(
                    phase.line,
                    f"phase id {phase_id!r} is already the id of the phase "
                    f"on line {first_line[phase_id]}; give this one another [id:...]",
                )
            first_line.setdefault(phase_id, phase.line)
        repository = self._repository(run, base_dir) if check_repository else None
        inferred = {}
        for phase in phases:
            if paths := self._scope(phase, repository, check_repository):
                inferred[phase.values["id"]] = paths
        config = {key: run[key] for key in RUN_FIELDS if key in run}
        config["tiers"] = [_tier(i, name, tier) for i, (name, tier) in enumerate(tiers)]
        if not self.failed:
            self._validate(config)
        self.messages.sort(key=lambda m: m.line)
        if self.failed:
            return PlanResult(None, self.messages)
        return PlanResult(config, self.messages, inferred, first_line)

    @property
    def failed(self) -> bool:
        return any(m.level == "error" for m in self.messages)

    def _run_fields(self, document: plan_text.Document) -> dict[str, Any]:
        given: dict[str, Any] = {}
        for line, key, raw in document.front:
            if key not in RUN_FIELDS:
                hint = (
                    "the phases come from the list items"
                    if key == "tiers"
                    else plan_tags.did_you_mean(key, RUN_FIELDS)
                    or "front matter holds the run config's fields (run_id, goal, workspace, "
                    "token_cap, ...; see README)"
                )
                self.error(line, f"unknown front matter key {key!r}: {hint}")
            elif key in given:
                self.error(line, f"front matter key {key!r} is given twice")
            else:
                given[key], self.run_lines[key] = _front_value(raw), line
        if {"workspace", "repo"} & self.overrides.keys():
            given.pop("workspace", None), given.pop("repo", None)
        given.update(self.overrides)
        for key, value in self.defaults.items():
            repository_given = key in ("workspace", "repo") and (
                {"workspace", "repo"} & given.keys()
            )
            if key not in given and not repository_given:
                given[key] = value
        return {key: given[key] for key in RUN_FIELDS if key in given}

    def _tiers(self, document: plan_text.Document, run: dict) -> list[tuple[str, list[_Phase]]]:
        sections = list(document.sections)
        first_level = [s for s in sections[1:] if s.level == 1]
        title = None
        if len(sections) > 1 and sections[1].level == 1 and len(first_level) == 1:
            if not sections[0].items:
                title = sections.pop(1)
                sections[0].items = title.items
        self._goal(run, title)
        tiers = []
        for section in sections:
            if section.line and "[" in section.name and plan_text.split_tags(section.name)[1]:
                self.warn(section.line, "tags are not read in headings; put them on the items")
            if section.line and not section.name:
                self.error(section.line, "this heading has no text to name its tier")
            phases = [self._phase(item) for item in section.items]
            phases = [phase for phase in phases if phase is not None]
            if not phases:
                if section.line:
                    self.warn(section.line, f"no phases under heading {section.name!r}: no tier")
                continue
            tiers.append((section.name or DEFAULT_TIER, phases))
            self.tier_lines.append(section.line)
            self.phase_lines.append([phase.line for phase in phases])
        if not tiers:
            self.error(0, "the plan has no phases: write each phase as a list item (`- task`)")
        return tiers

    def _goal(self, run: dict, title: plan_text.Section | None) -> None:
        if "goal" in run:
            if title is not None:
                self.warn(
                    title.line,
                    f"the title {title.name!r} is not the goal: the goal "
                    f"given ({str(run['goal'])[:80]!r}) is",
                )
        elif title is not None and title.name:
            run["goal"], self.run_lines["goal"] = title.name, title.line
        else:
            self.error(
                0,
                "the plan has no goal: give one (--goal, the goal field, `goal:` in "
                "the front matter) or start the plan with a single `# Goal` heading",
            )
        if "run_id" not in run:
            goal = str(run.get("goal", ""))
            run["run_id"] = f"{slug(goal)}-{short_hash(goal)}" if goal else "plan"

    def _phase(self, item: plan_text.Item) -> _Phase | None:
        task, title_tags = plan_text.split_tags(item.title.text)
        if item.checked:
            self.warn(item.line, f"skipped, checked as done: {task!r}")
            return None
        tags = [(item.line, name, value) for name, value in title_tags]
        description = []
        for part in item.description:
            text, found = (part.text, []) if part.code else plan_text.split_tags(part.text)
            tags += [(part.line, name, value) for name, value in found]
            if text or not part.text:
                description.append(text)
        criteria = []
        for part in item.criteria:
            text, found = plan_text.split_tags(part.text)
            tags += [(part.line, name, value) for name, value in found]
            criteria += [text] if text else []
        if not task:
            self.error(item.line, "this item has no task text, only tags")
        values, problems = plan_tags.tag_values(tags)
        for line, problem in problems:
            self.error(line, problem)
        written = {name.lower() for _, name, _ in tags}
        return _Phase(item.line, task, "\n".join(description).strip(), criteria, values, written)

    def _repository(self, run: dict, base_dir: Path) -> Repository | None:
        location = run.get("workspace") or run.get("repo")
        line = self.run_lines.get("workspace", self.run_lines.get("repo", 0))
        if not isinstance(location, str) or not location:
            self.error(
                line,
                "the plan names no repository: give one (--repo, the repository "
                "field, `repo` in the API) or `workspace:` in the front matter",
            )
            return None
        if is_git_url(location):
            self.warn(line, f"paths are not checked: the repository {location} is a git URL")
            return None
        try:
            return Repository((base_dir / location).expanduser().resolve())
        except RepositoryError as exc:
            self.error(line, f"{exc}; paths cannot be checked")
            return None

    def _scope(self, phase: _Phase, repository: Repository | None, checking: bool) -> list[str]:
        """Checks the phase's paths; returns the scope inferred for it, if it was."""
        for path in phase.values.get("paths", []) if repository else []:
            if not repository.has(path):
                self.warn(
                    phase.line,
                    f"[paths] {path} does not exist in the repository: the "
                    "phase can only create files there; check the spelling",
                )
        for path in phase.values.get("read_only", []) if repository else []:
            if not repository.has(path):
                self.error(phase.line, f"[read_only] {path} does not exist in the repository")
        if "paths" in phase.tagged or not phase.task:
            return []  # a bad [paths:...] tag was reported already
        deliverables = phase.values.get("deliverables", [])
        inferred = (
            repository.infer(phase.task, phase.description, phase.criteria, deliverables)
            if repository
            else []
        )
        if inferred:
            phase.values["paths"] = inferred
            self.warn(
                phase.line,
                f"no [paths:...]: scope inferred from the repository: "
                f"{', '.join(inferred)}; check it, or add [paths:...]",
            )
        elif checking:
            why = "nothing in the repository matches its words"
            if repository is None:
                why = "there is no local repository to infer a scope from"
            self.error(phase.line, f"no [paths:...] tag, and {why}: add [paths:...]")
        return inferred

    def _validate(self, config: dict) -> None:
        try:
            parse_run_config(config)
        except ConfigError as exc:
            for error in exc.errors:
                line, where = self._locate(error["path"])
                self.error(line, f"{where}: {error['message']}")

    def _locate(self, path: str) -> tuple[int, str]:
        found = re.match(r"tiers\[(\d+)\](?:\.phases\[(\d+)\])?\.?(.*)", path)
        if found is None:
            return self.run_lines.get(re.split(r"[.\[]", path)[0], 0), path
        tier, phase = int(found[1]), found[2]
        if tier >= len(self.tier_lines):
            return 0, path
        if phase is None or int(phase) >= len(self.phase_lines[tier]):
            return self.tier_lines[tier], found[3] or "tier"
        return self.phase_lines[tier][int(phase)], found[3] or "phase"


def _tier(index: int, name: str, phases: list[_Phase]) -> dict[str, Any]:
    return {
        "tier_index": index,
        "tier_name": name,
        "phases": [
            plan_tags.phase_config(i, phase.task, phase.description, phase.criteria, phase.values)
            for i, phase in enumerate(phases)
        ],
    }


def _front_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw
