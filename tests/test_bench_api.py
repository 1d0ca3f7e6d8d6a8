"""Benchmarks over the API: the list, one benchmark, two compared, and the errors, for
whoever started them and staff (fixtures `people` and `benches` in conftest)."""

from __future__ import annotations

import pytest

from tests.conftest import token_client
from tests.test_bench_pages import MISSING

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("user", "listed"),
    [
        ("creator", ["polyglot-b", "polyglot-a"]),
        ("stranger", []),
        ("staff", ["cli-bench", "polyglot-b", "polyglot-a"]),
    ],
)
def test_the_api_lists_the_benchmarks_a_user_sees_newest_first(people, benches, user, listed):
    body = token_client(people[user]).get("/api/bench/").json()

    assert body["count"] == len(listed)
    assert [b["bench_id"] for b in body["results"]] == listed


def test_the_api_list_has_each_benchmarks_settings_and_summary(people, benches):
    (replay, _) = token_client(people["creator"]).get("/api/bench/").json()["results"]

    assert {k: v for k, v in replay.items() if k not in ("summary", "created_at")} == {
        "bench_id": "polyglot-b",
        "suite": "/data/polyglot-benchmark",
        "suite_kind": "exercism",
        "model": "scripted",
        "edit_format": "diff",
        "tries": 2,
        "workers": 1,
        "languages": [],
        "limit": None,
        "autopack_version": "0.1.0",
        "replay_of": "polyglot-a",
        "state": "done",
        "wall_seconds": None,
        "created_by": "creator",
        "finished_at": None,
    }
    assert replay["summary"]["pass_rate_1"] == 50.0
    assert replay["summary"]["pass_rate_2"] == 100.0


def test_the_api_compares_two_benchmarks_and_their_languages(people, benches):
    response = token_client(people["creator"]).get("/api/bench/compare/?a=polyglot-a&b=polyglot-b")

    body = response.json()
    assert response.status_code == 200
    assert (body["a"], body["b"]) == ("polyglot-a", "polyglot-b")
    assert body["columns"][:2] == [
        {"heading": "tasks", "a": 4, "b": 2},
        {"heading": "pass rate after try 1 (%)", "a": 33.3, "b": 50.0},
    ]
    assert {"heading": "total cost (USD)", "a": "0.0620", "b": "0.0030"} in body["columns"]
    assert body["languages"] == [
        {"language": "go", "a": [0.0, 0.0], "b": [0.0, 100.0]},
        {"language": "python", "a": [50.0, 100.0], "b": [100.0, 100.0]},
    ]


@pytest.mark.parametrize(
    ("query", "errors"),
    [
        ("a=polyglot-a", [{"path": "b", "message": MISSING}]),
        ("", [{"path": "a", "message": MISSING}, {"path": "b", "message": MISSING}]),
    ],
)
def test_the_api_comparison_names_a_missing_parameter(people, benches, query, errors):
    response = token_client(people["creator"]).get(f"/api/bench/compare/?{query}")

    assert response.status_code == 400
    assert response.json() == {"errors": errors}


@pytest.mark.parametrize(
    ("url", "accept"),
    [
        ("/api/bench/nothing-here/", "application/json"),
        ("/api/bench/cli-bench/tasks.csv", "text/csv"),  # the error is JSON all the same
        ("/api/bench/compare/?a=polyglot-a&b=nothing-here", "application/json"),
    ],
)
def test_the_api_answers_an_unknown_benchmark_with_a_json_404(people, benches, url, accept):
    response = token_client(people["creator"]).get(url, HTTP_ACCEPT=accept)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"].startswith("No benchmark ")
