import shutil
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from autopack_site.readiness import ensure_migrated
from runs import replaying


class Command(BaseCommand):
    help = (
        "Export a finished run as a portable recording (its config, repository, base "
        "commit, model calls and outcomes), or import one to replay it here."
    )

    def add_arguments(self, parser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        export = actions.add_parser("export", help="write a run's recording to a JSON file")
        export.add_argument("run_id")
        export.add_argument("--out", type=Path, help="File to write (default: RUN_ID.json)")
        imported = actions.add_parser(
            "import", help="check a recording and keep it under AUTOPACK_HOME/recordings/"
        )
        imported.add_argument("file", type=Path)

    def handle(self, *args, action: str, **options) -> None:
        try:
            if action == "export":
                ensure_migrated(self.stdout)
                self._export(options["run_id"], options["out"])
            else:
                self._import(options["file"])
        except replaying.RecordingError as exc:
            raise CommandError(str(exc)) from None

    def _export(self, run_id: str, out: Path | None) -> None:
        recording = replaying.load(run_id)
        path = out or Path(f"{run_id}.json")
        try:
            replaying.write_recording(recording, path)
        except OSError as exc:
            raise CommandError(f"cannot write {path}: {exc}") from None
        self.stdout.write(
            f"Wrote {path}: run {run_id}, {len(recording.calls)} model calls, "
            f"{recording.outcomes.state}. Replay it with `autopack replay {path}`.\n"
        )

    def _import(self, source: Path) -> None:
        recording = replaying.read_recording(source)
        folder = Path(settings.AUTOPACK_HOME) / "recordings"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{recording.run_id}.json"
        number = 1
        while target.exists():
            number += 1
            target = folder / f"{recording.run_id}-{number}.json"
        shutil.copyfile(source, target)
        self.stdout.write(
            f"Imported the recording of run {recording.run_id} ({len(recording.calls)} model "
            f"calls, recorded on Autopack {recording.autopack_version}) as {target}.\n"
            f"Replay it with `autopack replay {target}` (add `--repo DIR` for a clone of "
            f"{recording.repository} that has commit {recording.base_commit[:12]}).\n"
        )
