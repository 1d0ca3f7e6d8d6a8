from django.core.management import call_command
from django.core.management.base import BaseCommand

from autopack_site.readiness import require_migrated


class Command(BaseCommand):
    help = "Run a background worker (a django-q cluster) that executes runs."

    def handle(self, *args, **options) -> None:
        require_migrated()
        call_command("qcluster")
