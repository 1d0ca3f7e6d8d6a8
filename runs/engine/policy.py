"""Which paths a phase may write. Checked before anything reaches disk, and again for
the symlinks a change created once it is on disk."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from runs.engine.outcomes import PolicyViolation
from runs.engine.protocols import Edit


def _normalise_scope(entry: str) -> str:
    entry = entry.strip().replace("\\", "/")
    while entry.startswith("./"):
        entry = entry[2:]
    return entry.rstrip("/") if entry not in ("", ".", "/") else ""


def _within(path: str, prefix: str) -> bool:
    return prefix == "" or path == prefix or path.startswith(prefix + "/")


def in_scope(path: str, scope: Iterable[str]) -> bool:
    """Whether `path` (or the folder it names) lies inside one of the scope's entries."""
    target = _normalise_scope(path)
    return any(_within(target, _normalise_scope(entry)) for entry in scope)


@dataclass(frozen=True)
class PathPolicy:
    root: Path
    scope: tuple[str, ...]
    read_only: tuple[str, ...] = ()

    def check(self, raw: str, folder_ok: bool = False) -> str:
        """Return the normalised relative path, or raise PolicyViolation naming the rule.
        A path that goes through symlinks is judged where it really leads as well. A
        folder is refused unless `folder_ok` (edits name files)."""
        path = raw.strip().replace("\\", "/")
        if not path:
            raise PolicyViolation(raw, "empty path")
        if control := next((c for c in path if ord(c) < 32 or ord(c) == 127), None):
            raise PolicyViolation(
                raw.encode("unicode_escape").decode(),
                f"contains the control character {control!r}; paths are plain file names",
            )
        if (
            path.startswith("/")
            or PurePosixPath(path).is_absolute()
            or (len(path) > 1 and path[1] == ":")
        ):
            raise PolicyViolation(
                raw, "absolute paths are not allowed; use a path relative to the repository root"
            )
        parts = [part for part in PurePosixPath(path).parts if part not in ("", ".")]
        if ".." in parts:
            raise PolicyViolation(raw, "'..' is not allowed in paths")
        if ".git" in parts:
            raise PolicyViolation(raw, "nothing under .git/ may be written")
        relative = "/".join(parts)
        self._check_rules(raw, relative, "")
        if (self.root / relative).is_dir() and not folder_ok:
            raise PolicyViolation(raw, "is a directory; edits name the files inside it")
        real = self._real(raw, relative)
        if real != relative:
            self._check_rules(raw, real, f"leads through a symlink to {real}, which is ")
        return relative

    def check_edit(self, edit: Edit) -> Edit:
        """`edit` with its path, and a rename's source, checked and normalised."""
        source = None if edit.source is None else self.check(edit.source)
        return replace(edit, path=self.check(edit.path), source=source)

    def check_links(self, paths: Iterable[str]) -> None:
        """After a change is on disk: none of its paths may be a symlink leading out of the
        worktree or into git metadata (a diff can create one)."""
        for path in paths:
            if (self.root / path).is_symlink():
                target = os.readlink(self.root / path)
                self._real(path, path, f"is a symlink to {target}, which ")

    def _check_rules(self, raw: str, relative: str, via: str) -> None:
        for entry in self.read_only:
            if _within(relative, _normalise_scope(entry)):
                raise PolicyViolation(
                    raw, f"{via}read-only context ({entry}) may be read, not written"
                )
        scope = [_normalise_scope(entry) for entry in self.scope]
        if not any(_within(relative, entry) for entry in scope):
            allowed = ", ".join(self.scope) or "(none)"
            raise PolicyViolation(
                raw, f"{via or 'is '}outside the phase's scope (allowed paths: {allowed})"
            )

    def _real(self, raw: str, relative: str, how: str = "goes through a symlink that ") -> str:
        """Where `relative` really leads, relative to the root; refused when that is
        outside the worktree or inside git metadata."""
        root = os.path.realpath(self.root)
        real = os.path.realpath(os.path.join(root, relative))
        if real == root:
            return ""
        if not real.startswith(root + os.sep):
            raise PolicyViolation(raw, how + "leaves the worktree")
        inside = os.path.relpath(real, root).replace(os.sep, "/")
        if ".git" in inside.split("/"):
            raise PolicyViolation(raw, how + "leads into git metadata")
        return inside
