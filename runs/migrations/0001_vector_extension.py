"""Enable pgvector, with an error that says what to do when the server cannot."""

import psycopg
from django.core.exceptions import ImproperlyConfigured
from django.db import migrations
from django.db.utils import ProgrammingError


def enable_vector(apps, schema_editor):
    connection = schema_editor.connection
    db = connection.settings_dict
    where = f"database {db['NAME']!r} on {db['HOST'] or 'localhost'}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'")
        if cursor.fetchone():
            return
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
        if not cursor.fetchone():
            raise ImproperlyConfigured(
                f"The PostgreSQL server for DATABASE_URL ({where}) does not provide the "
                "'vector' extension. Install pgvector on that server, or unset DATABASE_URL "
                "to use Autopack's embedded PostgreSQL."
            )
        try:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except ProgrammingError as exc:
            if not isinstance(exc.__cause__, psycopg.errors.InsufficientPrivilege):
                raise
            raise ImproperlyConfigured(
                f"The 'vector' extension is not enabled in {where} and user "
                f"{db['USER']!r} may not create it ({exc}). Ask a "
                "superuser to run: CREATE EXTENSION vector;"
            ) from None


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [migrations.RunPython(enable_vector, migrations.RunPython.noop)]
