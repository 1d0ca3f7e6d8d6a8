"""Helpers for tests that build real repositories through the engine. Importable
without Django (the engine tests and bench scripts use the repository and reply
helpers); `start` and `drive` need it."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo"
APPROVE = '{"verdict": "approve", "reasons": ["does what the task asks"]}'


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


def make_repo(path: Path) -> Path:
    """The demo's inventory project as a fresh git repository on `main`."""
    shutil.copytree(DEMO / "project", path)
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(
        path,
        "-c",
        "user.name=Test",
        "-c",
        "user.email=test@localhost",
        "commit",
        "-q",
        "-m",
        "initial",
    )
    return path


def block(path: str, search: str, replace: str) -> str:
    return f"{path}\n```python\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n```\n"


# The demo's usual correct change: a quantity_of function below remove_item.
QUANTITY = block(
    "inventory/stock.py",
    "    stock[item] -= quantity\n",
    "    stock[item] -= quantity\n\n\n"
    "def quantity_of(stock: dict[str, int], item: str) -> int:\n"
    "    return stock.get(item, 0)\n",
)


def phase(phase_id: str, index: int, paths: list[str], **extra) -> dict:
    return {
        "phase_id": phase_id,
        "phase_index": index,
        "task_name": f"Task {phase_id}",
        "task_category": "feature",
        "complexity": extra.pop("complexity", "low"),
        "scope": {"paths": paths, **extra.pop("scope", {})},
        **extra,
    }


def config(repo: Path, *tiers: list[dict], **extra) -> dict:
    return {
        "run_id": extra.pop("run_id", "build"),
        "goal": "Improve the inventory ledger",
        "workspace": str(repo),
        "tiers": [
            {"tier_index": i, "tier_name": f"Tier {i}", "phases": phases}
            for i, phases in enumerate(tiers)
        ],
        **extra,
    }


def start(data: dict, provider: str = "", created_by=None):
    from runs import services

    return services.create_run(data, provider=provider, created_by=created_by, enqueue=False)


def drive(run, max_steps: int = 50):
    """Step the run to a final state in this process, as a worker would."""
    from runs.executor import execute_step
    from runs.models import Run

    for _ in range(max_steps):
        if not execute_step(run.run_id, Run.objects.get(pk=run.pk).step):
            break
    return Run.objects.get(pk=run.pk)


def write_models(path: Path, **sections) -> Path:
    chains = sections.pop("chains", None) or {
        "builder": {
            "low": ["anthropic/claude-low-1", "anthropic/claude-low-2"],
            "medium": ["openai/gpt-medium-1"],
            "high": ["anthropic/claude-high-1"],
        },
        "auditor": {
            "low": ["anthropic/claude-audit"],
            "medium": ["anthropic/claude-audit"],
            "high": ["anthropic/claude-audit"],
        },
    }
    # The Doctor and replanning are asked for by the tests about recovery.
    sections.setdefault("doctor", {"enabled": False})
    sections.setdefault("replan", {"enabled": False})
    data = {
        "escalation_chains": {
            role: {level: {"models": models} for level, models in levels.items()}
            for role, levels in chains.items()
        },
        **sections,
    }
    path.write_text(json.dumps(data))  # JSON is YAML
    return path


def awaiting_approval(run):
    """Put `run` where a protected change of its first phase waits for a person; returns
    the governance request."""
    from governance.models import GovernanceRequest
    from runs.models import Attempt, Phase, Run
    from runs.states import AttemptState, PhaseState, RunState

    Run.objects.filter(pk=run.pk).update(state=RunState.AWAITING_APPROVAL)
    phase_row = run.phases.get()
    Phase.objects.filter(pk=phase_row.pk).update(state=PhaseState.AWAITING_APPROVAL)
    attempt = Attempt.objects.create(
        run=run,
        phase=phase_row,
        number=1,
        model="anthropic/claude-x",
        state=AttemptState.AWAITING_APPROVAL,
    )
    return GovernanceRequest.objects.create(
        run=run,
        phase=phase_row,
        attempt=attempt,
        kind="protected_path",
        risk="high",
        diff="diff --git a/Dockerfile b/Dockerfile\n",
        paths=["Dockerfile"],
        protected_paths=["Dockerfile"],
        lines_added=1,
        lines_removed=0,
        base_commit="0" * 40,
    )


def project_waiting_for_approval(repo: Path, name: str, owner, viewer):
    """A project of `owner` (who may approve) and `viewer`, with a run whose protected
    change waits for approval and an open issue: (project, run, request)."""
    from django.contrib.auth.models import Permission

    from runs.models import Project, ProjectMember

    owner.user_permissions.add(Permission.objects.get(codename="approve_governancerequest"))
    project = Project.objects.create(name=name, repository=str(repo))
    ProjectMember.objects.create(project=project, user=owner, role="owner")
    ProjectMember.objects.create(project=project, user=viewer, role="viewer")
    run = start(
        config(repo, [phase("cart", 0, ["shop/"])], run_id=f"{name}-run", project=name),
        created_by=owner,
    )
    request = awaiting_approval(run)
    project.issues.create(scope="project", signature="x", severity="low", title="flaky cart")
    return project, run, request


def bench_run(bench_id: str, created_by=None, **fields):
    """A stored benchmark (no tasks), for pages and permissions."""
    from telemetry.models import BenchRun

    defaults = {
        "suite": "/data/polyglot-benchmark",
        "suite_kind": "exercism",
        "model": "anthropic/claude-x",
        "edit_format": "diff",
        "tries": 2,
        "workers": 1,
        "autopack_version": "0.1.0",
        "state": "done",
    }
    return BenchRun.objects.create(bench_id=bench_id, created_by=created_by, **defaults | fields)
