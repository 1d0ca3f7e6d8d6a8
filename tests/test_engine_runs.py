"""Runs executed end to end: real git repositories, real test commands, the real
provider SDKs talking to a fake model server on 127.0.0.1."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runs.models import Attempt, Phase
from runs.states import AttemptState, PhaseState, RunState
from telemetry.models import LlmCall
from tests.builds import APPROVE, QUANTITY, block, config, drive, git, phase, start, write_models
from tests.fake_llm import Reply

pytestmark = pytest.mark.django_db(transaction=True)

REGRESSION = block(
    "inventory/stock.py",
    "    if stock.get(item, 0) < quantity:\n        raise OutOfStock(item)\n",
    "",
)
REPORT = block(
    "inventory/report.py",
    "",
    "def low_stock(stock, threshold):\n"
    "    return sorted(i for i, q in stock.items() if q < threshold)\n",
)


def attempts(run_phase: Phase) -> list[Attempt]:
    return list(run_phase.attempts.order_by("number"))


def test_two_phase_run_lands_two_savepoints_and_leaves_the_base_branch_alone(
    engine, fake_llm, repo
):
    base = git(repo, "rev-parse", "main")
    fake_llm.script("builder", QUANTITY, REPORT)
    fake_llm.script("auditor", APPROVE, APPROVE)

    run = drive(
        start(
            config(
                repo,
                [phase("count", 0, ["inventory/"])],
                [phase("report", 0, ["inventory/report.py"])],
            )
        )
    )

    assert run.state == RunState.DONE_SUCCESS, run.failure_reason
    assert git(repo, "rev-parse", "main") == base
    assert git(repo, "status", "--porcelain") == ""
    log = git(repo, "log", "--format=%an|%s", "main..autopack/build").splitlines()
    assert log == ["Autopack|autopack: report: Task report", "Autopack|autopack: count: Task count"]
    message = git(repo, "log", "-1", "--format=%B", "autopack/build")
    assert "Run: build" in message and "Attempt: 1" in message
    worktree = Path(run.worktree_path)
    assert (worktree / "inventory" / "report.py").exists()
    assert not (repo / "inventory" / "report.py").exists()
    assert run.last_savepoint == git(repo, "rev-parse", "autopack/build")
    kinds = list(run.events.values_list("kind", flat=True))
    for kind in (
        "baseline",
        "attempt_started",
        "llm_call",
        "apply_result",
        "gate_result",
        "verdict",
        "savepoint",
        "run_finished",
    ):
        assert kind in kinds


def test_regression_is_rolled_back_without_residue_and_the_retry_passes(engine, fake_llm, repo):
    (repo / ".gitignore").write_text("gate.log\n")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=T", "-c", "user.email=t@l", "commit", "-qm", "ignore gate log")
    stray = block("inventory/helpers.py", "", "HELPER = 1\n")
    fake_llm.script("builder", QUANTITY + "\n" + REGRESSION + "\n" + stray, QUANTITY)
    fake_llm.script("auditor", APPROVE)
    command = "echo gate > gate.log && python -m pytest -q"

    run = drive(start(config(repo, [phase("count", 0, ["inventory/"], test_command=command)])))

    assert run.state == RunState.DONE_SUCCESS, run.failure_reason
    first, second = attempts(run.phases.get())
    assert (first.state, first.outcome) == (AttemptState.FAILED, "gate_failed")
    assert "test_cannot_remove_more_than_on_hand" in first.error
    assert "inventory/helpers.py" in first.changed_files and first.diff
    retry_prompt = fake_llm.calls("builder")[1].prompt
    assert "test_cannot_remove_more_than_on_hand" in retry_prompt
    assert "DID NOT RAISE" in retry_prompt  # the assertion message, not just the test name
    worktree = Path(run.worktree_path)
    assert not (worktree / "inventory" / "helpers.py").exists()
    assert (worktree / "gate.log").exists()  # ignored build output is left alone
    assert git(worktree, "status", "--porcelain") == ""
    changed = git(repo, "diff", "--name-only", "main", "autopack/build").splitlines()
    assert changed == ["inventory/stock.py"]
    assert "raise OutOfStock(item)" in (worktree / "inventory" / "stock.py").read_text()


def test_malformed_builder_output_gives_a_precise_error_in_the_next_prompt(engine, fake_llm, repo):
    broken = (
        "Done.\n\ninventory/stock.py\n```python\n<<<<<<< SEARCH\n    stock[item] -= quantity\n```\n"
    )
    fake_llm.script("builder", broken, QUANTITY)
    fake_llm.script("auditor", APPROVE)

    run = drive(start(config(repo, [phase("count", 0, ["inventory/"])])))

    assert run.state == RunState.DONE_SUCCESS
    first = attempts(run.phases.get())[0]
    assert first.outcome == "format_error"
    expected = "Block 1 (inventory/stock.py): expected a '=======' line"
    assert expected in first.error
    assert expected in fake_llm.calls("builder")[1].prompt


def test_ambiguous_search_is_refused_not_guessed(engine, fake_llm, repo):
    (repo / "inventory" / "units.py").write_text("SIZE = 1\n\nLIMIT = 5\nSIZE = 1\n")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=T", "-c", "user.email=t@l", "commit", "-qm", "units")
    fake_llm.script(
        "builder",
        block("inventory/units.py", "SIZE = 1\n", "SIZE = 2\n"),
        block("inventory/units.py", "LIMIT = 5\nSIZE = 1\n", "LIMIT = 5\nSIZE = 2\n"),
    )
    fake_llm.script("auditor", APPROVE)

    run = drive(start(config(repo, [phase("units", 0, ["inventory/"])])))

    first, second = attempts(run.phases.get())
    assert first.outcome == "apply_error"
    assert "matches 2 places" in first.feedback and "lines 1, 4" in first.feedback
    assert second.state == AttemptState.PASSED
    content = (Path(run.worktree_path) / "inventory" / "units.py").read_text()
    assert content == "SIZE = 1\n\nLIMIT = 5\nSIZE = 2\n"


def test_writes_outside_scope_absolute_dotdot_and_symlink_escapes_are_refused(
    engine, fake_llm, repo, tmp_path
):
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, repo / "inventory" / "link")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=T", "-c", "user.email=t@l", "commit", "-qm", "link")
    tries = {
        "tests/test_new.py": "outside the phase's scope",
        str(outside / "absolute.py"): "absolute paths are not allowed",
        "inventory/../../escape.py": "'..' is not allowed",
        "inventory/link/owned.py": "symlink that leaves the worktree",
        "inventory/.git/config": "nothing under .git/",
    }
    fake_llm.script("builder", *(block(path, "", "x = 1\n") for path in tries), QUANTITY)
    fake_llm.script("auditor", APPROVE)

    run = drive(start(config(repo, [phase("count", 0, ["inventory/"], max_attempts=6)])))

    assert run.state == RunState.DONE_SUCCESS
    refused = attempts(run.phases.get())[:5]
    for attempt, (path, rule) in zip(refused, tries.items(), strict=True):
        assert attempt.outcome == "policy_violation"
        assert path in attempt.error and rule in attempt.error
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "escape.py").exists() and not (tmp_path / "home" / "escape.py").exists()


def test_truncated_output_is_never_applied(engine, fake_llm, repo, tmp_path):
    engine.AUTOPACK_MODELS = write_models(
        tmp_path / "models.yaml",
        builder={"max_output_tokens": 1000, "max_output_tokens_limit": 2000},
    )
    half = Reply(QUANTITY[: len(QUANTITY) // 2], stop="max_tokens")
    fake_llm.script("builder", half, half, QUANTITY)
    fake_llm.script("auditor", APPROVE)

    run = drive(start(config(repo, [phase("count", 0, ["inventory/"])])))

    first = attempts(run.phases.get())[0]
    assert first.outcome == "truncated" and first.changed_files == []
    assert [c.body["max_tokens"] for c in fake_llm.calls("builder")] == [1000, 2000, 1000]
    assert run.state == RunState.DONE_SUCCESS


def test_exhausted_attempts_fail_the_run_and_later_tiers_never_start(engine, fake_llm, repo):
    fake_llm.script("builder", REGRESSION, REGRESSION)

    run = drive(
        start(
            config(
                repo,
                [phase("count", 0, ["inventory/"], max_attempts=2)],
                [phase("report", 0, ["inventory/"])],
            )
        )
    )

    assert (run.state, run.failure_code) == (RunState.DONE_FAILED, "phase_failed")
    assert "phase count failed after 2 attempt(s)" in run.failure_reason
    assert "test_cannot_remove_more_than_on_hand" in run.failure_reason
    assert run.phases.get(phase_id="count").state == PhaseState.FAILED
    assert run.phases.get(phase_id="report").state == PhaseState.QUEUED
    assert run.tiers.get(index=0).state == PhaseState.FAILED
    assert fake_llm.calls("auditor") == []
    assert git(repo, "rev-parse", "autopack/build") == git(repo, "rev-parse", "main")


def test_escalates_to_the_next_model_and_then_the_next_complexity(engine, fake_llm, repo, tmp_path):
    engine.AUTOPACK_MODELS = write_models(
        tmp_path / "models.yaml",
        complexity_escalation={"thresholds": {"low_to_medium": 1, "medium_to_high": 1}},
    )
    fake_llm.script("builder", REGRESSION, REGRESSION, QUANTITY)
    fake_llm.script("auditor", APPROVE)

    run = drive(start(config(repo, [phase("count", 0, ["inventory/"])])))

    assert run.state == RunState.DONE_SUCCESS
    models = [a.model for a in attempts(run.phases.get())]
    assert models == ["anthropic/claude-low-1", "anthropic/claude-low-2", "openai/gpt-medium-1"]
    assert [(c.api, c.body["model"]) for c in fake_llm.calls("builder")] == [
        ("anthropic", "claude-low-1"),
        ("anthropic", "claude-low-2"),
        ("openai", "gpt-medium-1"),
    ]
    reasons = [a.model_reason for a in attempts(run.phases.get())]
    assert "next model in the builder.low chain" in reasons[1]
    assert "escalated to medium complexity" in reasons[2]


def test_token_cap_stops_a_call_before_it_is_sent(engine, fake_llm, repo):
    run = drive(start(config(repo, [phase("count", 0, ["inventory/"])], token_cap=1000)))

    assert (run.state, run.failure_code) == (RunState.DONE_FAILED, "budget_exhausted")
    assert "run token cap 1,000 reached: 0 used" in run.failure_reason
    assert fake_llm.seen == []
    assert run.tokens_used == 0


def script_two_providers(settings, fake_llm, tmp_path) -> None:
    """An Anthropic Builder and an OpenAI Auditor reporting known usage, cache included."""
    settings.AUTOPACK_MODELS = write_models(
        tmp_path / "models.yaml",
        chains={
            "builder": {level: ["anthropic/claude-b"] for level in ("low", "medium", "high")},
            "auditor": {level: ["openai/gpt-a"] for level in ("low", "medium", "high")},
        },
    )
    fake_llm.script(
        "builder",
        Reply(
            QUANTITY,
            usage={
                "input_tokens": 1200,
                "output_tokens": 300,
                "cache_read_input_tokens": 800,
                "cache_creation_input_tokens": 100,
            },
        ),
    )
    fake_llm.script(
        "auditor",
        Reply(
            APPROVE,
            usage={
                "prompt_tokens": 900,
                "completion_tokens": 40,
                "total_tokens": 940,
                "prompt_tokens_details": {"cached_tokens": 512},
            },
        ),
    )


def test_both_providers_usage_lands_in_llm_calls_exactly(engine, fake_llm, repo, tmp_path):
    script_two_providers(engine, fake_llm, tmp_path)

    run = drive(start(config(repo, [phase("count", 0, ["inventory/"])])))

    builder, auditor = LlmCall.objects.filter(run=run).order_by("id")
    assert (builder.provider, builder.model, builder.role) == ("anthropic", "claude-b", "builder")
    assert (
        builder.prompt_tokens,
        builder.completion_tokens,
        builder.total_tokens,
        builder.cache_read_tokens,
        builder.cache_write_tokens,
    ) == (1200, 300, 2400, 800, 100)
    assert builder.stop_reason == "end_turn" and builder.response_text == QUANTITY
    assert builder.attempt.number == 1 and builder.phase.phase_id == "count"
    assert (auditor.provider, auditor.model, auditor.role) == ("openai", "gpt-a", "auditor")
    assert (
        auditor.prompt_tokens,
        auditor.completion_tokens,
        auditor.total_tokens,
        auditor.cache_read_tokens,
        auditor.cache_write_tokens,
    ) == (900, 40, 940, 512, None)
    assert auditor.request_messages[0]["role"] == "user"
    assert run.tokens_used == 2400 + 940


def test_usage_a_server_does_not_report_is_null_and_charged_at_worst_case(
    engine, fake_llm, repo, tmp_path
):
    engine.AUTOPACK_MODELS = write_models(
        tmp_path / "models.yaml",
        chains={
            "builder": {level: ["openai/local-coder"] for level in ("low", "medium", "high")},
            "auditor": {level: ["openai/local-coder"] for level in ("low", "medium", "high")},
        },
    )
    fake_llm.script("builder", Reply(QUANTITY, usage={}))
    fake_llm.script("auditor", APPROVE)

    run = drive(start(config(repo, [phase("count", 0, ["inventory/"])])))

    call = LlmCall.objects.filter(run=run, role="builder").get()
    assert (call.prompt_tokens, call.completion_tokens, call.total_tokens) == (None, None, None)
    assert call.charged_tokens > call.max_tokens  # prompt estimate plus the whole allowance


def test_provider_errors_fail_the_attempt_with_the_message_and_429_is_retried(
    engine, fake_llm, repo
):
    fake_llm.script(
        "builder",
        Reply(status=500),
        Reply(status=500),
        Reply(status=500),
        Reply(status=429),
        QUANTITY,
    )
    fake_llm.script("auditor", APPROVE)

    run = drive(start(config(repo, [phase("count", 0, ["inventory/"])])))

    assert run.state == RunState.DONE_SUCCESS
    first, second = attempts(run.phases.get())
    assert first.outcome == "provider_error"
    assert "Anthropic API error 500: fake 500 error" in first.error
    assert second.state == AttemptState.PASSED
    assert len(fake_llm.calls("builder")) == 5  # 3 tries, then a 429 retried once
    errors = LlmCall.objects.filter(run=run).exclude(error="")
    assert [e.error for e in errors] == ["Anthropic API error 500: fake 500 error"]


def test_run_without_a_configured_provider_says_which_variables_to_set(engine, repo, monkeypatch):
    for name in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)

    run = drive(start(config(repo, [phase("count", 0, ["inventory/"])])))

    assert (run.state, run.failure_code) == (RunState.DONE_FAILED, "configuration")
    assert "anthropic/claude-low-1 needs the anthropic provider" in run.failure_reason
    assert "ANTHROPIC_API_KEY" in run.failure_reason
    assert not Attempt.objects.exists()
    # Found before anything slow: no environment was prepared, no test ran.
    assert not run.events.filter(kind__in=["environment", "baseline"]).exists()


def test_cancel_stops_the_run_at_its_last_savepoint(engine, fake_llm, repo):
    from runs import services
    from runs.executor import execute_step

    fake_llm.script("builder", QUANTITY, REPORT)
    fake_llm.script("auditor", APPROVE, APPROVE)
    run = start(
        config(
            repo, [phase("count", 0, ["inventory/"])], [phase("report", 0, ["inventory/report.py"])]
        )
    )
    assert execute_step(run.run_id, 0)  # baseline and phase one
    run.refresh_from_db()

    response_done = services.cancel_run(run, by="alice")
    run = drive(run)

    assert response_done is False
    assert run.state == RunState.CANCELLED
    assert run.phases.get(phase_id="report").state == PhaseState.QUEUED
    worktree = Path(run.worktree_path)
    assert git(worktree, "rev-parse", "HEAD") == run.last_savepoint
    assert git(worktree, "status", "--porcelain") == ""
    assert len(fake_llm.calls("builder")) == 1


def test_unified_diff_replies_apply_through_git(engine, fake_llm, repo, tmp_path):
    engine.AUTOPACK_MODELS = write_models(
        tmp_path / "models.yaml", builder={"edit_format": "unified_diff"}
    )
    blob = git(repo, "rev-parse", "--short", "HEAD:inventory/stock.py")
    diff = (
        "```diff\n"
        f"diff --git a/inventory/stock.py b/inventory/stock.py\nindex {blob}..1234567 100644\n"
        "--- a/inventory/stock.py\n+++ b/inventory/stock.py\n@@ -16,3 +16,7 @@\n"
        "     if stock.get(item, 0) < quantity:\n         raise OutOfStock(item)\n"
        "     stock[item] -= quantity\n+\n+\n+def quantity_of(stock, item):\n"
        "+    return stock.get(item, 0)\n```\n"
    )
    fake_llm.script("builder", diff)
    fake_llm.script("auditor", APPROVE)

    run = drive(start(config(repo, [phase("count", 0, ["inventory/"])])))

    assert run.state == RunState.DONE_SUCCESS, run.failure_reason
    assert "unified diff" in fake_llm.calls("builder")[0].body["system"]
    applied = run.events.get(kind="apply_result").payload
    assert (applied["method"], applied["files"]) == ("git apply", ["inventory/stock.py"])
    stock = (Path(run.worktree_path) / "inventory" / "stock.py").read_text()
    assert stock.endswith("def quantity_of(stock, item):\n    return stock.get(item, 0)\n")
