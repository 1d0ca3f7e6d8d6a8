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
