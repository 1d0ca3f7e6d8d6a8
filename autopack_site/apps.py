from django.apps import AppConfig


class AutopackSiteConfig(AppConfig):
    name = "autopack_site"
    verbose_name = "Autopack platform"

    def ready(self) -> None:
        from autopack_site import checks  # noqa: F401 - registers the system checks
