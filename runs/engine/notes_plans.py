"""Plans from notes: the Planner turns a person's free text into a markdown plan, which is
then read like any other (`plans.read_plan`) and held to more than a person's plan is.

A model-made plan must also give every phase an explicit `[paths:...]` whose entries all
exist in the repository (a missing path is an error here, not the reader's "the phase may
create it" warning), `[deliverables:...]` inside those paths, at least one acceptance
criterion and a test command (its own `[test:...]`, else the run's or the detected one),
and carry no front matter (the run's own settings are the person's to give). A plan with
problems is sent back once with each problem and its line; a second plan with problems is
refused with them. The calls and the reading are the caller's (`Ask`, `Read`), so this
runs without Django.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from runs.engine import context, plan_tags, plan_text, repomap
from runs.engine.gates.deliverables import is_path_like
from runs.engine.plan_scope import Repository
from runs.engine.plans import Message, PlanResult
from runs.engine.policy import in_scope
from runs.engine.protocols import LLMResponse

FILE_LIST = 400  # files named in the prompt; the rest are counted
MAP_CHARS = 12_000  # of the repository map in the prompt
MAP_FILES = 3_000  # source files read for the map, in path order
MAP_LINES = 30  # definition lines per file

PLANNER_SYSTEM = """\
You are the Planner in Autopack, an autonomous software build system. A person wrote notes
about work they want done in a repository. Turn the notes into a build plan in Autopack's
markdown form, grounded in the repository: its file list, a map of its code and its test
command follow the notes. You cannot ask for files; plan from what is shown.

The form, exactly:

# The goal of the whole plan, in one line

## A tier: a group of phases (each heading starts one; tiers run in order)

- The task of a phase, in one line [paths:src/app/,src/app.py] [deliverables:src/app/login.py]
  Lines indented under the task describe it: what to change and how.
  - An acceptance criterion: each nested bullet is one, checkable by a test or a reader
  - Another acceptance criterion

Rules:
- Each top-level list item is a phase: one piece of work a developer could finish and test
  on its own. Order the phases so that each builds on the ones before it.
- Every phase has [paths:...]: existing files or folders of the file list (comma-separated;
  a folder ends with /) that the phase may change. A new file goes in an existing folder.
- Every phase has [deliverables:...]: the files inside its paths that must exist when it is
  done (`file.py::name` also requires the file to define `name`).
- Every phase has at least one acceptance criterion.
- The project's test command runs for every phase; give a phase [test:COMMAND] only when it
  needs another command.
- Optional tags: [complexity:low|medium|high] (default medium), [category:NAME] (feature,
  tests, docs, security, ...; default feature), [read_only:docs/] (existing paths the phase
  may read but not change).
- No other tags, no front matter, no checkboxes. Write a literal bracket as \\[.

Reply with the plan and nothing else."""

Ask = Callable[[str, list[dict[str, str]]], LLMResponse]  # (system, messages) -> the reply
Read = Callable[[str], PlanResult]  # the markdown plan read into a run config

_FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,}) *(?:markdown|md) *$", re.IGNORECASE)


@dataclass
class NotesPlan:
    markdown: str  # the plan as the planner last wrote it
    result: PlanResult
    problems: list[Message]  # why the plan is refused; [] when it is accepted
    calls: int
    sent_back: list[Message] = field(default_factory=list)  # the first plan's problems

    @property
    def accepted(self) -> bool:
        return not self.problems


def plan_from_notes(
    notes: str,
    repository: Repository,
    test_command: str,
    ask: Ask,
    read: Read,
    progress: Callable[[str], None] = lambda _: None,
) -> NotesPlan:
    """The Planner's plan for `notes`: accepted, or refused with its problems after one
    correction. `test_command` is the one phases without their own get ("" if none)."""
    messages = [{"role": "user", "content": user_prompt(notes, repository, test_command)}]
    sent_back: list[Message] = []
    calls = 0
    while True:
        reply = ask(PLANNER_SYSTEM, messages)
        calls += 1
        markdown = extract_markdown(reply.text)
        result = read(markdown)
        problems = check(markdown, result, repository, test_command)
        if reply.truncated:
            cut = "the reply was cut off at its output limit: write a shorter plan, whole"
            problems.insert(0, Message(0, "error", cut))
        if not problems or sent_back:
            return NotesPlan(markdown, result, problems, calls, sent_back)
        sent_back = problems
        count = len(problems)
        progress(f"the plan had {count} problem{'s' * (count > 1)}; sent back to the planner once")
        messages = [
            *messages,
            {"role": "assistant", "content": reply.text},
            {"role": "user", "content": correction(problems)},
        ]


def user_prompt(notes: str, repository: Repository, test_command: str) -> str:
    files = repository.files
    listed = "\n".join(files[:FILE_LIST])
    if len(files) > FILE_LIST:
        listed += f"\n… and {len(files) - FILE_LIST} more"
    tests = (
        f"`{test_command}` runs for every phase; give a phase [test:COMMAND] only when it "
        "needs another."
        if test_command
        else "None was detected and none is set: give every phase [test:COMMAND]."
    )
    return (
        f"# Notes\n\n{notes.strip()}\n\n"
        f"# Files in the repository ({len(files)})\n\n{listed or '(none)'}\n\n"
        f"# Map of the code\n\n{repository_map(repository, notes) or '(no source files)'}\n\n"
        f"# Test command\n\n{tests}\n"
    )


def repository_map(repository: Repository, notes: str, limit: int = MAP_CHARS) -> str:
    """The definitions of the repository's most central files (PageRank over who uses
    whose names, leaning towards the names the notes mention), within `limit` characters."""
    tags: dict[str, list[repomap.Tag]] = {}
    for path in [p for p in repository.files if repomap.language_of(p)][:MAP_FILES]:
        text = context.readable(repository.root, path)
        if text is not None:
            tags[path] = repository.index.tags(path, text)
    ranks = repomap.rank_files(tags, idents=repomap.identifiers(notes))
    defining = sorted(
        (path for path in tags if any(tag.kind == "def" for tag in tags[path])),
        key=lambda path: (-ranks[path], path),
    )
    shown: list[str] = []
    size = 0
    for path in defining:
        block = repomap.render_map(path, tags[path], limit=MAP_LINES)
        if size + len(block) > limit:
            break
        shown.append(block)
        size += len(block) + 1
    if len(shown) < len(defining):
        shown.append(f"… and {len(defining) - len(shown)} more files with definitions")
    return "\n".join(shown)


def extract_markdown(reply: str) -> str:
    """The plan in a reply: the inside of its ```markdown (or ```md) fence, up to the last
    closing fence (the plan may hold fences of its own), else the whole reply."""
    lines = reply.replace("\r\n", "\n").split("\n")
    for start, line in enumerate(lines):
        opening = _FENCE.match(line)
        if opening is None:
            continue
        fence = opening["fence"]
        closes = re.compile(f" {{0,3}}{re.escape(fence[0])}{{{len(fence)},}} *")
        closing = [n for n in range(start + 1, len(lines)) if closes.fullmatch(lines[n])]
        end = closing[-1] if closing else len(lines)
        return "\n".join(lines[start + 1 : end]).strip("\n") + "\n"
    return reply.strip() + "\n"


def check(
    markdown: str, result: PlanResult, repository: Repository, test_command: str
) -> list[Message]:
    """The reader's errors and what a model-made plan must give besides (module doc), by
    line."""
    problems = list(result.errors)
    document = plan_text.parse(markdown)
    for line, key, _ in document.front:
        problems.append(
            Message(
                line,
                "error",
                f"front matter ({key}:) is not for the planner: the person gives the run's "
                "settings; start the plan with its `# Goal` title",
            )
        )
    for section in document.sections:
        for item in section.items:
            if not item.checked:
                problems += _phase_problems(item, result, repository, test_command)
    return sorted(problems, key=lambda message: message.line)


def _phase_problems(
    item: plan_text.Item, result: PlanResult, repository: Repository, test_command: str
) -> list[Message]:
    # The tags of an item are read as plans.read_plan reads them; bad ones it reported.
    parts = [item.title, *(part for part in item.description if not part.code), *item.criteria]
    tags = [
        (part.line, name, value)
        for part in parts
        for name, value in plan_text.split_tags(part.text)[1]
    ]
    values, _ = plan_tags.tag_values(tags)
    written = {name.lower() for _, name, _ in tags}
    found: list[str] = []
    paths = values.get("paths", [])
    reported = any(m.line == item.line and "[paths" in m.message for m in result.errors)
    if "paths" not in written and not reported:
        found.append(
            "no [paths:...]: name the existing files or folders (from the file list) "
            "that this phase may change"
        )
    found += [
        f"[paths] {path} is not in the repository: name files or folders of the file "
        "list (a new file goes in an existing folder)"
        for path in paths
        if not repository.has(path)
    ]
    if "deliverables" not in written:
        found.append("no [deliverables:...]: name the files this phase must leave in place")
    for entry in values.get("deliverables", []):
        file = entry.split("::", 1)[0].strip()
        if paths and is_path_like(entry) and not in_scope(file, paths):
            found.append(
                f"[deliverables] {file} is outside the phase's [paths]: the phase could "
                "not write it; add it to [paths] or drop it"
            )
    if not any(plan_text.split_tags(part.text)[0] for part in item.criteria):
        found.append(
            "no acceptance criteria: add at least one nested bullet saying how to tell "
            "that the phase is done"
        )
    if "test" not in written and not test_command:
        found.append(
            "no test command: none is detected or set for this repository, so give the "
            "phase [test:COMMAND]"
        )
    return [Message(item.line, "error", problem) for problem in found]


def correction(problems: list[Message]) -> str:
    listed = "\n".join(f"- {where(problem.line)}: {problem.message}" for problem in problems)
    return (
        "The plan has these problems (line numbers count the lines of the plan itself, "
        f"from its first line):\n{listed}\n\n"
        "Reply with the whole corrected plan, in the same form, and nothing else."
    )


def where(line: int) -> str:
    return f"line {line}" if line else "the plan as a whole"
