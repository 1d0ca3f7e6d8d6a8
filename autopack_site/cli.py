"""The `autopack` command: Django management commands under the names users need."""

from __future__ import annotations

import os
import sys

USAGE = """usage: autopack COMMAND [options]

  up               start everything on embedded defaults: database, migrations,
                   admin user, web server and worker (what `make up` runs)
  serve            the web server only (ASGI, dashboard, admin and API)
  worker           a background worker that executes runs
  run FILE         execute a run config in the foreground (--detach queues it)
  demo             build the demo project with scripted replies
  plan PLAN.md     turn a markdown plan into a run config (--out, --run,
                   --to-markdown; --from-notes drafts one from notes with the
                   planner model; `autopack plan -h`)
  backlog FILE     build a markdown backlog: one propose-first run per item,
                   merged into a maintenance branch when approved (--project)
  bench SUITE      run a benchmark suite (Exercism folder or SWE-bench JSONL)
                   and print its table; --show, --compare, --json, --csv
  replay RUN_ID    execute a run again with its recorded model replies
  recording export RUN_ID   a run as a portable recording (JSON)
  check            validate the configuration files
  apply REPLY      apply a model's reply to a repository as a run would, print
                   the diff (no database needed; `autopack apply -h` for options)
  token USER       create or print USER's API token
  db status|stop   the embedded PostgreSQL under AUTOPACK_HOME

Every Django management command works too (migrate, createsuperuser, ...):
`autopack help` lists them, `autopack help COMMAND` explains one.
"""


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(USAGE)
        return
    if argv[1] == "apply":
        from runs.engine.apply_reply import main as apply_reply

        sys.exit(apply_reply(argv[2:]))
    if argv[1] == "db":
        # Without Django: loading the settings would start the very server asked about.
        sys.exit(database_command(argv[2:]))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autopack_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(argv)


def database_command(args: list[str]) -> int:
    from pathlib import Path

    from autopack_site import embedded_db
    from autopack_site.env import autopack_home, envstr

    if args not in (["status"], ["stop"]):
        print("usage: autopack db status|stop", file=sys.stderr)
        return 2
    if envstr("DATABASE_URL"):
        print("DATABASE_URL is set: there is no embedded database to manage.", file=sys.stderr)
        return 1
    pgdata = autopack_home(Path(__file__).resolve().parent.parent) / "pgdata"
    if args == ["status"]:
        pid = embedded_db.running_pid(pgdata)
        print(f"running: {pgdata} (pid {pid})" if pid else f"not running: {pgdata}")
    elif embedded_db.stop(pgdata):
        print(f"stopped: {pgdata}")
    else:
        print(f"not running: {pgdata}")
    return 0


if __name__ == "__main__":
    main()
