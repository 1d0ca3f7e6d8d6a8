"""Detect a project's test command from the files at its root."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

PYTHON_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", "pytest.ini", "tox.ini", "conftest.py")


def detect_test_command(root: Path) -> str | None:
    if any((root / marker).exists() for marker in PYTHON_MARKERS) or any(
        root.glob("test*/**/*.py")
    ):
        return f"{shlex.quote(sys.executable)} -m pytest"
    package = root / "package.json"
    if package.exists():
        try:
            scripts = json.loads(package.read_text()).get("scripts", {})
        except (ValueError, AttributeError):
            scripts = {}
        if "test" in scripts:
            return "npm test"
    if (root / "go.mod").exists():
        return "go test ./..."
    if (root / "Cargo.toml").exists():
        return "cargo test"
    return None
