from __future__ import annotations

from pathlib import Path

import pytest

from runs.engine.configfile import ConfigFileError
from runs.engine.escalation import choose
from runs.engine.outcomes import PolicyViolation
from runs.engine.policy import PathPolicy
from runs.engine.routing import load_models_config
from tests.builds import write_models

ROOT = Path(__file__).resolve().parent.parent


def test_shipped_model_config_loads():
    config = load_models_config(ROOT / "config" / "models.yaml")

    assert config.chain("builder", "low")[0].startswith("anthropic/")
    assert config.complexity_escalation.max_attempts_per_phase == 5


def test_bare_model_names_get_their_provider_or_an_error_saying_how(tmp_path):
    path = write_models(
        tmp_path / "m.yaml",
        chains={
            "builder": {"low": ["claude-sonnet-4-5"], "medium": ["gpt-5"], "high": ["o3-mini"]},
            "auditor": {"low": ["claude-x"], "medium": ["claude-x"], "high": ["glm-4.6"]},
        },
    )

    with pytest.raises(ConfigFileError) as raised:
        load_models_config(path)

    message = str(raised.value)
    assert "escalation_chains.auditor.high.models: 'glm-4.6' does not say which provider" in message
    assert "write 'openai/glm-4.6'" in message
    assert "builder" not in message  # the qualified bare names were fine


def test_unknown_and_bad_keys_are_named(tmp_path):
    path = write_models(
        tmp_path / "m.yaml",
        complexity_escalation={"thresholds": {"low_to_medium": 0}},
        replan={"trigger_threshold": 2, "similarity": 0.8},
        doctor_models={"cheap": "sonnet-without-provider"},
    )

    with pytest.raises(ConfigFileError) as raised:
        load_models_config(path)

    assert "complexity_escalation.thresholds.low_to_medium: Input should be greater than" in str(
        raised.value
    )
    assert "replan.similarity: unknown key" in str(raised.value)
    assert "doctor_models.cheap: 'sonnet-without-provider' does not say which provider" in str(
        raised.value
    )


def test_invalid_yaml_is_reported_with_the_file(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("escalation_chains: [unclosed")
    with pytest.raises(ConfigFileError, match="is not valid YAML"):
        load_models_config(path)


def test_escalation_walks_the_chain_then_the_next_complexity(tmp_path):
    config = load_models_config(write_models(tmp_path / "m.yaml"))  # thresholds 2 and 2

    picks = [choose(config, "low", failures).builder for failures in range(8)]

    assert (
        picks
        == ["anthropic/claude-low-1"] * 2
        + ["anthropic/claude-low-2"] * 2
        + ["openai/gpt-medium-1"] * 2
        + ["anthropic/claude-high-1"] * 2
    )
    assert choose(config, "low", 0).auditor == "anthropic/claude-audit"


def test_escalation_can_stay_within_the_complexity(tmp_path):
    path = write_models(
        tmp_path / "m.yaml",
        complexity_escalation={"enabled": False},
        auditor={"complexities": ["high"]},
    )
    config = load_models_config(path)

    assert choose(config, "low", 10).builder == "anthropic/claude-low-2"
    assert choose(config, "low", 0).auditor is None


def test_best_first_starts_at_the_strongest_model_of_the_chain_then_escalates(tmp_path):
    config = load_models_config(write_models(tmp_path / "m.yaml"))

    picks = [choose(config, "low", n, "best_first").builder for n in range(5)]

    assert picks == ["anthropic/claude-low-2"] * 2 + ["openai/gpt-medium-1"] * 2 + [
        "anthropic/claude-high-1"
    ]
    assert (
        "best_first starts at the strongest model" in choose(config, "low", 0, "best_first").reason
    )


def test_progressive_starts_at_the_cheapest_and_a_model_list_replaces_the_chains(tmp_path):
    config = load_models_config(write_models(tmp_path / "m.yaml"))
    listed = config.policy_for("", {"models": ["gpt-5-mini", "anthropic/claude-x"]})

    assert choose(config, "medium", 0, "progressive").builder == "openai/gpt-medium-1"
    assert [choose(config, "low", n, listed).builder for n in range(5)] == [
        "openai/gpt-5-mini",
        "openai/gpt-5-mini",
        "anthropic/claude-x",
        "anthropic/claude-x",
        "anthropic/claude-x",
    ]


def test_a_category_policy_applies_when_the_phase_sets_none(tmp_path):
    config = load_models_config(
        write_models(tmp_path / "m.yaml", llm_routing_policies={"security": "best_first"})
    )

    assert config.policy_for("security", None) == "best_first"
    assert config.policy_for("security", "progressive") == "progressive"
    assert config.policy_for("docs", None) == "progressive"


def test_an_unknown_category_policy_is_named_with_its_key(tmp_path):
    path = write_models(tmp_path / "m.yaml", llm_routing_policies={"security": "fastest"})

    with pytest.raises(ConfigFileError) as failed:
        load_models_config(path)

    assert "llm_routing_policies.security" in str(failed.value)
    assert "unknown escalation policy 'fastest'" in str(failed.value)


@pytest.mark.parametrize(
    "path, rule",
    [
        ("/etc/passwd", "absolute paths"),
        ("src/../../x", "'..' is not allowed"),
        (".git/hooks/pre-commit", "nothing under .git/"),
        ("docs/readme.md", "outside the phase's scope"),
        ("src/vendor/lib.py", "read-only context"),
        ("", "empty path"),
    ],
)
def test_path_policy_names_the_rule_it_applies(tmp_path, path, rule):
    policy = PathPolicy(tmp_path, ("src/",), ("src/vendor",))
    with pytest.raises(PolicyViolation, match=rule):
        policy.check(path)


def test_path_policy_accepts_scope_prefixes_and_the_whole_repository(tmp_path):
    assert PathPolicy(tmp_path, ("src",)).check("./src/app/main.py") == "src/app/main.py"
    assert PathPolicy(tmp_path, ("src",)).check("src") == "src"
    with pytest.raises(PolicyViolation):
        PathPolicy(tmp_path, ("src",)).check("srcfoo/x.py")
    assert PathPolicy(tmp_path, (".",)).check("README.md") == "README.md"
