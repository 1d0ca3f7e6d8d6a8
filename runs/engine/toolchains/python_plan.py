"""What a Python project declares it needs, read from its files without running them:
the project itself, its test dependencies (extras, dependency groups, requirement files,
tox), its lockfile and the Python version it asks for."""

from __future__ import annotations

import configparser
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.markers import InvalidMarker, Marker
from packaging.utils import canonicalize_name

TEST_GROUPS = ("test", "tests", "testing")
DEV_GROUPS = ("dev", "develop", "development", "devel")
LOCKFILES = ("uv.lock", "poetry.lock", "Pipfile.lock", "pdm.lock")
TEST_REQUIREMENTS = (
    "requirements/test*.txt",
    "requirements/testing*.txt",
    "requirements-test*.txt",
    "requirements_test*.txt",
    "test-requirements*.txt",
    "test_requirements*.txt",
    "requirements/tests*.txt",
)
DEV_REQUIREMENTS = (
    "requirements-dev*.txt",
    "requirements_dev*.txt",
    "dev-requirements*.txt",
    "requirements/dev*.txt",
    "requirements/development*.txt",
)
MANIFESTS = (
    "pyproject.toml",
    "setup.py",
    "setup.cfg",
    "requirements.txt",
    "tox.ini",
    "Pipfile",
    ".python-version",
    *LOCKFILES,
)
SETUP_PY_PYTHON = re.compile(r"python_requires\s*=\s*[\"']([^\"']+)[\"']")
SETUP_PY_NAME = re.compile(r"\bname\s*=\s*[\"']([^\"']+)[\"']")


@dataclass
class PythonPlan:
    installable: bool = False  # pyproject/setup.py/setup.cfg: the project can be installed
    name: str = ""  # canonical distribution name, when known
    source: str = ""  # the manifest uv reads the project's dependencies from
    requires_python: str | None = None
    python_pin: str | None = None
    lockfile: str = ""
    extras: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    requirement_files: list[str] = field(default_factory=list)
    requirements: list[str] = field(default_factory=list)  # single lines (tox, pdm groups)
    manifests: list[str] = field(default_factory=list)

    @property
    def declares_pytest(self) -> bool:
        return any(re.match(r"pytest\b(?![-_])", line.strip()) for line in self.requirements)


def _normal(name: str) -> str:
    return canonicalize_name(name)


def _pick(names: list[str]) -> list[str]:
    """Test groups when there are any, else dev groups."""
    tests = [n for n in names if _normal(n) in TEST_GROUPS]
    return tests or [n for n in names if _normal(n) in DEV_GROUPS]


def read_plan(root: Path) -> PythonPlan:
    plan = PythonPlan()
    pyproject = _toml(root / "pyproject.toml")
    cfg = _setup_cfg(root / "setup.cfg")
    setup_py = (
        (root / "setup.py").read_text(errors="replace") if (root / "setup.py").exists() else ""
    )
    project = pyproject.get("project", {})
    plan.installable = bool(project or "build-system" in pyproject or cfg.sections() or setup_py)
    plan.source = (
        next((f for f in ("pyproject.toml", "setup.py", "setup.cfg") if (root / f).exists()), "")
        if plan.installable
        else ""
    )
    name = project.get("name") or _cfg(cfg, "metadata", "name") or _match(SETUP_PY_NAME, setup_py)
    plan.name = _normal(name) if name else ""
    plan.requires_python = (
        project.get("requires-python")
        or _cfg(cfg, "options", "python_requires")
        or _match(SETUP_PY_PYTHON, setup_py)
    )
    if (root / ".python-version").exists():
        plan.python_pin = (root / ".python-version").read_text().split()[0].strip() or None
    plan.lockfile = next((f for f in LOCKFILES if (root / f).exists()), "")
    extras = list(project.get("optional-dependencies", {}))
    if cfg.has_section("options.extras_require"):
        extras += list(cfg["options.extras_require"])
    plan.extras = list(dict.fromkeys(_pick(extras)))
    plan.groups = _pick(list(pyproject.get("dependency-groups", {})))
    pdm_groups = pyproject.get("tool", {}).get("pdm", {}).get("dev-dependencies", {})
    for group in _pick(list(pdm_groups)):
        plan.requirements += [
            r for r in pdm_groups[group] if isinstance(r, str) and not r.startswith("-e")
        ]
    plan.requirement_files = _requirement_files(root)
    plan.requirements += _tox_deps(root / "tox.ini", plan.requirement_files)
    for group in plan.groups:
        plan.requirements += [
            r for r in pyproject["dependency-groups"][group] if isinstance(r, str)
        ]
    plan.manifests = sorted(
        {m for m in MANIFESTS if (root / m).is_file()} | set(plan.requirement_files)
    )
    return plan


def _toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def _setup_cfg(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(path.read_text())
    except (OSError, configparser.Error):
        return configparser.ConfigParser(interpolation=None)
    return parser


def _cfg(cfg: configparser.ConfigParser, section: str, key: str) -> str | None:
    value = cfg.get(section, key, fallback=None)
    return value.strip() or None if value else None


def _match(pattern: re.Pattern, text: str) -> str | None:
    match = pattern.search(text)
    return match.group(1) if match else None


def _requirement_files(root: Path) -> list[str]:
    """requirements.txt, and one file of test requirements (else of dev requirements):
    the plainest name, since variants such as `tests-min.txt` pin other versions."""

    def plainest(patterns: tuple[str, ...]) -> list[str]:
        files = {str(p.relative_to(root)) for pattern in patterns for p in root.glob(pattern)}
        files = {f for f in files if (root / f).is_file()}
        return [min(files, key=lambda f: (len(f), f))] if files else []

    main = ["requirements.txt"] if (root / "requirements.txt").is_file() else []
    return main + (plainest(TEST_REQUIREMENTS) or plainest(DEV_REQUIREMENTS))


def _tox_deps(path: Path, already: list[str]) -> list[str]:
    """`deps` of tox's [testenv], without factor-conditional lines, substitutions that
    cannot be resolved here, URLs, or requirement files already used."""
    parser = _setup_cfg(path)
    raw = parser.get("testenv", "deps", fallback="")
    deps = []
    for line in raw.splitlines():
        line = line.split("#", 1)[0].strip().replace("{toxinidir}/", "")
        if not line or re.match(r"^[\w,!.-]+:\s", line) or "{" in line or "://" in line:
            continue
        if line.startswith("-r"):
            if line[2:].strip() in already:
                continue
        deps.append(line)
    return deps


def lock_requirements(root: Path, lockfile: str) -> list[str]:
    """Exact pins from a poetry, Pipfile or pdm lockfile (uv.lock is exported by uv)."""
    path = root / lockfile
    if lockfile == "Pipfile.lock":
        data = json.loads(path.read_text())
        pins = []
        for section in ("default", "develop"):
            for name, entry in data.get(section, {}).items():
                version = entry.get("version", "")
                if version and not entry.get("editable"):
                    pins.append(_pin(name, version.lstrip("="), entry.get("markers")))
        return pins
    packages = _toml(path).get("package", [])
    pins = []
    for package in packages:
        name, version = package.get("name"), package.get("version")
        if not name or not version or package.get("optional") is True:
            continue
        marker = package.get("markers") or package.get("marker")
        pins.append(_pin(name, version, marker if isinstance(marker, str) else None))
    return pins


def _pin(name: str, version: str, marker: str | None) -> str:
    if marker:
        try:
            Marker(marker)
            return f"{name}=={version} ; {marker}"
        except InvalidMarker:
            pass
    return f"{name}=={version}"
