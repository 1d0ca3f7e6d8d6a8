"""Scripted models that validate the benchmark harness itself (`autopack bench --model`).

No model runs: each answers the Builder from the task's reference solution, read from a
JSON file the harness writes outside the task's repository ({"files": {path: [content at
the base or null, reference content]}}):

- `oracle`: the reference; every task should pass at the first try.
- `mutant`: the reference with one function left unimplemented; no task should pass.
- `fix-on-feedback`: the mutant first, the reference once the prompt carries the previous
  attempt's failure (the test output); every task should pass at the second try.
- `malformed`: a reply no edit format accepts; every task fails as malformed.

Replies are written in the edit format the Builder's system prompt asks for. The Auditor
always approves (the tests decide a benchmark task).
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

from tree_sitter import Node

from runs.engine import repomap
from runs.engine.edits import unified_diff, whole_file
from runs.engine.outcomes import ConfigurationError
from runs.engine.protocols import LLMRequest, LLMResponse

KINDS = ("oracle", "mutant", "fix-on-feedback", "malformed")
MALFORMED = "I would rewrite the solution to satisfy the tests, but I will not show the edit."
APPROVE = json.dumps({"verdict": "approve", "reasons": ["scripted benchmark model"]})
# What runs/engine/prompts.py heads the previous attempt's failure with.
PREVIOUS_FAILURE = "# Your previous attempt failed"
# A function's body, by language: the node type that holds it, and what replaces it.
UNIMPLEMENTED = {
    "python": ("block", 'raise NotImplementedError("left unimplemented by the mutant model")'),
    "go": ("block", '{\n\tpanic("left unimplemented by the mutant model")\n}'),
    "rust": ("block", '{\n    todo!("left unimplemented by the mutant model")\n}'),
    "javascript": (
        "statement_block",
        '{\n  throw new Error("left unimplemented by the mutant model");\n}',
    ),
}
FUNCTIONS = {
    "function_definition",  # python
    "function_declaration",  # go, javascript
    "method_declaration",  # go
    "function_item",  # rust
    "method_definition",  # javascript
    "function_expression",  # javascript
    "generator_function_declaration",  # javascript
    "arrow_function",  # javascript: its body may be an expression, replaced by a block
}

Files = dict[str, tuple[str | None, str]]


class BenchModel:
    name = "bench"
    bills_tokens = False  # no model runs

    def __init__(self, kind: str, reference: Path) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown benchmark model {kind!r}; use one of {', '.join(KINDS)}")
        try:
            data = json.loads(reference.read_text())
            files = data["files"]
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"cannot read the reference solution {reference}: {exc}") from None
        self.kind = kind
        self.reference: Files = {path: (old, new) for path, (old, new) in files.items()}
        self.tested = frozenset(data.get("tested", ()))

    @property
    def notice(self) -> str:
        return f"benchmark model {self.kind}: replies come from the reference; no model runs"

    def complete(self, request: LLMRequest) -> LLMResponse:
        if request.role == "auditor":
            text = APPROVE
        elif request.role != "builder":
            raise ConfigurationError(
                f"the benchmark's {self.kind} model answers the Builder and the Auditor "
                f"only, and the {request.role} was asked"
            )
        elif self.kind == "malformed":
            text = MALFORMED
        else:
            prompt = "\n".join(m["content"] for m in request.messages)
            right = self.kind == "oracle" or (
                self.kind == "fix-on-feedback" and PREVIOUS_FAILURE in prompt
            )
            answer = self.reference if right else mutant(self.reference, self.tested)
            text = reply(answer, request.system)
        return LLMResponse(
            text=text,
            stop_reason="scripted",
            truncated=False,
            prompt_tokens=None,
            completion_tokens=None,
            total_tokens=None,
        )


def mutant(files: Files, tested: frozenset[str] = frozenset()) -> Files:
    """The reference with one function left unimplemented: of the functions the tests
    name (`tested`: normalised identifiers, see repomap.identifiers), or else of all,
    the one around the first line the reference changes, else the first, in the first
    file that has one. A reference without functions (Rust macros) is answered with the stub,
    marked so that the reply still changes the file."""
    for path, (old, new) in files.items():
        changed = mutate(path, old, new, tested)
        if changed is not None:
            return {**files, path: (old, changed)}
    stubs = {
        path: (old, f"{old.rstrip()}\n{_comment(path)} left unimplemented by the mutant model\n")
        for path, (old, _) in files.items()
        if old is not None
    }
    if not stubs:
        raise ConfigurationError(
            f"the mutant model found no function to leave unimplemented in {', '.join(files)}"
        )
    return stubs


def mutate(
    path: str, old: str | None, new: str, tested: frozenset[str] = frozenset()
) -> str | None:
    language = repomap.language_of(path)
    tree = repomap.syntax_tree(path, new)
    if tree is None or language not in UNIMPLEMENTED:
        return None
    body_type, replacement = UNIMPLEMENTED[language]
    functions = [n for n in _walk(tree) if n.type in FUNCTIONS and _body(n, body_type)]
    called = [f for f in functions if _name(f) in tested]
    functions = called or functions
    if not functions:
        return None
    first = _first_changed_line(old or "", new)
    around = [f for f in functions if f.start_point[0] <= first <= f.end_point[0]]
    target = around[-1] if around else functions[0]  # the innermost, else the first
    body = _body(target, body_type)
    data = new.encode()
    return (data[: body.start_byte] + replacement.encode() + data[body.end_byte :]).decode()


def _comment(path: str) -> str:
    return "#" if repomap.language_of(path) == "python" else "//"


def _name(function: Node) -> str:
    """The function's normalised name; an arrow function's is its variable's."""
    node = function.child_by_field_name("name")
    if (
        node is None
        and function.parent is not None
        and function.parent.type == "variable_declarator"
    ):
        node = function.parent.child_by_field_name("name")
    return repomap.normalise_ident(node.text.decode()) if node is not None else ""


def _body(function: Node, body_type: str) -> Node | None:
    body = function.child_by_field_name("body")
    if body is None or (body.type != body_type and function.type != "arrow_function"):
        return None
    return body


def _walk(node: Node):
    yield node
    for child in node.children:
        yield from _walk(child)


def _first_changed_line(old: str, new: str) -> int:
    for number, (a, b) in enumerate(zip(old.splitlines(), new.splitlines(), strict=False)):
        if a != b:
            return number
    return min(len(old.splitlines()), len(new.splitlines()))


def reply(files: Files, system: str) -> str:
    """The change from each file's base content to its new content, in the edit format
    the system prompt asks for."""
    if whole_file.INSTRUCTIONS in system:
        return "\n".join(f"{path}\n{_fenced(new)}" for path, (_, new) in files.items())
    if unified_diff.INSTRUCTIONS in system:
        return (
            "```diff\n"
            + "".join(_diff(path, old, new) for path, (old, new) in files.items())
            + "```\n"
        )
    return "\n".join(_search_replace(path, old, new) for path, (old, new) in files.items())


def _fenced(text: str) -> str:
    fence = "~~~~" if "```" in text else "```"
    return f"{fence}\n{text}{'' if text.endswith(chr(10)) else chr(10)}{fence}\n"


def _diff(path: str, old: str | None, new: str) -> str:
    lines = difflib.unified_diff(
        (old or "").splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile="/dev/null" if old is None else f"a/{path}",
        tofile=f"b/{path}",
    )
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )


def _search_replace(path: str, old: str | None, new: str) -> str:
    """One block per changed region with three lines of context (the whole file when
    a region's text is not unique in it); an empty SEARCH creates a new file."""
    if old is None:
        return _block(path, "", new)
    before, after = old.splitlines(keepends=True), new.splitlines(keepends=True)
    groups = difflib.SequenceMatcher(None, before, after, autojunk=False).get_grouped_opcodes(3)
    blocks = []
    for group in groups:
        search = "".join(before[group[0][1] : group[-1][2]])
        replace = "".join(after[group[0][3] : group[-1][4]])
        if not search.strip() or old.count(search) != 1:
            return _block(path, old, new)
        blocks.append(_block(path, search, replace))
    return "\n".join(blocks)


def _block(path: str, search: str, replace: str) -> str:
    def ending(text: str) -> str:
        return text if not text or text.endswith("\n") else text + "\n"

    return (
        f"{path}\n````\n<<<<<<< SEARCH\n{ending(search)}=======\n{ending(replace)}"
        ">>>>>>> REPLACE\n````\n"
    )
