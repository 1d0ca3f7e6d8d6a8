"""Which paths a phase may write. Checked before anything reaches disk."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from runs.engine.outcomes import PolicyViolation


def _normalise_scope(entry: str) -> str:
    entry = entry.strip().replace("\\", "/")
    while entry.startswith("./"):
        entry = entry[2:]
    return entry.rstrip("/") if entry not in ("", ".", "/") else ""


def _within(path: str, prefix: str) -> bool:
    return prefix == "" or path == prefix or path.startswith(prefix + "/")


@dataclass(frozen=True)
class PathPolicy:
    root: Path
    scope: tuple[str, ...]
    read_only: tuple[str, ...] = ()

    def check(self, raw: str) -> str:
        """Return the normalised relative path, or raise PolicyViolation naming the rule."""
        path = raw.strip().replace("\\", "/")
        if not path:
            raise PolicyViolation(raw, "empty path")
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
        self._check_symlinks(raw, parts)
        for entry in self.read_only:
            if _within(relative, _normalise_scope(entry)):
                raise PolicyViolation(raw, f"read-only context ({entry}) may be read, not written")
        scope = [_normalise_scope(entry) for entry in self.scope]
        if not any(_within(relative, entry) for entry in scope):
            allowed = ", ".join(self.scope) or "(none)"
            raise PolicyViolation(raw, f"outside the phase's scope (allowed paths: {allowed})")
        return relative

    def _check_symlinks(self, raw: str, parts: list[str]) -> None:
        root = os.path.realpath(self.root)
        current = self.root
        for part in parts:
            current = current / part
            if current.is_symlink():
                target = os.path.realpath(current)
                if target != root and not target.startswith(root + os.sep):
                    raise PolicyViolation(raw, "goes through a symlink that leaves the worktree")
