from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def require_migrated() -> None:
    """Refuse to serve or work on a database whose schema is behind the code."""
    executor = MigrationExecutor(connection)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if pending:
        names = ", ".join(f"{m.app_label}.{m.name}" for m, _ in pending[:5])
        raise CommandError(
            f"The database has {len(pending)} unapplied migration(s) ({names}). "
            "Run `autopack migrate` (or `make up`, which does it) first."
        )
