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
  check            validate the configuration files
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
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autopack_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(argv)


if __name__ == "__main__":
    main()
