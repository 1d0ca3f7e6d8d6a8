import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from autopack_site.readiness import ensure_migrated
from runs.config import ConfigError
from runs.engine.plan_markdown import PlanWriteError, write_plan
from runs.engine.plans import PlanResult, read_plan
from runs.management.commands.run import create, execute_in_foreground
from runs.providers import validate_provider_option
from runs.states import RunState


class Command(BaseCommand):
    help = (
        "Read a markdown plan into a run config (printed, or written with --out) and "
        "optionally run it; or write a run config as markdown (--to-markdown)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "plan", type=Path, help="The markdown plan (the JSON run config with --to-markdown)"
        )
        parser.add_argument("--out", type=Path, help="Write the result here, not to stdout")
        parser.add_argument(
            "--run", action="store_true", help="Create the run and execute it in the foreground"
        )
        parser.add_argument(
            "--repo",
            help="Repository to check paths against and build "
            "(default: the plan's `workspace:`, else the current directory)",
        )
        parser.add_argument(
            "--run-id",
            default="",
            help="The run's id (default: the plan's `run_id:`, else one made from the goal)",
        )
        parser.add_argument(
            "--goal",
            default="",
            help="The run's goal (default: the plan's `goal:` or its `# Title`)",
        )
        parser.add_argument(
            "--to-markdown",
            action="store_true",
            help="Write the run config PLAN as a markdown plan",
        )
        parser.add_argument(
            "--provider",
            default="",
            help="With --run: scripted:FILE to replay replies from a file (see `autopack run`)",
        )

    def handle(
        self, *args, plan: Path, out: Path | None, run: bool, to_markdown: bool, **options
    ) -> None:
        text = _read(plan)
        if to_markdown:
            self._write(out, _markdown(plan, text))
            return
        result = read_plan(
            text,
            base_dir=plan.resolve().parent,
            overrides=_overrides(options["repo"], options["run_id"], options["goal"]),
            defaults={"workspace": str(Path.cwd().resolve())},
        )
        self._report(plan, result)
        assert result.config is not None
        if out is not None or not run:
            self._write(out, json.dumps(result.config, indent=2) + "\n")
        if run:
            self._run(result.config, plan.resolve().parent, options["provider"])

    def _report(self, plan: Path, result: PlanResult) -> None:
        for message in result.messages:
            self.stderr.write(f"{plan}:{message.line}: {message.level}: {message.message}")
        if result.errors:
            count = len(result.errors)
            raise CommandError(f"{count} error{'s' if count > 1 else ''} in {plan}: no run config")

    def _write(self, out: Path | None, text: str) -> None:
        if out is None:
            self.stdout.write(text, ending="")
            return
        try:
            out.write_text(text)
        except OSError as exc:
            raise CommandError(f"cannot write {out}: {exc}") from None
        self.stderr.write(f"wrote {out}")

    def _run(self, config: dict, base_dir: Path, provider: str) -> None:
        try:
            provider = validate_provider_option(provider)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        ensure_migrated(self.stdout)
        run = execute_in_foreground(create(config, base_dir, provider, enqueue=False), self.stdout)
        if run.state == RunState.AWAITING_APPROVAL:
            raise CommandError(
                f"run {run.run_id} waits for approval of a protected change: "
                "decide it in the governance queue; a worker continues the run"
            )
        if run.state != RunState.DONE_SUCCESS:
            raise CommandError(f"run {run.run_id} ended {run.state}: see above")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read {path}: {exc}") from None


def _overrides(repo: str | None, run_id: str, goal: str) -> dict[str, str]:
    overrides = {"run_id": run_id, "goal": goal}
    if repo:
        overrides["workspace"] = str(Path(repo).expanduser().resolve())
    return {key: value for key, value in overrides.items() if value}


def _markdown(path: Path, text: str) -> str:
    try:
        return write_plan(json.loads(text))
    except json.JSONDecodeError as exc:
        raise CommandError(f"{path} is not valid JSON: {exc}") from None
    except ConfigError as exc:
        lines = "\n".join(f"  {e['path']}: {e['message']}" for e in exc.errors)
        raise CommandError(f"invalid run config {path}:\n{lines}") from None
    except PlanWriteError as exc:
        lines = "\n".join(f"  {problem}" for problem in exc.problems)
        raise CommandError(f"{path} cannot be written as a markdown plan:\n{lines}") from None
