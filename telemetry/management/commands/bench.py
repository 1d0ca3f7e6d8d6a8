import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from autopack_site.readiness import ensure_migrated
from runs.engine import suites
from runs.engine.providers.bench_models import KINDS
from telemetry import bench_report, benchmarks
from telemetry.models import BenchRun, BenchTask


class Command(BaseCommand):
    help = (
        "Run every task of a benchmark suite (an Exercism-format folder such as aider's "
        "polyglot benchmark, or a SWE-bench-format JSONL file) as Autopack runs and print "
        "the results; or show, export and compare stored benchmarks."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("suite", nargs="?", type=Path, help="folder or .jsonl file")
        parser.add_argument(
            "--model",
            default="oracle",
            help=f"a model id from config/models.yaml, or a scripted model: {', '.join(KINDS)}",
        )
        parser.add_argument("--tries", type=int, default=2, help="attempts per task (2)")
        parser.add_argument("--limit", type=int, help="at most this many tasks")
        parser.add_argument(
            "--languages", help="comma-separated, e.g. python,go (default: every language)"
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=1,
            help="queue workers to start for the benchmark, one task each at a time "
            "(0: execute the tasks in this process)",
        )
        parser.add_argument(
            "--memory", action="store_true", help="let runs use the projects' memory"
        )
        parser.add_argument("--replay", metavar="BENCH_ID", help="replay a stored benchmark")
        parser.add_argument("--show", metavar="BENCH_ID", help="print a stored benchmark")
        parser.add_argument("--compare", nargs=2, metavar="BENCH_ID", help="two side by side")
        parser.add_argument("--json", type=Path, metavar="FILE", help="write the results as JSON")
        parser.add_argument("--csv", type=Path, metavar="FILE", help="write one row per task")

    def handle(self, *args, **options) -> None:
        ensure_migrated(self.stdout)
        if options["compare"]:
            first, second = (_bench(b) for b in options["compare"])
            self.stdout.write(bench_report.comparison(first, second))
            return
        if options["show"]:
            bench = _bench(options["show"])
        else:
            bench = self._run(options)
        self.stdout.write(bench_report.table(bench))
        if options["json"]:
            options["json"].write_text(json.dumps(bench_report.as_json(bench), indent=2))
            self.stdout.write(f"wrote {options['json']}")
        if options["csv"]:
            options["csv"].write_text(bench_report.as_csv(bench))
            self.stdout.write(f"wrote {options['csv']}")

    def _run(self, options: dict) -> BenchRun:
        replayed = _bench(options["replay"]) if options["replay"] else None
        suite = options["suite"] or (Path(replayed.suite) if replayed else None)
        if suite is None:
            raise CommandError("give a SUITE (a folder or .jsonl file), --show, or --compare")
        if options["tries"] < 1 or options["workers"] < 0:
            raise CommandError("--tries must be at least 1 and --workers at least 0")
        languages = [x.strip() for x in (options["languages"] or "").split(",") if x.strip()]
        settings = benchmarks.Options(
            model=replayed.model if replayed else options["model"],
            tries=replayed.tries if replayed else options["tries"],
            limit=replayed.limit if replayed else options["limit"],
            languages=replayed.languages if replayed else languages,
            workers=options["workers"],
            memory=options["memory"],
            replay_of=replayed,
        )
        try:
            bench = benchmarks.create(suite, settings)
        except suites.SuiteError as exc:
            raise CommandError(str(exc)) from None
        total = bench.tasks.count()
        self.stdout.write(
            f"Benchmark {bench.bench_id}: {total} task(s), model {bench.model}, "
            f"{bench.tries} tries, "
            + (f"{settings.workers} worker(s)" if settings.workers else "in this process")
        )
        done = [0]

        def report(task: BenchTask) -> None:
            done[0] += 1
            self.stdout.write(f"[{done[0]}/{total}] {task.task_id}: {_outcome(task)}")

        runner = (
            benchmarks.WorkerPool(settings.workers) if settings.workers else benchmarks.InProcess()
        )
        try:
            return benchmarks.execute(bench, runner, settings, report)
        except KeyboardInterrupt:
            raise CommandError(
                f"benchmark {bench.bench_id} stopped; its unfinished runs were cancelled"
            ) from None


def _bench(bench_id: str) -> BenchRun:
    bench = BenchRun.objects.filter(bench_id=bench_id).first()
    if bench is None:
        raise CommandError(f"no benchmark {bench_id!r} (`autopack bench --show ID` lists none)")
    return bench


def _outcome(task: BenchTask) -> str:
    if task.status == BenchTask.Status.PASSED:
        text = f"passed at try {task.passed_try}"
    elif task.status == BenchTask.Status.ERROR:
        return f"error: {task.error[:300]}"
    else:
        text = f"failed after {task.tries_used} tr{'y' if task.tries_used == 1 else 'ies'}"
        if task.malformed:
            text += f" ({task.malformed} malformed)"
    return text + (f" ({task.seconds:.1f} s)" if task.seconds is not None else "")
