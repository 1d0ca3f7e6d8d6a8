from __future__ import annotations

import json
from pathlib import Path

import pytest

from runs.config import ConfigError, parse_run_config

FIXTURE = Path(__file__).parent / "fixtures" / "notes_search.json"


def _config(**changes) -> dict:
    config = json.loads(FIXTURE.read_text())
    config.update(changes)
    return config


def test_read_only_context_strings_become_objects():
    config = parse_run_config(_config())

    context = config.tiers[0].phases[0].scope.read_only_context
    assert [c.model_dump() for c in context] == [
        {"path": "notes/models.py", "reason": ""},
        {"path": "docs/schema.md", "reason": "current table layout"},
    ]


def test_read_only_context_objects_reject_unknown_keys():
    config = _config()
    config["tiers"][0]["phases"][0]["scope"]["read_only_context"] = [{"path": "a", "why": "b"}]

    with pytest.raises(ConfigError) as raised:
        parse_run_config(config)

    assert raised.value.errors == [
        {
            "path": "tiers[0].phases[0].scope.read_only_context[0].why",
            "message": "unknown field 'why'",
        }
    ]


def test_single_acceptance_criterion_may_be_a_string():
    config = _config()
    config["tiers"][1]["phases"][1]["acceptance_criteria"] = "docs build cleanly"

    phase = parse_run_config(config).tiers[1].phases[1]

    assert phase.acceptance_criteria == ["docs build cleanly"]


def test_repo_field_is_an_alternative_to_workspace():
    config = _config(repo="git@example.invalid:team/notes.git")
    del config["workspace"]

    parsed = parse_run_config(config)

    assert parsed.repository == "git@example.invalid:team/notes.git"
    assert parsed.repository_is_url


def test_workspace_and_repo_must_agree():
    with pytest.raises(ConfigError, match="`workspace` and `repo` differ"):
        parse_run_config(_config(repo="/elsewhere"))


def test_text_the_database_cannot_store_is_refused_by_path():
    config = _config(goal="ship \0 it")
    config["tiers"][0]["phases"][0]["scope"]["paths"] = ["notes/\0"]
    config["tiers"][0]["phases"][0]["extra\0"] = 1
    config["tiers"][1]["phases"][0]["task_name"] = "half a pair \ud800"

    with pytest.raises(ConfigError) as nul:
        parse_run_config(config)
    config["goal"] = "ship it"
    config["tiers"][0]["phases"][0]["scope"]["paths"] = ["notes/"]
    del config["tiers"][0]["phases"][0]["extra\0"]
    with pytest.raises(ConfigError) as surrogate:
        parse_run_config(config)

    assert {error["path"] for error in nul.value.errors} == {
        "goal",
        "tiers[0].phases[0].scope.paths[0]",
        "tiers[0].phases[0].extra\\x00",
    }
    assert all("NUL character" in error["message"] for error in nul.value.errors)
    assert surrogate.value.errors == [
        {
            "path": "tiers[1].phases[0].task_name",
            "message": "Input should be a valid string, unable to parse raw data as a unicode "
            "string",
        }
    ]
