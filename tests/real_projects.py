"""Real open-source projects, fetched from the package registries (PyPI, npm, Debian) and
made into git repositories dated like their release: what the environment and gate
tests run on, and what bench/real_repos.py measures.

Each project carries a correct change and a change that breaks a tested function, as
Builder replies, and the test the breaking change makes fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.builds import block


@dataclass(frozen=True)
class RealProject:
    name: str
    toolchain: str
    released: str  # the release date: the commit's date, so dependencies resolve as then
    scope: list[str]
    good: str
    bad: str
    broken: str  # the test the bad change breaks, as the gate names it
    fetch: Callable[[Path], Path]

    def checkout(self, downloads: Path, destination: Path) -> Path:
        """The project as a git repository on `main` at `destination`."""
        shutil.copytree(self.fetch(downloads), destination, symlinks=True)
        date = f"{self.released}T12:00:00Z"
        env = dict(os.environ, GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
        for args in (
            ["init", "-q", "-b", "main"],
            ["add", "-A"],
            [
                "-c",
                "user.name=Release",
                "-c",
                "user.email=release@localhost",
                "commit",
                "-qm",
                f"{self.name} as released",
            ],
        ):
            subprocess.run(
                ["git", *args], cwd=destination, env=env, check=True, capture_output=True
            )
        return destination


def _run(argv: list[str], cwd: Path, **env: str) -> None:
    result = subprocess.run(
        argv, cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True, timeout=600
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}")


def _unpack(archive: Path, into: Path) -> Path:
    """The archive's single top folder, unpacked without its owners and modes."""
    staging = Path(tempfile.mkdtemp(dir=into.parent))
    with tarfile.open(archive) as tar:
        tar.extractall(staging, filter="data")
    (top,) = staging.iterdir()
    os.rename(top, into)
    shutil.rmtree(staging)
    return into


def pypi_sdist(name: str, version: str) -> Callable[[Path], Path]:
    def fetch(downloads: Path) -> Path:
        folder = downloads / f"pypi-{name}-{version}"
        if not folder.exists():
            archives = downloads / "sdists"
            _run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--no-deps",
                    "--no-binary",
                    ":all:",
                    f"{name}=={version}",
                    "-d",
                    str(archives),
                ],
                downloads,
            )
            prefix = name.lower().replace("-", "_")
            (archive,) = [
                a
                for a in archives.iterdir()
                if a.name.lower().replace("-", "_").startswith(f"{prefix}_{version}")
            ]
            _unpack(archive, folder)
        return folder

    return fetch


def npm_package(name: str, version: str, before: str) -> Callable[[Path], Path]:
    """The published package with a lockfile resolved as of `before` (npm does not
    publish lockfiles)."""

    def fetch(downloads: Path) -> Path:
        folder = downloads / f"npm-{name.replace('/', '-')}-{version}"
        if not folder.exists():
            cache = str(downloads / "npm-cache")
            packs = downloads / "npm-packs"
            packs.mkdir(parents=True, exist_ok=True)
            _run(["npm", "pack", f"{name}@{version}", "--silent"], packs, npm_config_cache=cache)
            archive = next(packs.glob(f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"))
            _unpack(archive, folder)
            _run(
                [
                    "npm",
                    "install",
                    "--package-lock-only",
                    "--ignore-scripts",
                    "--no-audit",
                    "--no-fund",
                    f"--before={before}",
                ],
                folder,
                npm_config_cache=cache,
            )
        return folder

    return fetch


def debian_go_module(package: str, import_path: str) -> Callable[[Path], Path]:
    """A Go module's source as Debian packages it (under /usr/share/gocode)."""

    def fetch(downloads: Path) -> Path:
        folder = downloads / f"deb-{package}"
        if not folder.exists():
            debs = downloads / "debs"
            debs.mkdir(parents=True, exist_ok=True)
            _run(["apt-get", "download", "-q", package], debs)
            deb = next(debs.glob(f"{package}_*.deb"))
            unpacked = debs / package
            _run(["dpkg-deb", "-x", str(deb), str(unpacked)], debs)
            shutil.copytree(unpacked / "usr/share/gocode/src" / import_path, folder)
        return folder

    return fetch


FLASK = RealProject(
    name="flask",
    toolchain="python",
    released="2023-02-15",
    scope=["src/flask/"],
    good=block(
        "src/flask/config.py",
        "            with open(filename) as f:\n",
        '            with open(filename, encoding="utf-8") as f:\n',
    ),
    bad=block(
        "src/flask/config.py",
        "        .. versionadded:: 2.0\n"
        '        """\n'
        "        filename = os.path.join(self.root_path, filename)\n",
        "        .. versionadded:: 2.0\n"
        '        """\n'
        "        filename = os.path.join(self.root_path, os.path.basename(filename))\n",
    ),
    broken="tests/test_config.py::test_config_from_file",
    fetch=pypi_sdist("Flask", "2.2.3"),
)

DATEUTIL = RealProject(
    name="dateutil",
    toolchain="python",
    released="2024-03-01",
    scope=["src/dateutil/"],
    good=block(
        "src/dateutil/easter.py",
        '        raise ValueError("invalid method")\n',
        '        raise ValueError("invalid method %r: use 1, 2 or 3" % (method,))\n',
    ),
    bad=block(
        "src/dateutil/easter.py",
        "            e = 10\n",
        "            e = 11\n",
    ),
    broken="tests/test_easter.py::test_easter_orthodox",
    fetch=pypi_sdist("python-dateutil", "2.9.0.post0"),
)

FASTIFY_ERROR = RealProject(
    name="fastify-error",
    toolchain="node",
    released="2025-05-21",
    scope=["index.js"],
    good=block(
        "index.js",
        "    const lastElement = args.length - 1\n"
        "    if (lastElement !== -1 && args[lastElement] && typeof args[lastElement] === "
        "'object' && 'cause' in args[lastElement]) {\n",
        "    const last = args.length - 1\n"
        "    if (last !== -1 && args[last] && typeof args[last] === 'object' && "
        "'cause' in args[last]) {\n",
    ),
    bad=block(
        "index.js",
        "  return `${this.name} [${this.code}]: ${this.message}`\n",
        "  return `${this.name}: ${this.message}`\n",
    ),
    broken="FastifyError.toString returns code",
    fetch=npm_package("@fastify/error", "4.1.0", "2025-05-22"),
)

GOOGLE_UUID = RealProject(
    name="google-uuid",
    toolchain="go",
    released="2022-02-24",
    scope=["uuid.go"],
    good=block(
        "uuid.go",
        "\tvar buf [36 + 9]byte\n",
        '\tvar buf [len("urn:uuid:") + 36]byte\n',
    ),
    bad=block("uuid.go", "\tdst[8] = '-'\n", "\tdst[8] = '_'\n"),
    broken="github.com/google/uuid::TestJSON",
    fetch=debian_go_module("golang-github-google-uuid-dev", "github.com/google/uuid"),
)

PROJECTS = [FLASK, DATEUTIL, FASTIFY_ERROR, GOOGLE_UUID]
