"""The Python interpreters installed on this machine, and the one a project asks for."""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from runs.engine.toolchains.base import SetupFailed

EXECUTABLE = re.compile(r"^python3\.\d+$")
PROBE = "import sys; print('.'.join(map(str, sys.version_info[:3])), sys.base_prefix)"


@dataclass(frozen=True)
class Interpreter:
    path: Path
    version: Version
    prefix: Path  # what must be visible for it to run (its sys.base_prefix)

    def __str__(self) -> str:
        return f"Python {self.version} ({self.path})"


def _search_paths() -> list[Path]:
    own = Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    found = [own]
    for folder in ("/usr/bin", "/usr/local/bin"):
        found += sorted(Path(folder).glob("python3.*"))
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    found += sorted(pyenv.glob("*/bin/python3.*"))
    uv_managed = Path.home() / ".local" / "share" / "uv" / "python"
    found += sorted(uv_managed.glob("*/bin/python3.*"))
    return [p for p in found if EXECUTABLE.match(p.name)]


@functools.cache
def _probe(path: str) -> Interpreter | None:
    try:
        out = subprocess.run(
            [path, "-c", PROBE], capture_output=True, text=True, timeout=20, check=True
        ).stdout.split()
        return Interpreter(Path(path), Version(out[0]), Path(out[1]))
    except (OSError, subprocess.SubprocessError, IndexError, ValueError):
        return None


def installed(extra: tuple[str, ...] = ()) -> list[Interpreter]:
    """Usable interpreters, Autopack's own first, each real executable once."""
    seen: set[str] = set()
    found = []
    for path in [*map(Path, extra), *_search_paths()]:
        if not path.exists():
            continue
        real = os.path.realpath(path)
        if real in seen:
            continue
        seen.add(real)
        interpreter = _probe(str(path))
        if interpreter is not None:
            found.append(interpreter)
    return found


def choose(requires: str | None, pin: str | None, extra: tuple[str, ...] = ()) -> Interpreter:
    """The interpreter for a project: the `.python-version` pin when one matches, else
    Autopack's own Python when `requires-python` allows it, else the newest it allows."""
    candidates = installed(extra)
    try:
        allowed = SpecifierSet(requires or "")
    except InvalidSpecifier:
        raise SetupFailed(
            f"requires-python {requires!r} is not a valid version specifier"
        ) from None
    fitting = [c for c in candidates if allowed.contains(c.version, prereleases=True)]
    if pin:
        pinned = [
            c for c in fitting if str(c.version) == pin or str(c.version).startswith(pin + ".")
        ]
        if pinned:
            return max(pinned, key=lambda c: c.version)
    if fitting:
        return fitting[0] if fitting[0] == candidates[0] else max(fitting, key=lambda c: c.version)
    names = ", ".join(str(c.version) for c in candidates) or "none"
    raise SetupFailed(
        f"The project needs Python {requires} (requires-python), and no installed interpreter "
        f"matches (found: {names}).",
        hint="Install a matching Python on the worker (your package manager, pyenv or `uv "
        "python install`) and name it in AUTOPACK_PYTHONS, or set `setup_command`.",
    )
