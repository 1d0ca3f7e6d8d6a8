from django.apps import AppConfig


class AutopackSiteConfig(AppConfig):
    name = "autopack_site"
    verbose_name = "Autopack platform"
