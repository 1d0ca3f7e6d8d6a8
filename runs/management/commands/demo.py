import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from autopack_site.readiness import ensure_migrated
from runs.management.commands.run import create, execute_in_foreground, load_config
from runs.states import RunState

DEMO = Path(settings.BASE_DIR) / "examples" / "demo"


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


class Command(BaseCommand):
    help = (
        "Build the demo project with scripted replies (no model is called): one phase "
        "fails on a regression, is rolled back and passes; another passes first time."
    )

    def handle(self, *args, **options) -> None:
        ensure_migrated(self.stdout)
        folder = Path(tempfile.mkdtemp(prefix="autopack-demo-"))
        project = folder / "project"
        shutil.copytree(DEMO / "project", project)
        git("init", "-q", "-b", "main", cwd=project)
        git("add", "-A", cwd=project)
        git(
            "-c",
            "user.name=Autopack demo",
            "-c",
            "user.email=demo@localhost",
            "commit",
            "-q",
            "-m",
            "Inventory ledger",
            cwd=project,
        )
        data = load_config(DEMO / "run.json", str(project))
        data["run_id"] = f"inventory-demo-{time.strftime('%Y%m%d-%H%M%S')}"
        data["project"] = f"inventory-demo-{folder.name}"
        self.stdout.write(f"Demo project: {project}")
        run = create(data, DEMO, f"scripted:{DEMO / 'replies.json'}", enqueue=False)
        run = execute_in_foreground(run, self.stdout)
        self.stdout.write(f"\nCommits on {run.integration_branch} (base branch main untouched):")
        self.stdout.write(
            git("log", "--format=  %h %an  %s", f"main..{run.integration_branch}", cwd=project)
        )
        if run.state != RunState.DONE_SUCCESS:
            raise CommandError(f"the demo run ended {run.state}")
