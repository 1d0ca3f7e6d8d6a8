"""The deliverables gate: declared files exist and are not empty; `path::Name` entries
also define that symbol. Free-text deliverables are criteria for the Auditor instead."""

from __future__ import annotations

import ast
import re

from runs.engine.protocols import GateResult, Workspace

PATH_LIKE = re.compile(r"^[\w.@+-]+(/[\w.@+-]*)*/?$")


def is_path_like(entry: str) -> bool:
    entry = entry.strip()
    if "::" in entry:
        return is_path_like(entry.split("::", 1)[0])
    return bool(PATH_LIKE.match(entry)) and (
        "/" in entry or re.search(r"\.\w+$", entry) is not None
    )


def free_text(deliverables: list[str]) -> list[str]:
    return [d for d in deliverables if not is_path_like(d)]


def _python_defines(source: str, name: str) -> bool:
    tree = ast.parse(source)
    scope: list[ast.stmt] = tree.body
    for part in name.split("."):
        found = None
        for node in scope:
            if (
                isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                and node.name == part
            ):
                found = node
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id == part for t in targets):
                    found = node
        if found is None:
            return False
        scope = getattr(found, "body", [])
    return True


class DeliverablesGate:
    name = "deliverables"

    def __init__(self, deliverables: list[str]) -> None:
        self.entries = [d.strip() for d in deliverables if is_path_like(d)]

    def check(self, workspace: Workspace) -> GateResult:
        missing = [
            problem for entry in self.entries if (problem := self._problem(workspace, entry))
        ]
        if not missing:
            return GateResult(self.name, True, f"{len(self.entries)} deliverable(s) present")
        return GateResult(
            self.name,
            False,
            missing[0],
            feedback="Declared deliverables are missing:\n" + "\n".join(f"- {m}" for m in missing),
            details={"missing": missing},
        )

    @staticmethod
    def _problem(workspace: Workspace, entry: str) -> str:
        path, _, symbol = entry.partition("::")
        target = workspace.root / path
        if path.endswith("/"):
            if not target.is_dir() or not any(target.iterdir()):
                return f"{path} must be a directory with files in it"
            return ""
        text = workspace.read_text(path)
        if text is None:
            return f"{path} does not exist"
        if not text.strip():
            return f"{path} is empty"
        if not symbol:
            return ""
        if path.endswith(".py"):
            try:
                defined = _python_defines(text, symbol)
            except SyntaxError as exc:
                return f"{path} does not parse (line {exc.lineno}: {exc.msg})"
        else:
            defined = re.search(rf"\b{re.escape(symbol.split('.')[-1])}\b", text) is not None
        return "" if defined else f"{path} does not define {symbol}"
