from pathlib import Path

import git
from django.core.management.base import BaseCommand, CommandError

from autopack_site.readiness import ensure_migrated
from governance import maintenance
from governance.models import Backlog
from runs import services
from runs.config import ConfigError, RunConfig
from runs.management.commands.run import execute_in_foreground
from runs.models import Project
from runs.providers import validate_provider_option


class Command(BaseCommand):
    help = (
        "Build a markdown backlog one item at a time, each as a propose-first run: its "
        "change waits in the governance queue and is merged into the maintenance branch "
        "when approved (low-risk ones by the auto-approve policy)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("backlog", nargs="?", type=Path, help="The markdown backlog")
        parser.add_argument("--project", help="The project whose repository it maintains")
        parser.add_argument(
            "--repo",
            help="The project's repository (a local git repository), to make the project "
            "when it does not exist yet",
        )
        parser.add_argument(
            "--branch",
            default=maintenance.DEFAULT_BRANCH,
            help=f"Approved proposals are merged into this branch (default "
            f"{maintenance.DEFAULT_BRANCH}; never the base branch)",
        )
        parser.add_argument(
            "--detach",
            action="store_true",
            help="Hand the items to workers (each next item starts when one stops building)",
        )
        parser.add_argument(
            "--provider", default="", help="scripted:FILE to replay replies (see `autopack run`)"
        )
        parser.add_argument("--show", type=int, metavar="ID", help="Show backlog ID's items")

    def handle(self, *args, backlog: Path | None, show: int | None, **options) -> None:
        ensure_migrated(self.stdout)
        if show is not None:
            found = Backlog.objects.filter(pk=show).first()
            if found is None:
                raise CommandError(f"there is no backlog #{show}")
            self._summary(found)
            return
        if backlog is None or not options["project"]:
            raise CommandError("give the backlog file and --project NAME (or --show ID)")
        project = _project(options["project"], options["repo"])
        try:
            provider = validate_provider_option(options["provider"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        created = self._create(backlog, project, options["branch"], provider, options["detach"])
        items = created.items.count()
        self.stdout.write(
            f"Backlog #{created.pk}: {items} item{'s' if items > 1 else ''} for project "
            f"{project.name}; approved proposals are merged into {created.branch}."
        )
        if options["detach"]:
            run = maintenance.start_next(project)
            started = f"run {run.run_id} started" if run else "another item is building"
            self.stdout.write(
                f"Handed to workers ({started}); follow it with `autopack backlog --show "
                f"{created.pk}`."
            )
            return
        self._build(created)

    def _create(self, path: Path, project: Project, branch: str, provider: str, detached: bool):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read {path}: {exc}") from None
        try:
            return maintenance.create_backlog(
                text,
                project,
                name=path.name,
                branch=branch,
                provider=provider,
                detached=detached,
            )
        except maintenance.BacklogError as exc:
            for message in exc.messages:
                self.stderr.write(f"{path}:{message.line}: {message.level}: {message.message}")
            raise CommandError(f"{path} cannot be built as a backlog: nothing started") from None

    def _build(self, backlog: Backlog) -> None:
        total = backlog.items.count()
        while True:
            run = maintenance.start_next(backlog.project, enqueue=False)
            if run is None:
                break
            item = run.backlog_item
            self.stdout.write(f"\nItem {item.index + 1}/{total}: {item.task} (run {run.run_id})")
            execute_in_foreground(run, self.stdout)
            item.refresh_from_db()
            outcome = maintenance.status(item)
            self.stdout.write(f"Item {item.index + 1}: {outcome.status}. {outcome.detail}")
        self._summary(backlog)

    def _summary(self, backlog: Backlog) -> None:
        self.stdout.write(f"\nBacklog #{backlog.pk} ({backlog.name}) into {backlog.branch}:")
        statuses = []
        for item in backlog.items.select_related("run"):
            outcome = maintenance.status(item)
            statuses.append(outcome.status)
            run = item.run.run_id if item.run else "-"
            self.stdout.write(
                f"  {item.index + 1}. [{outcome.status}] {item.task} (line {item.line}, run {run})"
                + (f"\n       {outcome.detail}" if outcome.detail else "")
            )
        if "proposed" in statuses:
            self.stdout.write(
                "Waiting proposals are decided in the governance queue (/governance/) or "
                "admin; a worker (`autopack worker`) merges each approved one."
            )
        if "queued" in statuses:
            self.stdout.write(
                "Queued items wait for the project's building item; run `autopack backlog "
                f"--show {backlog.pk}` later."
            )
        failed = sum(s in ("failed", "error") for s in statuses)
        if failed:
            raise CommandError(
                f"{failed} item{'s' if failed > 1 else ''} of backlog #{backlog.pk} failed"
            )


def _project(name: str, repo: str | None) -> Project:
    """Project `name`; with --repo, the project a run of that repository named so would
    have (made if there is none yet, on the branch the repository has checked out)."""
    if not repo:
        project = Project.objects.filter(name=name).first()
        if project is not None:
            return project
        known = ", ".join(Project.objects.order_by("name").values_list("name", flat=True)[:20])
        raise CommandError(
            f"there is no project {name!r}"
            + (f" (projects: {known})" if known else "")
            + "; give its repository with --repo DIR to make it"
        )
    location = str(Path(repo).expanduser().resolve())
    try:
        branch = git.Repo(location).active_branch.name
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, TypeError):
        raise CommandError(
            f"--repo {repo}: not a git repository with a branch checked out"
        ) from None
    wanted = RunConfig.model_construct(workspace=location, project=name, base_branch=branch)
    try:
        return services.project_for(wanted, location, None)
    except ConfigError as exc:
        raise CommandError("; ".join(e["message"] for e in exc.errors)) from None
