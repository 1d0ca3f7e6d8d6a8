from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token

from autopack_site.readiness import ensure_migrated


class Command(BaseCommand):
    help = "Create or print a user's API token (send it as `Authorization: Token KEY`)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")

    def handle(self, *args, username: str, **options) -> None:
        ensure_migrated(self.stderr)
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(
                f"No user named {username!r}. Create one in the admin or with "
                "`autopack createsuperuser`."
            )
        token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(token.key)
