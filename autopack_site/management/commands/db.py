from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from autopack_site import embedded_db


class Command(BaseCommand):
    help = "Show or stop the embedded PostgreSQL under AUTOPACK_HOME."

    def add_arguments(self, parser) -> None:
        parser.add_argument("action", choices=["status", "stop"])

    def handle(self, *args, action: str, **options) -> None:
        pgdata = settings.EMBEDDED_PGDATA
        if pgdata is None:
            raise CommandError("DATABASE_URL is set: there is no embedded database to manage.")
        if action == "status":
            db = settings.DATABASES["default"]
            self.stdout.write(f"running: {pgdata} (socket {db['HOST']}, port {db['PORT']})")
        elif embedded_db.stop(pgdata):
            self.stdout.write(f"stopped: {pgdata}")
        else:
            self.stdout.write(f"not running: {pgdata}")
