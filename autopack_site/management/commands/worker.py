from django.core.management import call_command
from django.core.management.base import BaseCommand
from django_q.models import Schedule

from autopack_site.readiness import ensure_migrated

# Housekeeping every worker makes sure is scheduled, once a minute.
EVERY_MINUTE = {
    # Takes over runs whose worker died mid-step, once their lease has expired.
    "autopack: resume stalled runs": "runs.tasks.resume_stalled",
    # Denies governance requests nobody decided in time.
    "autopack: expire governance requests": "governance.services.expire_requests",
}


class Command(BaseCommand):
    help = "Run a background worker (a django-q cluster) that executes runs."

    def handle(self, *args, **options) -> None:
        ensure_migrated(self.stdout)
        for name, func in EVERY_MINUTE.items():
            Schedule.objects.update_or_create(
                name=name,
                defaults={
                    "func": func,
                    "schedule_type": Schedule.MINUTES,
                    "minutes": 1,
                    "repeats": -1,
                },
            )
        call_command("qcluster")
