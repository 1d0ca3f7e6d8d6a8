"""Record and replay: a run recorded through the fake model server executes again from
its recorded replies, asking no model, to the same outcomes, tokens and cost; a prompt
that diverged from the recording stops the replay with an error that says where; a
recording exported to a file replays without the run it came from."""

from __future__ import annotations

import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from memory.models import Memory
from runs import replaying
from runs.engine.outcomes import ProviderError
from runs.engine.prompts import LESSONS_HEADING, MEMORY_HEADING
from runs.engine.protocols import LLMRequest
from runs.engine.providers.replay import MissingRecording, ReplayProvider
from runs.engine.recording import Identity, RecordedCall, normalise, prompt_key, request_key
from runs.models import Attempt, Run
from runs.states import RunState
from telemetry.models import LlmCall
from tests.builds import APPROVE, QUANTITY, config, drive, git, phase, start, write_models
from tests.fake_llm import Reply
from tests.test_memory_runs import BROKEN, QUANTITY_TEST

PRICES = {
    "models": {
        "anthropic/claude-b": {"input": 3, "output": 15, "cache_read": 0.3, "cache_write": 3.75},
        "openai/gpt-a": {"input": 1.25, "output": 10, "cache_read": 0.125},
    }
}


@pytest.fixture
def priced(engine, tmp_path):
    """An Anthropic Builder (prompts counted by the provider) and an OpenAI Auditor
    (prompts estimated), both priced."""
    engine.AUTOPACK_MODELS = write_models(
        tmp_path / "models.yaml",
        chains={
            "builder": {level: ["anthropic/claude-b"] for level in ("low", "medium", "high")},
            "auditor": {level: ["openai/gpt-a"] for level in ("low", "medium", "high")},
        },
    )
    engine.AUTOPACK_PRICES = tmp_path / "prices.yaml"
    engine.AUTOPACK_PRICES.write_text(json.dumps(PRICES))
    return engine


def record(fake_llm, repo, run_id: str = "recorded") -> Run:
    """A run whose first attempt fails the tests (its output goes into the second
    prompt) and whose second passes; the Auditor reports no usage, so it is charged at
    its worst case, from the prompt size the budget admitted it with."""
    fake_llm.script("builder", BROKEN + QUANTITY_TEST, QUANTITY + QUANTITY_TEST)
    fake_llm.script("auditor", Reply(APPROVE, usage={}))
    count = phase(
        "count",
        0,
        ["inventory/", "tests/"],
        description="Add quantity_of(stock, item) to the inventory ledger, with a test",
    )
    run = drive(start(config(repo, [count], run_id=run_id)))
    assert run.state == RunState.DONE_SUCCESS
    assert "undefined_inventory_offset" in fake_llm.calls("builder")[-1].prompt
    return run


def charges(run: Run) -> list[tuple]:
    calls = LlmCall.objects.filter(run=run).order_by("id")
    return [
        (c.role, c.prompt_tokens_checked, c.charged_tokens, c.cost_usd, c.charged_cost_usd)
        for c in calls
    ]


def attempts(run: Run) -> list[tuple[int, str, str]]:
    rows = Attempt.objects.filter(run=run).order_by("number")
    return [(a.number, a.state, a.outcome) for a in rows]


def asked(fake_llm) -> int:
    return len(fake_llm.seen) + len(fake_llm.counted)


@pytest.mark.django_db(transaction=True)
def test_a_recorded_run_replays_without_asking_a_model(priced, fake_llm, repo):
    record(fake_llm, repo, run_id="earlier")  # what the project remembers for the next run
    recorded = record(fake_llm, repo)
    assert MEMORY_HEADING in fake_llm.calls("builder")[-2].prompt
    before = asked(fake_llm)

    replayed = drive(replaying.start_replay("recorded"))

    assert asked(fake_llm) == before
    assert replayed.run_id == "recorded-replay-1" and replayed.config["memory"] is False
    assert replaying.compare("recorded", replayed) == []
    assert attempts(replayed) == [(1, "FAILED", "gate_failed"), (2, "PASSED", "passed")]
    assert replaying.final_diff(replayed) == replaying.final_diff(recorded)
    assert "def quantity_of" in replaying.final_diff(replayed)
    assert (replayed.tokens_used, replayed.cost_usd) == (recorded.tokens_used, recorded.cost_usd)
    assert recorded.cost_usd > 0
    # The Builder's prompts were counted by Anthropic, the Auditor's estimated: the
    # replay admitted and charged every call with the recorded sizes.
    assert charges(replayed) == charges(recorded)
    assert {c.provider for c in LlmCall.objects.filter(run=replayed)} == {"replay"}
    # Memory is off in a replay: what the recorded run was told from memory is not in
    # the key, and the replay leaves nothing in the project's memory.
    assert (
        MEMORY_HEADING
        not in LlmCall.objects.filter(run=replayed).first().request_messages[0]["content"]
    )
    assert not Memory.objects.filter(run=replayed).exists()


@pytest.mark.django_db(transaction=True)
def test_a_prompt_that_differs_from_the_recording_stops_the_replay(priced, fake_llm, repo):
    recorded = record(fake_llm, repo)
    second = LlmCall.objects.filter(run=recorded, role="builder").order_by("id")[1]
    second.request_messages = [
        {**m, "content": m["content"].replace("def remove_item", "def take_item")}
        for m in second.request_messages
    ]
    second.save()
    before = asked(fake_llm)

    replayed = drive(replaying.start_replay("recorded"))

    assert asked(fake_llm) == before
    assert (replayed.state, replayed.failure_code) == (RunState.DONE_FAILED, "configuration")
    reason = replayed.failure_reason
    assert "no recorded reply for the builder's request (phase count, attempt 2" in reason
    assert "def take_item" in reason and "def remove_item" in reason  # where it differs
    assert attempts(replayed) == [(1, "FAILED", "gate_failed"), (2, "FAILED", "configuration")]
    assert LlmCall.objects.filter(run=replayed).count() == 1  # nothing was made up
    assert any("phase count attempts" in line for line in replaying.compare("recorded", replayed))


@pytest.mark.django_db(transaction=True)
def test_an_exported_recording_replays_after_its_run_is_gone(priced, fake_llm, repo, tmp_path):
    recorded = record(fake_llm, repo)
    expected = (recorded.tokens_used, recorded.cost_usd, replaying.final_diff(recorded))
    exported = tmp_path / "bug-report.json"
    out = StringIO()
    call_command("recording", "export", "recorded", "--out", str(exported), stdout=out)
    assert "3 model calls, DONE_SUCCESS" in out.getvalue()
    data = json.loads(exported.read_text())
    assert (data["format"], data["version"], data["base_commit"]) == (
        "autopack-recording",
        1,
        recorded.base_commit,
    )
    assert [c["role"] for c in data["calls"]] == ["builder", "builder", "auditor"]
    assert [len(p["attempts"]) for p in data["outcomes"]["phases"]] == [2]
    recorded.delete()
    # Another installation, with its own copy of the repository (the recorded base commit).
    priced.AUTOPACK_HOME = tmp_path / "elsewhere"
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    out = StringIO()
    call_command("recording", "import", str(exported), stdout=out)
    kept = priced.AUTOPACK_HOME / "recordings" / "recorded.json"
    assert f"autopack replay {kept}" in out.getvalue()
    before = asked(fake_llm)

    out = StringIO()
    call_command("replay", str(kept), "--repo", str(clone), stdout=out)

    assert asked(fake_llm) == before
    assert "Replay recorded-replay-1 is identical to the recording of recorded" in out.getvalue()
    replayed = Run.objects.get(run_id="recorded-replay-1")
    assert replayed.project.repository == str(clone)
    assert (replayed.tokens_used, replayed.cost_usd, replaying.final_diff(replayed)) == expected


@pytest.mark.django_db(transaction=True)
def test_a_scripted_run_replays_without_billing_as_it_was_recorded(engine, repo, tmp_path):
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps({"builder": [QUANTITY], "auditor": [APPROVE]}))
    data = config(repo, [phase("count", 0, ["inventory/"])], run_id="scripted")
    recorded = drive(start(data, provider=f"scripted:{replies}"))
    recording = replaying.load("scripted")
    assert recording.bills_tokens is False

    replayed = drive(replaying.start_replay("scripted"))

    assert replaying.compare(recording, replayed) == []
    assert (
        charges(replayed)
        == charges(recorded)
        == [
            ("builder", 0, 0, Decimal(0), Decimal(0)),
            ("auditor", 0, 0, Decimal(0), Decimal(0)),
        ]
    )


# The engine's side, without the database.

HOME = Identity(
    run_id="build",
    worktree="/home/ann/.autopack/workspaces/build",
    branch="autopack/build",
    home="/home/ann/.autopack",
    environments="/home/ann/.autopack/environments",
)
AWAY = Identity(
    run_id="build-replay-1",
    worktree="/srv/autopack/workspaces/build-replay-1",
    branch="autopack/build-replay-1",
    home="/srv/autopack",
    environments="/srv/envs",
)
BOTH = (AWAY, HOME)


def test_the_normaliser_removes_what_differs_between_executions():
    recorded = (
        "FAILED /home/ann/.autopack/workspaces/build/tests/test_x.py::test_a at "
        "2024-05-01T12:30:45.123Z (12:30:45) - 1 failed, 3 passed in 0.05s\n"
        "<Ledger object at 0x7f3a2b1c9d50> id 0f8fad5b-d9cb-469f-a165-70867728950e "
        "in /tmp/pytest-of-ann/pytest-3/test_a0/x.py, savepoint 1a2b3c4d5e, "
        "/home/ann/.autopack/environments/py311/lib/site.py, branch autopack/build of run "
        "build, a software build system"
    )
    replayed = (
        "FAILED /srv/autopack/workspaces/build-replay-1/tests/test_x.py::test_a at "
        "2025-01-02T08:00:01Z (08:00:01) - 1 failed, 3 passed in 1.20s\n"
        "<Ledger object at 0x55d1e2f3a4b0> id 6fa459ea-ee8a-3ca4-894e-db77e160355e "
        "in /tmp/tmpk2j4h5/x.py, savepoint 9f8e7d6c5b, "
        "/srv/envs/py311/lib/site.py, branch autopack/build-replay-1 of run "
        "build-replay-1, a software build system"
    )
    assert normalise(recorded, BOTH) == normalise(replayed, BOTH)
    assert normalise(recorded, BOTH) == (
        "FAILED <worktree>/tests/test_x.py::test_a at <time> (<time>) - 1 failed, 3 passed "
        "in <duration>\n<Ledger object at <addr>> id <uuid> in <tmp>, savepoint <commit>, "
        "<environments>/py311/lib/site.py, branch <branch> of run <run>, a software <run> "
        "system"
    )


def test_the_normaliser_keeps_what_the_run_is_about():
    assert normalise("def remove_item(stock, item):", BOTH) == "def remove_item(stock, item):"
    assert normalise("assert total == 3", BOTH) != normalise("assert total == 4", BOTH)
    assert normalise("/home/ann/project/a.py", BOTH) == "/home/ann/project/a.py"


def builder_request(*sections: str, max_tokens: int = 1000) -> LLMRequest:
    parts = ["# Goal of the run\nCount stock", *sections, "# Current files\na.py\nx = 1"]
    return LLMRequest(
        "builder",
        "claude-b",
        "system",
        [{"role": "user", "content": "\n\n".join(parts)}],
        max_tokens,
    )


def test_memory_and_lessons_are_not_part_of_the_request_key():
    bare = builder_request()
    remembered = builder_request(
        f"{LESSONS_HEADING}\n- run the tests from the root",
        f"{MEMORY_HEADING} (earlier runs and phases, most relevant first)\n- [Error fix "
        "from run first, phase count] quantity_of: add the function",
    )
    assert request_key(bare, BOTH) == request_key(remembered, BOTH)
    other_files = LLMRequest(
        "builder",
        "claude-b",
        "system",
        [{"role": "user", "content": bare.messages[0]["content"].replace("x = 1", "x = 2")}],
        1000,
    )
    assert request_key(bare, BOTH) != request_key(other_files, BOTH)
    larger = builder_request(max_tokens=2000)
    assert request_key(bare, BOTH) != request_key(larger, BOTH)
    assert prompt_key(bare, BOTH) == prompt_key(larger, BOTH)


def recorded_call(request: LLMRequest, text: str, **extra) -> RecordedCall:
    values = {
        "role": request.role,
        "provider": "anthropic",
        "model": request.model,
        "system_prompt": request.system,
        "request_messages": request.messages,
        "max_tokens": request.max_tokens,
        "response_text": text,
        "stop_reason": "end_turn",
        "prompt_tokens": 100,
        "completion_tokens": 10,
        "total_tokens": 110,
        "prompt_tokens_checked": 140,
        "charged_tokens": 110,
        "cost_usd": Decimal("0.0005"),
        "charged_cost_usd": Decimal("0.0005"),
        **extra,
    }
    return RecordedCall(**values)


def test_identical_requests_get_their_replies_in_order_across_processes():
    ask = builder_request()
    calls = [recorded_call(ask, "first"), recorded_call(ask, "second")]
    provider = ReplayProvider(calls, HOME, AWAY, str, bills_tokens=True)
    assert provider.prompt_tokens_for(ask) == 140
    assert provider.complete(ask).text == "first"
    assert provider.complete(ask).total_tokens == 110
    # Another process continues the run after the call it has stored.
    resumed = ReplayProvider(calls, HOME, AWAY, str, bills_tokens=True, done=[ask])
    assert resumed.complete(ask).text == "second"
    with pytest.raises(MissingRecording, match="used them all"):
        resumed.complete(ask)


def test_a_request_without_recording_names_where_and_a_recorded_error_is_replayed():
    ask = builder_request()
    failed = recorded_call(ask, "", error="fake 500 error", status_code=500, stop_reason="")
    provider = ReplayProvider(
        [failed], HOME, AWAY, str, bills_tokens=True, where=lambda: "phase count, attempt 3"
    )
    with pytest.raises(ProviderError, match="fake 500 error"):
        provider.complete(ask)
    other = builder_request("# Approach\nsomething else")
    with pytest.raises(MissingRecording) as stopped:
        provider.complete(other)
    assert "the builder's request (phase count, attempt 3, model claude-b)" in str(stopped.value)
