import json
import threading
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from autopack_site.readiness import ensure_migrated
from runs import services
from runs.config import ConfigError
from runs.executor import execute_step
from runs.management.progress import Progress
from runs.models import Run
from runs.providers import override_for, validate_provider_option
from runs.states import RunState


def load_config(path: Path, repo: str | None, project: str | None = None) -> dict:
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise CommandError(f"{path} is not valid JSON: {exc}") from None
    if repo and isinstance(data, dict):
        data.pop("repo", None)
        data["workspace"] = str(Path(repo).expanduser().resolve())
    if project and isinstance(data, dict):
        data["project"] = project
    return data


def create(data: dict, base_dir: Path, provider: str, enqueue: bool) -> Run:
    try:
        return services.create_run(data, base_dir=base_dir, provider=provider, enqueue=enqueue)
    except ConfigError as exc:
        raise CommandError(
            "invalid run config:\n"
            + "\n".join(f"  {e['path']}: {e['message']}" for e in exc.errors)
        ) from None
    except services.DuplicateRun as exc:
        raise CommandError(f"{exc}; choose another run_id") from None


def _step_in_thread(run_id: str, outcome: dict) -> None:
    try:
        outcome["more"] = execute_step(run_id, Run.objects.get(run_id=run_id).step)
    finally:
        connection.close()


def execute_in_foreground(run: Run, stdout) -> Run:
    """Step the run to a final state in this process, printing progress as it goes."""
    progress = Progress(run, stdout)
    scripted = override_for(run)
    if scripted:
        stdout.write(scripted.notice + "\n")
    while True:
        outcome: dict = {}
        worker = threading.Thread(target=_step_in_thread, args=(run.run_id, outcome))
        worker.start()
        try:
            while worker.is_alive():
                worker.join(0.3)
                progress.show_new_events()
        except KeyboardInterrupt:
            stdout.write(
                "Cancelling: the run stops at its last savepoint after this step. "
                "Press Ctrl-C again to leave at once.\n"
            )
            services.cancel_run(Run.objects.get(pk=run.pk), by="Ctrl-C")
            worker.join()
        progress.show_new_events()
        if not outcome.get("more"):
            break
    stdout.write(progress.summary() + "\n")
    if scripted:
        stdout.write(scripted.notice + "\n")
    return Run.objects.get(pk=run.pk)


class Command(BaseCommand):
    help = "Create a run from a run-config JSON file and execute it in the foreground."

    def add_arguments(self, parser) -> None:
        parser.add_argument("config", type=Path)
        parser.add_argument("--repo", help="Repository to build (overrides workspace/repo)")
        parser.add_argument(
            "--project",
            help="Project name (default: the project that has this repository, else the "
            "repository's name)",
        )
        parser.add_argument(
            "--provider",
            default="",
            help="scripted:FILE to replay replies from a file (no model is "
            "called); default: models from config/models.yaml",
        )
        parser.add_argument(
            "--detach",
            action="store_true",
            help="Queue the run for workers instead of executing it here",
        )

    def handle(
        self,
        *args,
        config: Path,
        repo: str | None,
        project: str | None,
        provider: str,
        detach: bool,
        **options,
    ) -> None:
        try:
            provider = validate_provider_option(provider)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        ensure_migrated(self.stdout)
        data = load_config(config, repo, project)
        run = create(data, config.resolve().parent, provider, enqueue=detach)
        if detach:
            self.stdout.write(
                f"Queued run {run.run_id}: a worker executes it (`autopack worker`, or "
                f"`make up`); follow it in the dashboard or with GET /api/runs/{run.run_id}/."
            )
            return
        run = execute_in_foreground(run, self.stdout)
        if run.state == RunState.AWAITING_APPROVAL:
            raise CommandError(
                f"run {run.run_id} waits for approval of a protected change: decide it in "
                "the governance queue or admin; a worker (`autopack worker`) continues the "
                "run after the decision"
            )
        if run.failure_kind == "application":
            raise CommandError(
                f"Autopack failed while executing run {run.run_id} (please report it; the "
                "traceback is in the run's event log: GET /api/runs/"
                f"{run.run_id}/events/)"
            )
        if run.state != RunState.DONE_SUCCESS:
            code = f" ({run.failure_code})" if run.failure_code else ""
            raise CommandError(f"run {run.run_id} ended {run.state}{code}: see above")
