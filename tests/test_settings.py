from __future__ import annotations

import os
import signal
import time

import psycopg
import pytest
from django.db import connection

from autopack_site import embedded_db
from tests.support import autopack, autopack_env, run_python

REPORT_SERVER = """
import django
django.setup()
from django.conf import settings
from django.db import connection
from autopack_site import embedded_db
with connection.cursor() as cursor:
    cursor.execute("SELECT current_database(), count(*) FROM pg_extension WHERE extname='vector'")
    name, has_vector = cursor.fetchone()
print(embedded_db.start(settings.EMBEDDED_PGDATA).pid, settings.EMBEDDED_DB_STARTED_HERE, name)
"""


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "home"
    yield home
    embedded_db.stop(home / "pgdata")


def _report(env) -> tuple[int, bool, str]:
    result = run_python(REPORT_SERVER, env)
    assert result.returncode == 0, result.stderr
    pid, started_here, name = result.stdout.split()
    return int(pid), started_here == "True", name


def test_embedded_database_starts_once_and_is_reused(home):
    env = autopack_env(home)

    first_pid, first_started, name = _report(env)
    second_pid, second_started, _ = _report(env)

    assert name == "autopack"
    assert (home / "pgdata" / "PG_VERSION").exists()
    assert first_started is True
    assert second_pid == first_pid and second_started is False


def test_embedded_database_recovers_after_a_hard_kill(home):
    env = autopack_env(home)
    first_pid, _, _ = _report(env)

    os.kill(first_pid, signal.SIGKILL)
    time.sleep(0.2)
    second_pid, started_here, _ = _report(env)

    assert second_pid != first_pid
    assert started_here is True


def test_secret_key_is_generated_once(home):
    env = autopack_env(home)
    code = "from django.conf import settings; print(settings.SECRET_KEY)"

    first = run_python(code, env).stdout.strip()
    second = run_python(code, env).stdout.strip()

    assert len(first) > 40 and first == second
    assert oct((home / "secret_key").stat().st_mode & 0o777) == "0o600"


def test_bad_boolean_fails_naming_the_variable(home):
    result = run_python("import django; django.setup()", autopack_env(home, DEBUG="maybe"))

    assert result.returncode != 0
    assert "DEBUG='maybe' is not a boolean; use true or false" in result.stderr


def test_bad_integer_fails_naming_the_variable(home):
    result = run_python("import django; django.setup()", autopack_env(home, AUTOPACK_WORKERS="two"))

    assert result.returncode != 0
    assert "AUTOPACK_WORKERS='two' is not an integer" in result.stderr


def test_sqlite_url_is_refused(home):
    result = run_python(
        "import django; django.setup()", autopack_env(home, DATABASE_URL="sqlite:///autopack.db")
    )

    assert result.returncode != 0
    assert "DATABASE_URL must be a postgres:// or postgresql:// URL" in result.stderr
    assert not (home / "pgdata").exists()


@pytest.fixture
def database_without_vector(db):
    params = connection.settings_dict
    admin = psycopg.connect(
        host=params["HOST"],
        port=params["PORT"],
        user="postgres",
        dbname="postgres",
        autocommit=True,
    )
    admin.execute("DROP DATABASE IF EXISTS autopack_novector")
    admin.execute("DROP ROLE IF EXISTS autopack_limited")
    admin.execute("CREATE ROLE autopack_limited LOGIN")
    admin.execute("CREATE DATABASE autopack_novector OWNER autopack_limited")
    yield f"postgresql://autopack_limited@/autopack_novector?host={params['HOST']}&port={params['PORT']}"
    admin.execute("DROP DATABASE autopack_novector")
    admin.execute("DROP ROLE autopack_limited")
    admin.close()


def test_database_url_without_vector_rights_gives_a_clear_error(home, database_without_vector):
    env = autopack_env(home, DATABASE_URL=database_without_vector)

    result = autopack("migrate", env=env)

    assert result.returncode != 0
    assert "The 'vector' extension is not enabled in database 'autopack_novector'" in result.stderr
    assert "CREATE EXTENSION vector" in result.stderr
    assert not (home / "pgdata").exists()  # the embedded server was not used
