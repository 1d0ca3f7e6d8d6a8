"""The environment cache: built once however many runs ask at the same time, never
seen half-built, keyed by what decides an environment. No database."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from governance.config import parse_governance
from runs.engine.toolchains import SetupOptions
from runs.engine.toolchains.cache import EnvironmentCache
from runs.engine.toolchains.node import NodeToolchain, install_command


def test_concurrent_runs_wait_for_one_build_and_share_it(tmp_path):
    cache = EnvironmentCache(tmp_path / "environments")
    builds: list[str] = []
    results: list[tuple[Path, dict, bool]] = []

    def build(folder: Path) -> dict:
        builds.append(folder.name)
        time.sleep(0.5)
        (folder / "marker").write_text("built")
        return {"resolution": "test"}

    threads = [
        threading.Thread(target=lambda: results.append(cache.ensure("python-x-1", build)))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(builds) == 1
    assert {path for path, _, _ in results} == {cache.envs / "python-x-1"}
    assert sorted(cached for _, _, cached in results) == [False, True, True]
    assert (cache.envs / "python-x-1" / "marker").read_text() == "built"
    assert list(cache.building.iterdir()) == []


def test_a_failed_build_leaves_nothing_that_looks_ready(tmp_path):
    cache = EnvironmentCache(tmp_path / "environments")

    def broken(folder: Path) -> dict:
        (folder / "half").write_text("half an environment")
        raise RuntimeError("installer died")

    with pytest.raises(RuntimeError):
        cache.ensure("node-y-1", broken)

    assert cache.lookup("node-y-1") is None
    assert not (cache.envs / "node-y-1").exists()
    assert list(cache.building.iterdir()) == []


def test_the_key_follows_manifests_and_options_not_other_files(tmp_path):
    cache = EnvironmentCache(tmp_path / "environments")
    node = NodeToolchain()
    (tmp_path / "package.json").write_text('{"name": "x"}')
    (tmp_path / "index.js").write_text("module.exports = 1\n")
    options = SetupOptions()
    name = cache.name(node, tmp_path, options, "My Project")

    (tmp_path / "index.js").write_text("module.exports = 2\n")
    same = cache.name(node, tmp_path, options, "My Project")
    other_command = cache.name(node, tmp_path, SetupOptions(setup_command="npm i"), "My Project")
    (tmp_path / "package.json").write_text('{"name": "x", "dependencies": {"y": "1"}}')
    other_manifest = cache.name(node, tmp_path, options, "My Project")

    assert name.startswith("node-my-project-")
    assert same == name
    assert len({name, other_command, other_manifest}) == 3


@pytest.mark.parametrize(
    ("files", "options", "command"),
    [
        ({"package-lock.json": "{}"}, {}, "npm ci --no-audit --no-fund"),
        ({"pnpm-lock.yaml": ""}, {}, "corepack pnpm install --frozen-lockfile"),
        ({"yarn.lock": ""}, {}, "corepack yarn install --frozen-lockfile"),
        ({"yarn.lock": "", ".yarnrc.yml": ""}, {}, "corepack yarn install --immutable"),
        ({}, {}, "npm install --no-audit --no-fund --before=2024-05-01T00:00:00Z"),
        ({}, {"resolution": "newest"}, "npm install --no-audit --no-fund"),
        ({"package-lock.json": "{}"}, {"setup_command": "make deps"}, "make deps"),
    ],
)
def test_node_installs_from_the_lockfile_it_finds(tmp_path, files, options, command):
    (tmp_path / "package.json").write_text("{}")
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    as_of = datetime(2024, 5, 1, tzinfo=UTC)

    chosen, _ = install_command(tmp_path, SetupOptions(as_of=as_of, **options))

    assert chosen == command


def test_every_file_a_toolchain_builds_from_is_a_protected_path():
    from governance.policy import protected
    from runs.engine.toolchains import go, node, python_plan, rust

    config = parse_governance(Path(__file__).resolve().parent.parent / "config" / "governance.yaml")
    names = [
        *python_plan.MANIFESTS,
        "requirements-dev.txt",
        "test-requirements.txt",
        "dev_requirements.txt",
        "requirements/tests.txt",
        *node.MANIFESTS,
        *go.MANIFESTS,
        *rust.MANIFESTS,
    ]

    assert sorted(set(names) - set(protected(names, config.protected_paths))) == []


def test_npm_workspaces_package_files_decide_the_environment_too(tmp_path):
    (tmp_path / "package.json").write_text('{"workspaces": ["packages/*"]}')
    (tmp_path / "packages" / "a").mkdir(parents=True)
    (tmp_path / "packages" / "a" / "package.json").write_text('{"name": "a"}')

    assert NodeToolchain().manifests(tmp_path) == ["package.json", "packages/a/package.json"]
