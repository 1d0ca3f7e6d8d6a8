"""A plan's paths against its repository: whether a path exists, and a scope for a phase
that names none.

The inferred scope is what the phase's text names (files by `context.named_paths`, then
folders written with a slash, e.g. `notes/api/`); failing that, the best files of the
Builder's own ranking (`context.select`: lexical relevance, file names, definitions and
the repository map) among those that share a word with the task, at most INFERRED_FILES.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path, PurePosixPath

from runs.engine import context, lexical, repomap
from runs.engine.outcomes import RepositoryError
from runs.engine.spec import PhaseSpec
from runs.engine.workspace import list_files

INFERRED_FILES = 3

_FOLDER = re.compile(r"(?<![\w./-])((?:[\w.-]+/)+)(?![\w.-])")  # `notes/api/`, not a file


def clean_path(path: str) -> str:
    """A path as the scope keeps it: forward slashes, no leading `./`."""
    path = path.strip().replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return path


def path_problem(path: str) -> str:
    """Why `path` cannot be a path of the repository, or ""."""
    if PurePosixPath(path).is_absolute() or re.match(r"^[A-Za-z]:/", path):
        return f"{path!r} is absolute; write it relative to the repository"
    if ".." in PurePosixPath(path).parts:
        return f"{path!r} leads out of the repository (..)"
    return ""


class Repository:
    """A local git checkout's files (tracked, and new ones git does not ignore)."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise RepositoryError(f"the repository {root} is not a directory")
        try:
            self.files = sorted(list_files(root))
        except subprocess.CalledProcessError as exc:
            raise RepositoryError(
                f"cannot list the files of {root}: {exc.stderr.decode(errors='replace')}"
            ) from None
        self.root = root
        self.index = repomap.TagIndex()

    def has(self, path: str) -> bool:
        """Whether `path` is a file of the repository or a folder holding one."""
        prefix = clean_path(path).rstrip("/")
        if prefix in ("", "."):
            return True
        return any(file == prefix or file.startswith(prefix + "/") for file in self.files)

    def infer(
        self, task: str, description: str, criteria: list[str], deliverables: list[str]
    ) -> list[str]:
        """Scope paths for a phase that gives none (see the module's doc); [] if nothing
        in the repository matches its text."""
        spec = PhaseSpec(
            run_id="plan",
            phase_id="plan",
            goal="",
            task_name=task,
            description=description,
            category="",
            complexity="medium",
            scope_paths=("",),  # the whole repository is a candidate
            deliverables=tuple(deliverables),
            acceptance_criteria=tuple(criteria),
        )
        text = context.query_text(spec)
        named = self._named(text)
        if named:
            return named
        ranking = context.select(self.root, spec, budget_tokens=0, index=self.index).ranking
        documents = {}
        for path in ranking:
            documents[path] = lexical.document(path, context.readable(self.root, path) or "")
        relevant = lexical.bm25(lexical.terms(text), documents)
        return [path for path in ranking if relevant.get(path, 0) > 0][:INFERRED_FILES]

    def _named(self, text: str) -> list[str]:
        folders = []
        for match in _FOLDER.finditer(text.replace("\\", "/")):
            folder = clean_path(match.group(1))
            if folder and folder not in folders and self.has(folder):
                folders.append(folder)
        files = [
            path
            for path in context.named_paths(text, self.files)
            if not any(path.startswith(folder) for folder in folders)
        ]
        return files + folders
