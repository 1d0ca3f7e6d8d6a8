import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from autopack_site.readiness import ensure_migrated
from runs.config import ConfigError
from runs.engine.plan_markdown import PlanWriteError, write_plan
from runs.engine.plans import PlanResult, read_plan
from runs.management.commands.run import create, execute_in_foreground
from runs.planning import Draft, PlanInputError, PlanningFailed, draft
from runs.providers import validate_provider_option
from runs.states import RunState


class Command(BaseCommand):
    help = (
        "Read a markdown plan into a run config (printed, or written with --out) and "
        "optionally run it; or write a run config as markdown (--to-markdown); or have the "
        "Planner model write the plan from notes (--from-notes)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "plan",
            type=Path,
            help="The markdown plan (the JSON run config with --to-markdown, free text with "
            "--from-notes)",
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
            "--from-notes",
            action="store_true",
            help="PLAN is free-text notes: the Planner model writes the markdown plan "
            "(printed, or written with --out, to review)",
        )
        parser.add_argument(
            "--yes",
            action="store_true",
            help="With --from-notes --run: start the run on the Planner's plan without asking",
        )
        parser.add_argument(
            "--provider",
            default="",
            help="scripted:FILE to replay replies from a file, for the Planner too (see "
            "`autopack run`)",
        )

    def handle(
        self,
        *args,
        plan: Path,
        out: Path | None,
        run: bool,
        to_markdown: bool,
        from_notes: bool,
        **options,
    ) -> None:
        text = _read(plan)
        if to_markdown and from_notes:
            raise CommandError("--to-markdown and --from-notes do not go together")
        if to_markdown:
            self._write(out, _markdown(plan, text))
            return
        overrides = _overrides(options["repo"], options["run_id"], options["goal"])
        if from_notes:
            self._from_notes(plan, text, overrides, out, run, options)
            return
        result = read_plan(
            text,
            base_dir=plan.resolve().parent,
            overrides=overrides,
            defaults={"workspace": str(Path.cwd().resolve())},
        )
        self._report(plan, result)
        assert result.config is not None
        if out is not None or not run:
            self._write(out, json.dumps(result.config, indent=2) + "\n")
        if run:
            self._run(result.config, plan.resolve().parent, options["provider"])

    def _from_notes(
        self, notes: Path, text: str, overrides: dict, out: Path | None, run: bool, options: dict
    ) -> None:
        """The Planner's plan for the notes, shown for review; with --run, a run on it once
        the person accepts it (the question on a terminal, or --yes)."""
        provider = _provider(options["provider"])
        ensure_migrated(self.stderr)  # stdout is the plan's
        overrides.setdefault("workspace", str(Path.cwd().resolve()))
        try:
            drafted = draft(
                text,
                overrides,
                notes.resolve().parent,
                provider=provider,
                progress=self.stderr.write,
            )
        except PlanInputError as exc:
            raise CommandError(f"{exc.field}: {exc.message}") from None
        except PlanningFailed as exc:
            raise CommandError(str(exc)) from None
        plan = drafted.plan
        if not plan.accepted:
            self.stdout.write(plan.markdown, ending="")
            for problem in plan.problems:
                self.stderr.write(f"plan:{problem.line}: error: {problem.message}")
            self.stderr.write(_spent(drafted))
            count = len(plan.problems)
            raise CommandError(
                f"the Planner's plan was refused after one correction: {count} "
                f"problem{'s' * (count > 1)} (above, by line of the plan printed)"
            )
        self._write(out, plan.markdown)
        name = str(out) if out is not None else "plan"
        for message in plan.result.messages:
            self.stderr.write(f"{name}:{message.line}: {message.level}: {message.message}")
        self.stderr.write(_spent(drafted))
        if run and self._accepted(plan.result.config, out, options["yes"]):
            self._run(plan.result.config, notes.resolve().parent, provider)

    def _accepted(self, config: dict, out: Path | None, yes: bool) -> bool:
        """Whether the person accepts the Planner's plan: --yes, or yes on a terminal."""
        run_id = config["run_id"]
        if yes:
            return True
        if not sys.stdin.isatty():
            later = f"autopack plan {out or 'FILE'} --repo {config['workspace']} --run"
            raise CommandError(
                f"run {run_id} not started: a plan the Planner wrote runs only once a person "
                "accepts it. Review it, then run again with --yes, or save it with --out "
                f"FILE, edit it if you like and start it with `{later}`"
            )
        answer = input(f"Start run {run_id} with this plan? [y/N] ")
        if answer.strip().lower() in ("y", "yes"):
            return True
        self.stderr.write(f"run {run_id} not started")
        return False

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
        provider = _provider(provider)
        ensure_migrated(self.stdout)
        run = execute_in_foreground(create(config, base_dir, provider, enqueue=False), self.stdout)
        if run.state == RunState.AWAITING_APPROVAL:
            raise CommandError(
                f"run {run.run_id} waits for approval of a protected change: "
                "decide it in the governance queue; a worker continues the run"
            )
        if run.state != RunState.DONE_SUCCESS:
            raise CommandError(f"run {run.run_id} ended {run.state}: see above")


def _provider(value: str) -> str:
    try:
        return validate_provider_option(value)
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def _spent(drafted: Draft) -> str:
    cost = drafted.cost
    money = f"${cost:.4f}" if cost is not None else "cost unknown (the model has no price)"
    count = len(drafted.records)
    return (
        f"the planner {drafted.model}: {count} call{'s' * (count > 1)}, "
        f"{drafted.tokens:,} tokens, {money}"
    )


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
