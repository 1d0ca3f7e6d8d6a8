"""What a Python project declares it needs, read from its files without running them:
the project itself, its test dependencies (extras, dependency groups, Poetry and PDM
groups, Pipfile, requirement files, tox), its lockfile and the Python version it asks
for. A file that cannot be read is a SetupFailed naming it, not a crash."""

from __future__ import annotations

import configparser
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.markers import InvalidMarker, Marker
from packaging.utils import canonicalize_name

from runs.engine.outcomes import SetupFailed

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
INCLUDE = re.compile(r"^\s*(?:-r|-c|--requirement|--constraint)[=\s]*(\S+)")


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
    requirements: list[str] = field(default_factory=list)  # single lines (tox, groups)
    manifests: list[str] = field(default_factory=list)


def _normal(name: str) -> str:
    return canonicalize_name(name)


def _pick(names: list[str]) -> list[str]:
    """Test groups when there are any, else dev groups."""
    tests = [n for n in names if _normal(n) in TEST_GROUPS]
    return tests or [n for n in names if _normal(n) in DEV_GROUPS]


def _table(data: Any, *keys: str) -> dict:
    """A nested TOML table, or {} when it is missing or not a table."""
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data if isinstance(data, dict) else {}


def _string(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def read_plan(root: Path) -> PythonPlan:
    plan = PythonPlan()
    pyproject = _toml(root / "pyproject.toml")
    cfg = _setup_cfg(root / "setup.cfg")
    setup_py = _text(root / "setup.py")
    project = _table(pyproject, "project")
    cfg_project = cfg.has_section("metadata") or cfg.has_section("options")
    plan.installable = bool(project or "build-system" in pyproject or cfg_project or setup_py)
    if project or "build-system" in pyproject:
        plan.source = "pyproject.toml"
    elif plan.installable:
        plan.source = "setup.py" if setup_py else "setup.cfg"
    name = (
        _string(project.get("name"))
        or _cfg(cfg, "metadata", "name")
        or _match(SETUP_PY_NAME, setup_py)
    )
    plan.name = _normal(name) if name else ""
    plan.requires_python = (
        _string(project.get("requires-python"))
        or _cfg(cfg, "options", "python_requires")
        or _match(SETUP_PY_PYTHON, setup_py)
    )
    pin = _text(root / ".python-version").split()
    plan.python_pin = pin[0] if pin else None
    plan.lockfile = next((f for f in LOCKFILES if (root / f).is_file()), "")
    extras = list(_table(project, "optional-dependencies"))
    if cfg.has_section("options.extras_require"):
        extras += list(cfg["options.extras_require"])
    plan.extras = list(dict.fromkeys(_pick(extras)))
    groups = _table(pyproject, "dependency-groups")
    plan.groups = _pick(list(groups))
    for group in plan.groups:
        plan.requirements += _group(groups, group, set())
    plan.requirements += _pdm_groups(pyproject) + _poetry_groups(pyproject)
    plan.requirements += _pipfile(root / "Pipfile")
    plan.requirement_files = _requirement_files(root)
    plan.requirements += _tox_deps(root / "tox.ini", plan.requirement_files)
    plan.manifests = sorted(
        {m for m in MANIFESTS if (root / m).is_file()}
        | set(_with_includes(root, plan.requirement_files))
        | set(_dynamic_files(pyproject))
    )
    return plan


def _text(path: Path) -> str:
    try:
        return path.read_text(errors="replace") if path.is_file() else ""
    except OSError as exc:
        raise SetupFailed(f"{path.name} cannot be read: {exc}") from None


def _toml(path: Path) -> dict:
    text = _text(path)
    try:
        return tomllib.loads(text) if text else {}
    except tomllib.TOMLDecodeError as exc:
        raise SetupFailed(
            f"{path.name} is not valid TOML: {exc}", hint=f"Fix {path.name} in the repository."
        ) from None


def _setup_cfg(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(_text(path))
    except configparser.Error as exc:
        raise SetupFailed(f"{path.name} cannot be parsed: {exc}") from None
    return parser


def _cfg(cfg: configparser.ConfigParser, section: str, key: str) -> str | None:
    return _string(cfg.get(section, key, fallback=None))


def _match(pattern: re.Pattern, text: str) -> str | None:
    match = pattern.search(text)
    return match.group(1) if match else None


def _group(groups: dict, name: str, seen: set[str]) -> list[str]:
    """A PEP 735 dependency group with the groups it includes."""
    if name in seen:
        return []
    seen.add(name)
    entries = groups.get(name) if isinstance(groups.get(name), list) else []
    requirements = []
    for entry in entries:
        if isinstance(entry, str):
            requirements.append(entry)
        elif isinstance(entry, dict) and isinstance(entry.get("include-group"), str):
            requirements += _group(groups, entry["include-group"], seen)
    return requirements


def _pdm_groups(pyproject: dict) -> list[str]:
    groups = _table(pyproject, "tool", "pdm", "dev-dependencies")
    return [
        r
        for group in _pick(list(groups))
        for r in (groups[group] if isinstance(groups[group], list) else [])
        if isinstance(r, str) and not r.startswith("-e")
    ]


def _poetry_groups(pyproject: dict) -> list[str]:
    """Poetry's test (else dev) dependency groups, its constraints written as PEP 508."""
    poetry = _table(pyproject, "tool", "poetry")
    groups = {
        name: _table(group, "dependencies") for name, group in _table(poetry, "group").items()
    }
    if "dev-dependencies" in poetry:
        groups.setdefault("dev", _table(poetry, "dev-dependencies"))
    return [
        requirement
        for group in _pick(list(groups))
        for name, spec in groups[group].items()
        if name != "python" and (requirement := _from_poetry(name, spec))
    ]


def _from_poetry(name: str, spec: Any) -> str:
    if isinstance(spec, dict):
        if {"path", "git", "url", "file"} & set(spec):
            return ""  # not from a registry
        spec = spec.get("version", "*")
    if not isinstance(spec, str):
        return ""
    spec = spec.strip()
    if spec in ("", "*"):
        return name
    if spec[0] in "^~" and re.fullmatch(r"[\^~]\d+(\.\d+)*", spec):
        parts = [int(p) for p in spec[1:].split(".")]
        if spec[0] == "~":
            upper = [parts[0], parts[1] + 1] if len(parts) > 1 else [parts[0] + 1]
        else:
            first = next((i for i, p in enumerate(parts) if p), len(parts) - 1)
            upper = [*parts[:first], parts[first] + 1]
        return f"{name}>={spec[1:]},<{'.'.join(map(str, upper))}"
    if re.fullmatch(r"\d+(\.\d+)*", spec):
        return f"{name}=={spec}"
    return f"{name}{spec}"


def _pipfile(path: Path) -> list[str]:
    """Pipfile's packages and dev-packages, when there is no Pipfile.lock to install."""
    pipfile = _toml(path)
    requirements = []
    for section in ("packages", "dev-packages"):
        for name, spec in _table(pipfile, section).items():
            version = spec.get("version", "*") if isinstance(spec, dict) else spec
            if isinstance(version, str):
                requirements.append(name if version.strip() in ("", "*") else f"{name}{version}")
    return requirements


def _requirement_files(root: Path) -> list[str]:
    """requirements.txt, and one file of test requirements (else of dev requirements):
    the plainest name, since variants such as `tests-min.txt` pin other versions."""

    def plainest(patterns: tuple[str, ...]) -> list[str]:
        files = {str(p.relative_to(root)) for pattern in patterns for p in root.glob(pattern)}
        files = {f for f in files if (root / f).is_file()}
        return [min(files, key=lambda f: (len(f), f))] if files else []

    main = ["requirements.txt"] if (root / "requirements.txt").is_file() else []
    return main + (plainest(TEST_REQUIREMENTS) or plainest(DEV_REQUIREMENTS))


def _with_includes(root: Path, files: list[str]) -> list[str]:
    """The requirement files and those they include with -r or -c, which decide the
    environment too."""
    found: list[str] = []
    pending = list(files)
    while pending:
        relative = pending.pop()
        path = root / relative
        if relative in found or not path.is_file():
            continue
        found.append(relative)
        for line in _text(path).splitlines():
            if match := INCLUDE.match(line):
                included = (path.parent / match.group(1)).resolve()
                if included.is_relative_to(root.resolve()):
                    pending.append(str(included.relative_to(root.resolve())))
    return found


def _dynamic_files(pyproject: dict) -> list[str]:
    """Files setuptools reads dependencies from (`dynamic` dependencies)."""
    dynamic = _table(pyproject, "tool", "setuptools", "dynamic")
    entries = [dynamic.get("dependencies"), *_table(dynamic, "optional-dependencies").values()]
    files: list[str] = []
    for entry in entries:
        listed = entry.get("file") if isinstance(entry, dict) else None
        files += (
            [listed] if isinstance(listed, str) else [f for f in listed or [] if isinstance(f, str)]
        )
    return files


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
        if line.startswith("-r") and line[2:].strip() in already:
            continue
        deps.append(line)
    return deps


def lock_requirements(root: Path, lockfile: str) -> list[str]:
    """Exact pins from a poetry, Pipfile or pdm lockfile (uv.lock is exported by uv)."""
    path = root / lockfile
    if lockfile == "Pipfile.lock":
        try:
            data = json.loads(_text(path))
        except ValueError as exc:
            raise SetupFailed(f"Pipfile.lock is not valid JSON: {exc}") from None
        pins = []
        for section in ("default", "develop"):
            for name, entry in _table(data, section).items():
                version = entry.get("version", "") if isinstance(entry, dict) else ""
                if isinstance(version, str) and version and not entry.get("editable"):
                    pins.append(_pin(name, version.lstrip("="), entry.get("markers")))
        return pins
    packages = [p for p in _toml(path).get("package", []) if isinstance(p, dict)]
    implied = _dependent_markers(packages)
    pins = []
    for package in packages:
        name, version = package.get("name"), package.get("version")
        if not isinstance(name, str) or not isinstance(version, str):
            continue
        if package.get("optional") is True:
            continue
        marker = package.get("markers") or package.get("marker")
        marker = marker if isinstance(marker, str) else implied.get(_normal(name))
        pins.append(_pin(name, version, marker))
    return pins


def _dependent_markers(packages: list[dict]) -> dict[str, str]:
    """Markers older poetry locks keep on the dependents' entries (pywin32 is required
    "sys_platform == 'win32'"): a package every dependent requires under a marker is
    installed only where one of those markers holds."""
    markers: dict[str, list[str | None]] = {}
    for package in packages:
        for name, spec in _table(package, "dependencies").items():
            marker = spec.get("markers") if isinstance(spec, dict) else None
            markers.setdefault(_normal(name), []).append(
                marker if isinstance(marker, str) else None
            )
    return {
        name: " or ".join(f"({m})" for m in dict.fromkeys(found))
        for name, found in markers.items()
        if found and all(found)
    }


def _pin(name: str, version: str, marker: str | None) -> str:
    if marker:
        try:
            Marker(marker)
            return f"{name}=={version} ; {marker}"
        except InvalidMarker:
            pass
    return f"{name}=={version}"
