"""Project environments and test gates on real projects from the package registries.

    .venv/bin/python bench/real_repos.py [--only flask,dateutil]

For each project (tests/real_projects.py): the environment set up cold (empty caches,
downloads included) and warm (the cached environment, a new run's layer), the baseline
test count and duration, and whether a correct change lands and a breaking change is
refused, through the engine's real attempt code with scripted Builder replies.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runs.engine.gates.tests import TestGate, run_tests  # noqa: E402
from runs.engine.sandbox import bubblewrap  # noqa: E402
from runs.engine.toolchains import EnvironmentCache, SetupOptions, prepare  # noqa: E402
from runs.engine.workspace import GitWorkspace  # noqa: E402
from tests.attempts import QuietRecorder, scripted_attempt  # noqa: E402
from tests.real_projects import PROJECTS, RealProject  # noqa: E402


def attempt(workspace, project: RealProject, reply: str, gate: TestGate) -> bool:
    result = scripted_attempt(workspace, reply, [gate], tuple(project.scope))
    if result.passed:
        workspace.git.reset("--hard", "HEAD~1")  # back to the base for the next try
    return result.passed


def measure(project: RealProject, root: Path, downloads: Path) -> dict:
    repo = project.checkout(downloads, root / project.name)
    workspace = GitWorkspace(repo)
    sandbox = bubblewrap() is not None
    options = SetupOptions(as_of=workspace.committed_at(), sandbox=sandbox)
    cache = EnvironmentCache(root / "environments")

    started = time.monotonic()
    environment = prepare(repo, root / "layer-cold", cache, options, project.name, QuietRecorder())
    cold = time.monotonic() - started
    started = time.monotonic()
    environment = prepare(repo, root / "layer-warm", cache, options, project.name, QuietRecorder())
    warm = time.monotonic() - started
    workspace.keep = environment.keep

    command = environment.test_command
    baseline = run_tests(command, repo, environment.runtime, 900, sandbox)
    gate = TestGate(command, baseline, [], lambda: environment.runtime, 900, sandbox=sandbox)
    return {
        "project": project.name,
        "toolchain": project.toolchain,
        "resolution": environment.resolution,
        "cold_s": cold,
        "warm_s": warm,
        "tests": baseline.counts()["ran"],
        "failing": baseline.counts()["failed"],
        "baseline_s": baseline.duration,
        "good_lands": attempt(workspace, project, project.good, gate),
        "bad_refused": not attempt(workspace, project, project.bad, gate),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated project names")
    args = parser.parse_args()
    chosen = [p for p in PROJECTS if not args.only or p.name in args.only.split(",")]
    root = Path(tempfile.mkdtemp(prefix="autopack-real-repos-"))
    downloads = root / "downloads"
    downloads.mkdir()
    try:
        rows = [measure(project, root, downloads) for project in chosen]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    header = (
        f"{'project':<15}{'toolchain':<10}{'dependencies':<22}{'cold s':>8}{'warm s':>8}"
        f"{'warm/cold':>10}{'tests':>7}{'failing':>8}{'tests s':>9}  good lands  bad refused"
    )
    print(header)
    for r in rows:
        print(
            f"{r['project']:<15}{r['toolchain']:<10}{r['resolution']:<22}{r['cold_s']:>8.1f}"
            f"{r['warm_s']:>8.2f}{r['warm_s'] / r['cold_s']:>10.3f}{r['tests']:>7}"
            f"{r['failing']:>8}{r['baseline_s']:>9.1f}  {str(r['good_lands']):<11} "
            f"{r['bad_refused']}"
        )


if __name__ == "__main__":
    main()
