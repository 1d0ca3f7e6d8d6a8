from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

# A run config in the format of the operator guide ("Run Config JSON Structure"), with
# our own values. Tests point `workspace` at a real directory.
EXAMPLE_CONFIG = json.loads((Path(__file__).parent / "fixtures" / "notes_search.json").read_text())


@pytest.fixture(scope="session", autouse=True)
def _channel_layer_on_the_test_database(django_db_setup, django_db_blocker):
    """pytest-django renames the database for tests; the channel layer's own connection
    settings were copied before that, so point them at the test database too."""
    from channels.layers import channel_layers
    from django.conf import settings
    from django.db import connections

    layer = settings.CHANNEL_LAYERS["default"]
    if not layer["BACKEND"].startswith("channels_postgres"):
        yield
        return
    layer["CONFIG"]["NAME"] = connections["default"].settings_dict["NAME"]
    channel_layers.backends.clear()
    yield
    # The layer keeps pooled and listening connections on event loops that are gone by
    # now; end them so the test database can be dropped.
    with django_db_blocker.unblock(), connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture(scope="session")
def shared_environments(tmp_path_factory) -> Path:
    """Project environments and package downloads, shared by the whole session as runs
    of one machine share them."""
    return tmp_path_factory.mktemp("environments")


@pytest.fixture(autouse=True)
def _shared_environments(settings, shared_environments: Path) -> None:
    settings.AUTOPACK_ENVIRONMENTS = shared_environments


@pytest.fixture
def run_config(tmp_path: Path) -> dict:
    config = copy.deepcopy(EXAMPLE_CONFIG)
    repo = tmp_path / "notes"
    repo.mkdir()
    config["workspace"] = str(repo)
    return config


@pytest.fixture
def alice(db):
    """Staff who may approve governance requests."""
    from django.contrib.auth.models import Permission

    user = get_user_model().objects.create_user("alice", password="alice-password-1", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="approve_governancerequest"))
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_governancerequest", "view_run"])
    )
    return user


@pytest.fixture
def bob(db):
    """Staff who may look at governance requests but not decide them."""
    from django.contrib.auth.models import Permission

    user = get_user_model().objects.create_user("bob", password="bob-password-1", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_governancerequest"))
    return user


@pytest.fixture
def charlie(db):
    """An account with no access to anything but the API's read side."""
    return get_user_model().objects.create_user("charlie", password="charlie-password-1")


def token_client(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def api(alice) -> APIClient:
    return token_client(alice)


@pytest.fixture
def fake_llm(monkeypatch, settings):
    from tests.fake_llm import FakeLLM

    server = FakeLLM().start()
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai-key")
    monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
    settings.AUTOPACK_LLM_MAX_RETRIES = 2
    yield server
    server.stop()


@pytest.fixture
def engine(settings, tmp_path):
    """Engine settings for a test: its own AUTOPACK_HOME and model config."""
    from tests.builds import write_models

    settings.AUTOPACK_HOME = tmp_path / "home"
    settings.AUTOPACK_MODELS = write_models(tmp_path / "models.yaml")
    settings.AUTOPACK_GATE_TIMEOUT = 120
    return settings


@pytest.fixture
def repo(tmp_path):
    from tests.builds import make_repo

    return make_repo(tmp_path / "inventory")


# Benchmarks as the dashboard and the API show them (test_bench_pages, test_bench_api).
@pytest.fixture
def people(db) -> dict:
    users = get_user_model().objects
    return {
        "creator": users.create_user("creator"),
        "stranger": users.create_user("stranger"),
        "staff": users.create_user("staff", is_staff=True),
    }


def _bench_task_run(tmp_path, run_id: str):
    from runs import services
    from tests.builds import config, phase

    repo = tmp_path / run_id
    repo.mkdir()
    data = config(repo, [phase("solve", 0, ["bowling/"])], run_id=run_id)
    return services.create_run(data, enqueue=False)


@pytest.fixture
def benches(people, tmp_path) -> dict:
    """polyglot-a: two languages, two tries, a task passed at each try, one failed and
    one that could not be tried; polyglot-b, a replay of it; and cli-bench, started from
    the command line."""
    from tests.builds import bench_run

    first = bench_run("polyglot-a", people["creator"], wall_seconds=3725.0)
    first.tasks.create(
        task_id="python/bowling", language="python", status="passed", passed_try=1,
        tries_used=1, prompt_tokens=1000, completion_tokens=200, cost_usd="0.012",
        seconds=10.0, run=_bench_task_run(tmp_path, "polyglot-a--python-bowling"),
    )  # fmt: skip
    first.tasks.create(
        task_id="python/grep", language="python", status="passed", passed_try=2,
        tries_used=2, well_formed=False, malformed=1, syntax_errors=1, prompt_tokens=3000,
        completion_tokens=500, cost_usd="0.03", seconds=30.0,
    )  # fmt: skip
    first.tasks.create(
        task_id="go/bowling", language="go", status="failed", tries_used=2, test_timeouts=1,
        prompt_tokens=2000, completion_tokens=400, cost_usd="0.02", seconds=20.0,
    )  # fmt: skip
    first.tasks.create(
        task_id="go/grep", language="go", status="error",
        error="the go toolchain could not be installed: go1.21.0 not found",
    )  # fmt: skip
    second = bench_run("polyglot-b", people["creator"], model="scripted", replay_of=first)
    second.tasks.create(
        task_id="python/bowling", language="python", status="passed", passed_try=1,
        tries_used=1, prompt_tokens=100, completion_tokens=20, cost_usd="0.001", seconds=1.0,
        run=_bench_task_run(tmp_path, "polyglot-b--python-bowling"),
    )  # fmt: skip
    second.tasks.create(
        task_id="go/bowling", language="go", status="passed", passed_try=2, tries_used=2,
        prompt_tokens=200, completion_tokens=50, cost_usd="0.002", seconds=2.0,
    )  # fmt: skip
    cli = bench_run("cli-bench", None)
    return {"a": first, "b": second, "cli": cli}
