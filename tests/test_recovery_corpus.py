"""The labelled failure corpus (tests/recovery_corpus.py), each case a whole run against
the fake model server: the failure's kind is recorded right, deterministic kinds and
known fixes make no Doctor call, and a Builder that fixes its mistake after the feedback
or hint recovers within the budgets. With AUTOPACK_RECOVERY_REPORT set, each case's
figures are appended to that file as JSON lines (bench/recovery.py reads them)."""

from __future__ import annotations

import json
import os

import pytest

from runs.engine.recovery import DETERMINISTIC
from tests.recovery_corpus import CASES, run_case

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_failure_is_classified_and_recovered(case, engine, fake_llm, repo, tmp_path):
    result = run_case(case, fake_llm, repo, engine, tmp_path)
    if report := os.environ.get("AUTOPACK_RECOVERY_REPORT"):
        with open(report, "a") as out:
            out.write(json.dumps({k: v for k, v in result.items() if k != "prompts"}) + "\n")

    assert result["recovered"], (result["state"], result["reason"], result["actions"])
    assert result["recorded"] and set(result["recorded"]) == {case.kind}, result["recorded"]
    for failure in result["failed"]:
        if failure["kind"] in DETERMINISTIC or failure["fixed"]:
            assert failure["doctor_calls"] == 0, failure
    assert result["doctor_calls"] <= 2 and result["planner_calls"] <= 1
    last = result["failed"][-1]
    diagnosed = last["kind"] not in DETERMINISTIC and not last["fixed"]
    if case.variant == "same" and diagnosed:
        assert "replan" in result["actions"]  # the same mistake twice is an approach flaw
    if case.variant == "twice" and diagnosed:
        # Two failures of one kind: diagnosed (the Doctor), or replanned when their
        # messages were alike.
        assert "ask_doctor" in result["actions"] or "replan" in result["actions"]
        if last["doctor_calls"]:
            assert "Add quantity_of after remove_item" in result["prompts"][-1]
    # The whole history, not only the last failure, is in the last prompt.
    if len(result["recorded"]) > 1 and case.kind not in ("worker_lost", "budget"):
        assert "# Earlier failed attempts of this phase" in result["prompts"][-1]
