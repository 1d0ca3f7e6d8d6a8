import os

import uvicorn
from django.core.management.base import BaseCommand

from autopack_site.readiness import ensure_migrated


class Command(BaseCommand):
    help = "Serve the web application (dashboard, admin, API, websockets) over ASGI."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))

    def handle(self, *args, host: str, port: int, **options) -> None:
        ensure_migrated(self.stdout)
        config = uvicorn.Config(
            "autopack_site.asgi:application",
            host=host,
            port=port,
            lifespan="off",
            timeout_graceful_shutdown=5,
            log_level="info",
        )
        uvicorn.Server(config).run()
