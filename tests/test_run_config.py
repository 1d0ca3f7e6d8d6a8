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
