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


@pytest.fixture
def run_config(tmp_path: Path) -> dict:
    config = copy.deepcopy(EXAMPLE_CONFIG)
    repo = tmp_path / "notes"
    repo.mkdir()
    config["workspace"] = str(repo)
    return config


@pytest.fixture
def alice(db):
    return get_user_model().objects.create_user("alice", password="alice-password-1")


@pytest.fixture
def api(alice) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=alice)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


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
