from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from autopack_site.readiness import ensure_migrated
from runs import replaying, services
from runs.config import ConfigError
from runs.management.commands.run import execute_in_foreground


class Command(BaseCommand):
    help = (
        "Execute a finished run again with its recorded model replies (no model is asked) "
        "and compare the outcome with the recording."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("source", help="RUN_ID of a finished run, or a RECORDING.json file")
        parser.add_argument("--repo", help="Repository to replay in (default: the recorded one)")
        parser.add_argument("--run-id", help="Id of the replay run (default: RUN_ID-replay-N)")

    def handle(self, *args, source: str, repo: str | None, run_id: str | None, **options) -> None:
        ensure_migrated(self.stdout)
        # A file that exists is a recording even when its name looks like a run id.
        target: str | Path = Path(source) if Path(source).is_file() else source
        try:
            recording = replaying.load(target)
            run = replaying.start_replay(target, repo=repo, run_id=run_id)
        except replaying.RecordingError as exc:
            raise CommandError(str(exc)) from None
        except ConfigError as exc:
            raise CommandError(
                "the recorded run config cannot be replayed here:\n"
                + "\n".join(f"  {e['path']}: {e['message']}" for e in exc.errors)
            ) from None
        except services.DuplicateRun as exc:
            raise CommandError(f"{exc}; choose another --run-id") from None
        self.stdout.write(f"Replaying run {recording.run_id} as {run.run_id}\n")
        run = execute_in_foreground(run, self.stdout)
        found = replaying.compare(recording, run)
        if found:
            raise CommandError(
                f"replay {run.run_id} differs from the recording of {recording.run_id}:\n"
                + "\n".join(f"  - {line}" for line in found)
            )
        self.stdout.write(
            f"Replay {run.run_id} is identical to the recording of {recording.run_id}: "
            f"phase states, attempts, final diff, {run.tokens_used} tokens, "
            f"${run.cost_usd:f} cost\n"
        )
