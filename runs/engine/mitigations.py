"""Failures whose cause and fix can be read off the failure and the repository, matched
before the Doctor is asked. A mitigation names the fix; the caller carries it out. In
priority order:

- python_missing_dep: `No module named 'x'` for a module that is not the project's own.
  Declared by the manifest: the environment is stale and is rebuilt. Not declared: the
  Builder is told which distribution to add to which manifest.
- node_missing_dep: the same for a bare package specifier and package.json.
- wrong_working_dir: a test command names a path that does not exist from the root but
  under exactly one subdirectory; the command is run from there.
- missing_test_discovery: no tests ran, or the required ones did not, because the
  Builder wrote its tests where pytest does not collect them or under another name than
  the acceptance criteria give.
- scope_mismatch: a write refused as outside the phase's scope; names a file of the
  same name inside the scope, and says that needing the file itself means a replan.
- permission_error: a script the tests run is not executable; it is made executable,
  or, outside the scope, the Builder is told to call it through its interpreter.

Nothing here changes anything: it reads files under the worktree root and no more.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import sys
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath

from packaging.utils import canonicalize_name

from runs.engine.failures import Failure, FailureKind
from runs.engine.policy import in_scope

Paths = tuple[str, ...]
SKIPPED_FOLDERS = {".git", "node_modules", ".venv", "__pycache__"}
# Import names whose distribution is named otherwise; any other is its own distribution.
DISTRIBUTIONS = dict(
    pair.split("=")
    for pair in """yaml=PyYAML PIL=Pillow cv2=opencv-python sklearn=scikit-learn
    bs4=beautifulsoup4 dateutil=python-dateutil dotenv=python-dotenv jwt=PyJWT attr=attrs
    google=protobuf Crypto=pycryptodome magic=python-magic
    serial=pyserial usb=pyusb OpenSSL=pyOpenSSL jose=python-jose docx=python-docx
    git=GitPython""".split()
)
NODE_SECTIONS = ("dependencies", "devDependencies", "peerDependencies", "optionalDependencies")
PYTEST_FILES = ["test_*.py", "*_test.py"]

_PYTHON_MISSING = re.compile(r"(?:ModuleNotFoundError|ImportError): No module named '?([\w.]+)")
# A bare specifier: not relative, not absolute, no `node:` or `file:` scheme.
_NODE_MISSING = re.compile(r"Cannot find (?:module|package) ['\"]([^'\".:/\s][^'\":\s]*)['\"]")
_NODE_IMPORTER = re.compile(r"\s*(?:imported from|Require stack:\s*-)\s*(\S+)")
_NODE_TEST = re.compile(r"(?:^|/)(?:tests?|__tests__|spec)/|\.(?:test|spec)\.[cm]?[jt]sx?$")
_NOT_FOUND = re.compile(
    r"file or directory not found|No such file or directory|can't open|: not found"
)
_NO_TESTS = re.compile(r"no tests ran|collected 0 items|ran no tests", re.I)
_NOT_RUN = re.compile(r"No test matching (\S+) ran")
_REFUSED = re.compile(r"(.+?): [^\n]*outside the phase's scope")
_DENIED = re.compile(r"([^\s:'\"]+): Permission denied")


@dataclass(frozen=True)
class Mitigation:
    pattern: str  # one of PATTERNS
    action: str  # rebuild_environment | hint | set_test_directory | make_executable
    hint: str  # for the next Builder prompt, naming the file, package or path
    detail: dict  # the facts the caller acts on


def match(failure: Failure, root: Path, scope: Paths, commands: Paths = ()) -> Mitigation | None:
    """The first pattern in PATTERNS that `failure` fits, or None. `root` is the worktree
    at the commit the attempt started from, `scope` the phase's allowed paths and
    `commands` its test commands."""
    given = (*commands, failure.details.get("command") or "")
    every = tuple(dict.fromkeys(command for command in given if command))
    for matcher in _MATCHERS.values():
        if found := matcher(failure, root, scope, every):
            return found
    return None


def _python_missing_dep(
    failure: Failure, root: Path, scope: Paths, commands: Paths
) -> Mitigation | None:
    text = _text(failure)
    found = _PYTHON_MISSING.search(text)
    if not found:
        return None
    module = found.group(1).rstrip(".")
    top = module.split(".")[0]
    package = DISTRIBUTIONS.get(top, top)
    # `google` is a namespace many distributions share: protobuf only when it is named.
    if top == "google" and "google.protobuf" not in text:
        return None
    if top in sys.stdlib_module_names or _own_module(root, top):
        return None
    manifests = _python_manifests(root)
    if manifests is None:
        return None
    detail = {"package": package, "module": module, "manifest": ""}
    declaring = next((m for m, _, names in manifests if canonicalize_name(package) in names), "")
    if declaring:
        hint = (
            f"`{module}` comes from {package}, which {declaring} already declares: the "
            "environment was stale and has been rebuilt, so do not change the dependencies."
        )
        detail["manifest"] = declaring
        return Mitigation("python_missing_dep", "rebuild_environment", hint, detail)
    missing = f"No module named '{module}'"
    if not manifests:
        hint = (
            f"{missing}: the project declares no dependencies; add {package} to [project] "
            "dependencies in pyproject.toml or to requirements.txt."
        )
        return Mitigation("python_missing_dep", "hint", hint, detail)
    manifest, section, _ = manifests[0]
    hint = _add(missing, package, section, manifest, scope)
    detail |= {"manifest": manifest, "section": section}
    return Mitigation("python_missing_dep", "hint", hint, detail)


def _add(missing: str, package: str, section: str, manifest: str, scope: Paths) -> str:
    """The hint to declare `package` in `manifest`, or, when the phase may not change the
    manifest, to do without it."""
    where = f"{section} in {manifest}" if section else manifest
    if in_scope(manifest, scope):
        return f"{missing}: add {package} to {where}."
    return (
        f"{missing}: {package} is not in {where}, and {_outside(manifest, scope)}. Do without "
        f"{package}, or the plan's scope must be widened to {manifest}."
    )


def _own_module(root: Path, name: str) -> bool:
    """Whether `name` is the project's own: a top-level or src/ module, or a package in
    some folder (a project run from a subdirectory)."""
    bases = (root, root / "src")
    if any((base / name).is_dir() or (base / f"{name}.py").is_file() for base in bases):
        return True
    return any((root / folder / name / "__init__.py").is_file() for folder in _folders(root, 3))


def _python_manifests(root: Path) -> list[tuple[str, str, set[str]]] | None:
    """Each manifest with the section to add a dependency to and the canonical names it
    declares, the one to add to first; None when one cannot be parsed."""
    found = []
    data, cfg = _toml(root / "pyproject.toml"), _ini(root / "setup.cfg")
    if data is None or cfg is None:
        return None
    project, poetry = data.get("project", {}), data.get("tool", {}).get("poetry", {})
    lists = [project.get("dependencies", []), *project.get("optional-dependencies", {}).values()]
    names = _names(
        entry
        for entries in lists + [*data.get("dependency-groups", {}).values()]
        for entry in entries
        if isinstance(entry, str)
    )
    tables = [poetry.get("dependencies", {}), poetry.get("dev-dependencies", {})]
    tables += [group.get("dependencies", {}) for group in poetry.get("group", {}).values()]
    names |= _names(name for table in tables for name in table)
    section = (
        "[project] dependencies" if project else "[tool.poetry.dependencies]" if poetry else ""
    )
    if section or names:
        found.append(("pyproject.toml", section or "[dependency-groups]", names))
    for path in sorted(root.glob("requirements*.txt"), key=lambda p: p.name != "requirements.txt"):
        found.append((path.name, "", _names(path.read_text(errors="replace").splitlines())))
    if cfg.has_section("options"):
        lines = cfg.get("options", "install_requires", fallback="").splitlines()
        if cfg.has_section("options.extras_require"):
            lines += "\n".join(cfg["options.extras_require"].values()).splitlines()
        found.append(("setup.cfg", "[options] install_requires", _names(lines)))
    return found


def _names(requirements: Iterable[str]) -> set[str]:
    """The canonical (PEP 503) names of requirement lines, skipping comments and options."""
    found = (re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line) for line in requirements)
    return {canonicalize_name(name.group(1)) for name in found if name}


def _node_missing_dep(
    failure: Failure, root: Path, scope: Paths, commands: Paths
) -> Mitigation | None:
    text = _text(failure)
    found = _NODE_MISSING.search(text)
    manifest = root / "package.json"
    if not found or not manifest.is_file():
        return None
    try:
        data = json.loads(manifest.read_text(errors="replace"))
    except json.JSONDecodeError:
        return None
    specifier = found.group(1)
    package = "/".join(specifier.split("/")[: 2 if specifier.startswith("@") else 1])
    if not isinstance(data, dict) or package == data.get("name"):
        return None
    declaring = next((s for s in NODE_SECTIONS if package in (data.get(s) or {})), "")
    if declaring:
        hint = (
            f"{package} is declared in package.json ({declaring}) but was not installed: the "
            "environment has been rebuilt, so do not change package.json for it."
        )
        detail = {"package": package, "manifest": "package.json", "section": declaring}
        return Mitigation("node_missing_dep", "rebuild_environment", hint, detail)
    importer = _NODE_IMPORTER.match(text, found.end())
    test = importer and _NODE_TEST.search(importer.group(1))
    section = "devDependencies" if test else "dependencies"
    hint = _add(f"Cannot find package '{package}'", package, section, "package.json", scope)
    detail = {"package": package, "manifest": "package.json", "section": section}
    return Mitigation("node_missing_dep", "hint", hint, detail)


def _wrong_working_dir(
    failure: Failure, root: Path, scope: Paths, commands: Paths
) -> Mitigation | None:
    lines = [line for line in _text(failure).splitlines() if _NOT_FOUND.search(line)]
    for command in commands:
        words = _words(command)
        paths = [] if "cd" in words else filter(None, map(_path_word, words))
        for path in paths:
            if (root / path).exists() or not any(path in line for line in lines):
                continue
            found = [d for d in _folders(root, 3) if d and (root / d / path).exists()]
            if len(found) == 1:
                hint = (
                    f"`{command}` names {path}, which is not at the repository root but in "
                    f"{found[0]}/: the command now runs from {found[0]}/. Paths in your edits "
                    "stay relative to the repository root."
                )
                detail = {"directory": found[0], "command": command}
                return Mitigation("wrong_working_dir", "set_test_directory", hint, detail)
    return None


def _path_word(word: str) -> str:
    """The repository path a command word names (a pytest node id's file), else ""."""
    path = word.split("::")[0].removeprefix("./")
    if path.startswith(("-", "/")) or "=" in path or ".." in path.split("/"):
        return ""
    return path if "/" in path or re.search(r"\.[A-Za-z]\w*$", path) else ""


def _missing_test_discovery(
    failure: Failure, root: Path, scope: Paths, commands: Paths
) -> Mitigation | None:
    text = _text(failure)
    wanted = [token.split("::")[0] for token in failure.details.get("missing") or []]
    wanted += [token.split("::")[0] for token in _NOT_RUN.findall(text)]
    pytest = _words(next((command for command in commands if "pytest" in command), ""))
    written = [path for path in failure.changed_files if path.endswith(".py") and _is_test(path)]
    if not pytest or not written or not (wanted or _NO_TESTS.search(text)):
        return None
    for path in wanted:
        wrote = next((w for w in written if _subject(w) == _subject(path)), None)
        if path.endswith(".py") and path not in failure.changed_files and wrote:
            hint = (
                f"The acceptance criteria name {path}, but the change wrote the tests in "
                f"{wrote}: put them in {path}."
            )
            return Mitigation(
                "missing_test_discovery", "hint", hint, {"written": wrote, "expected": path}
            )
    options, source = _pytest_options(root)
    patterns = _list(options.get("python_files")) or PYTEST_FILES
    after = pytest[next((i for i, w in enumerate(pytest) if "pytest" in w), len(pytest)) + 1 :]
    folders = [w.rstrip("/") for w in after if not w.startswith("-") and (root / w).is_dir()]
    where = "the test command's paths"
    if not folders:
        folders = [folder.rstrip("/") for folder in _list(options.get("testpaths"))]
        where = f"testpaths in {source}"
    for wrote in written:
        name, parent = PurePosixPath(wrote).name, PurePosixPath(wrote).parent
        named = any(fnmatch(name, pattern) for pattern in patterns)
        placed = not folders or in_scope(wrote, folders)
        if named and placed:
            continue
        folder = parent if placed else PurePosixPath(folders[0])
        target = str(folder / (name if named else f"test_{_subject(wrote)}.py"))
        looks = f" under {', '.join(folders)} ({where})" if folders else ""
        hint = (
            f"pytest does not collect {wrote}: it looks{looks} for files named "
            f"{' or '.join(patterns)}. Move the tests to {target}."
        )
        return Mitigation(
            "missing_test_discovery", "hint", hint, {"written": wrote, "expected": target}
        )
    return None


def _is_test(path: str) -> bool:
    """Whether the file's name says it holds tests (helpers and conftest do not)."""
    stem = PurePosixPath(path).stem
    return stem.startswith("test") or _subject(path) != stem


def _subject(path: str) -> str:
    """What a test file tests: its stem without the test_ or _test."""
    return re.sub(r"^tests?_|_tests?$", "", PurePosixPath(path).stem)


def _pytest_options(root: Path) -> tuple[dict, str]:
    """pytest's ini options and the file they are in, looked for as pytest does."""
    for name in ("pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg"):
        if name == "pyproject.toml":
            options = (
                (_toml(root / name) or {}).get("tool", {}).get("pytest", {}).get("ini_options")
            )
        else:
            cfg, section = _ini(root / name), "tool:pytest" if name == "setup.cfg" else "pytest"
            options = dict(cfg[section]) if cfg and cfg.has_section(section) else None
        if options is not None:
            return options, name
    return {}, ""


def _list(value: str | list | None) -> list[str]:
    return value.split() if isinstance(value, str) else list(value or [])


def _scope_mismatch(
    failure: Failure, root: Path, scope: Paths, commands: Paths
) -> Mitigation | None:
    found = _REFUSED.match(failure.message)
    if failure.kind != FailureKind.PATH_REFUSED or not found:
        return None
    path = found.group(1).strip()
    name = PurePosixPath(path).name
    candidates = (f"{folder}/{name}" if folder else name for folder in _folders(root, 8))
    alike = [c for c in candidates if c != path and (root / c).is_file() and in_scope(c, scope)]
    hint = f"{path} is outside this phase's scope (allowed: {', '.join(scope) or 'none'})."
    if alike:
        hint += f" You probably meant {' or '.join(alike[:3])}."
    hint += f" If the change truly needs {path}, the plan's scope must be widened (a replan)."
    detail = {"path": path, "allowed": list(scope), "alike": alike[:3]}
    return Mitigation("scope_mismatch", "hint", hint, detail)


def _permission_error(
    failure: Failure, root: Path, scope: Paths, commands: Paths
) -> Mitigation | None:
    candidates = _DENIED.findall(_text(failure))
    if failure.details.get("exit_code") == 126:
        candidates += [words[0] for words in map(_words, commands) if words]
    base = os.path.realpath(root)
    for raw in candidates:
        real = os.path.realpath(os.path.join(base, raw))
        inside = real.startswith(base + os.sep) and os.path.isfile(real)
        if not inside or os.stat(real).st_mode & 0o111:
            continue
        path = os.path.relpath(real, base).replace(os.sep, "/")
        if in_scope(path, scope):
            hint = (
                f"{path} failed with Permission denied because it was not executable; it has "
                "been made executable, so leave its mode as it is."
            )
            return Mitigation("permission_error", "make_executable", hint, {"path": path})
        hint = (
            f"{path} failed with Permission denied because it is not executable, and "
            f"{_outside(path, scope)}: call it through its interpreter, e.g. "
            f"`{_interpreter(Path(real))} {path}`."
        )
        return Mitigation("permission_error", "hint", hint, {"path": path})
    return None


def _interpreter(file: Path) -> str:
    """The program a script names on its #! line (through env), else sh or python."""
    with file.open("rb") as handle:
        first = handle.readline(200).decode(errors="replace")
    words = first[2:].split() if first.startswith("#!") else []
    if not words:
        return "python" if file.suffix == ".py" else "sh"
    program = PurePosixPath(words[0]).name
    return words[1] if program == "env" and len(words) > 1 else program


def _text(failure: Failure) -> str:
    return "\n".join((failure.message, failure.feedback, failure.gate_output))


def _words(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()


def _folders(root: Path, depth: int) -> Iterator[str]:
    """Folders under `root` as relative paths, the root ("") first, at most `depth`
    levels deep, skipping VCS, dependency and cache folders."""
    for top, folders, _ in os.walk(root):
        relative = os.path.relpath(top, root).replace(os.sep, "/")
        folder = "" if relative == "." else relative
        level = folder.count("/") + 1 if folder else 0
        folders[:] = sorted(f for f in folders if f not in SKIPPED_FOLDERS) if level < depth else []
        yield folder


def _toml(path: Path) -> dict | None:
    """The file's TOML ({} when there is none), or None when it is not valid TOML."""
    try:
        return tomllib.loads(path.read_text(errors="replace")) if path.is_file() else {}
    except tomllib.TOMLDecodeError:
        return None


def _ini(path: Path) -> configparser.ConfigParser | None:
    """The file parsed (empty when there is none), or None when it cannot be parsed."""
    cfg = configparser.ConfigParser(interpolation=None)
    try:
        cfg.read(path)
    except configparser.Error:
        return None
    return cfg


def _outside(path: str, scope: Paths) -> str:
    allowed = ", ".join(scope) or "none"
    return (
        f"{path} is outside this phase's scope (allowed: {allowed}), so this phase cannot change it"
    )


_MATCHERS = {
    "python_missing_dep": _python_missing_dep,
    "node_missing_dep": _node_missing_dep,
    "wrong_working_dir": _wrong_working_dir,
    "missing_test_discovery": _missing_test_discovery,
    "scope_mismatch": _scope_mismatch,
    "permission_error": _permission_error,
}
PATTERNS: tuple[str, ...] = tuple(_MATCHERS)
