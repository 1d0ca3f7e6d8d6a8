"""The database schema, brought up to date by whichever command needs it first."""

from __future__ import annotations

from typing import TextIO

from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import OperationalError, connection
from django.db.migrations.executor import MigrationExecutor

# Any fixed number: the PostgreSQL advisory lock every Autopack process takes to migrate.
MIGRATION_LOCK = 4_711_227


def pending_migrations() -> list[str]:
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _ in plan]


def ensure_migrated(out: TextIO | None = None) -> None:
    """Apply pending migrations. Processes starting together (`up`'s web server and
    worker, several workers) take turns on a lock; the first migrates, the others find
    nothing left to do."""
    try:
        if not pending_migrations():
            return
    except OperationalError as exc:
        raise CommandError(
            f"Cannot reach the database: {str(exc).strip()}. Check DATABASE_URL, or unset it "
            "to use the embedded database."
        ) from None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK])
        try:
            pending = pending_migrations()
            if pending:
                if out is not None:
                    out.write(f"Applying {len(pending)} database migration(s)...\n")
                call_command("migrate", interactive=False, verbosity=0)
        finally:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK])
