"""The Doctor's `execute_fix`: typed, allowlisted commands on the worktree, never a
shell line. `git` commands restore the worktree (Autopack's own git, arguments checked
one by one); `file` commands run in the sandbox with their paths checked by the phase's
path policy first (a write outside the scope is refused like any edit)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from runs.engine.commands import CommandResult, run_command
from runs.engine.outcomes import PolicyViolation
from runs.engine.policy import PathPolicy
from runs.engine.sandbox import Sandbox

TIMEOUT = 60
# Each allowed command with the options it may take; `paths` says whether operands
# (repository paths) may follow.
GIT = {
    "checkout": ({"--"}, True),
    "reset": ({"--hard", "--mixed", "HEAD"}, False),
    "stash": ({"push", "--include-untracked", "-u"}, False),
    "clean": ({"-f", "-d", "-fd", "-df", "-n", "-x"}, True),
    "merge": ({"--abort"}, False),
}
FILE = {
    "rm": ({"-f", "-r", "-rf", "-fr"}, True),
    "mkdir": ({"-p"}, True),
    "cp": ({"-r", "-R"}, True),
    "mv": ({"-f"}, True),
}
_PLAIN = re.compile(r"^[\w@%+=:,./ -]+$")


class FixRefused(ValueError):
    pass


@dataclass(frozen=True)
class Fix:
    type: str
    command: str
    options: tuple[str, ...]
    paths: tuple[str, ...]

    def argv(self) -> list[str]:
        head = ["git", self.command] if self.type == "git" else [self.command]
        separator = ["--"] if self.paths else []
        return [*head, *self.options, *separator, *self.paths]

    def __str__(self) -> str:
        return " ".join(self.argv())


def parse_fix(data: dict, policy: PathPolicy) -> Fix:
    """The fix as an allowlisted command, or FixRefused saying why not."""
    kind, args = data.get("type"), data.get("args")
    table = {"git": GIT, "file": FILE}.get(kind)
    if table is None:
        raise FixRefused(f"fix type {kind!r} is not one of git, file")
    if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
        raise FixRefused("a fix needs its arguments as a list of strings")
    command, *rest = args
    if command not in table:
        raise FixRefused(f"{kind} {command!r} is not allowed (allowed: {', '.join(table)})")
    allowed, takes_paths = table[command]
    options = tuple(a for a in rest if a != "--" and (a.startswith("-") or a in allowed))
    operands = [a for a in rest if a != "--" and a not in options]
    for option in options:
        if option not in allowed:
            raise FixRefused(f"{kind} {command}: option {option!r} is not allowed")
    if operands and not takes_paths:
        raise FixRefused(f"{kind} {command} takes no paths ({', '.join(operands)})")
    if kind == "file" and not operands:
        raise FixRefused(f"file {command} needs a path")
    paths = []
    for operand in operands:
        if not _PLAIN.match(operand):
            raise FixRefused(f"{operand!r} is not a plain path")
        try:
            # Everything a file command names, sources included, must be the phase's to touch.
            paths.append(
                policy.check(operand, folder_ok=True)
                if kind == "file"
                else _inside(policy, operand)
            )
        except PolicyViolation as exc:
            raise FixRefused(f"{operand}: {exc.rule}") from None
    return Fix(kind, command, options, tuple(paths))


def _inside(policy: PathPolicy, operand: str) -> str:
    """A git operand: a path in the worktree (git restores it from the savepoint)."""
    path = operand.strip().rstrip("/")
    if path.startswith("/") or ".." in Path(path).parts or ".git" in Path(path).parts:
        raise PolicyViolation(operand, "must be a path inside the repository")
    return path or "."


def run_fix(fix: Fix, root: Path, *, sandbox: bool) -> CommandResult:
    if fix.type == "git":
        return run_command(fix.argv(), root, TIMEOUT)
    spec = Sandbox(workdir=root)
    return spec.run(shlex.join(fix.argv()), TIMEOUT, isolated=sandbox)
