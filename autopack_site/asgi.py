"""ASGI entry point served by `autopack serve` (uvicorn)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autopack_site.settings")

application = get_asgi_application()
