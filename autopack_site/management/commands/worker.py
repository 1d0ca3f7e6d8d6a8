from django.core.management import call_command
from django.core.management.base import BaseCommand
from django_q.models import Schedule

from autopack_site.readiness import require_migrated


class Command(BaseCommand):
    help = "Run a background worker (a django-q cluster) that executes runs."

    def handle(self, *args, **options) -> None:
        require_migrated()
        # Picks up runs whose worker died mid-step once their lease has expired.
        Schedule.objects.update_or_create(
            name="autopack: resume stalled runs",
            defaults={
                "func": "runs.tasks.resume_stalled",
                "schedule_type": Schedule.MINUTES,
                "minutes": 1,
                "repeats": -1,
            },
        )
        Schedule.objects.update_or_create(
            name="autopack: expire governance requests",
            defaults={
                "func": "governance.services.expire_requests",
                "schedule_type": Schedule.MINUTES,
                "minutes": 1,
                "repeats": -1,
            },
        )
        call_command("qcluster")
