"""Benchmarks in the dashboard: the list, one benchmark with a chart per
language and its tasks, two side by side, the JSON and CSV downloads, and who sees
which (whoever started a benchmark, and staff)."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.utils.timezone import localtime

from tests.conftest import token_client

pytestmark = pytest.mark.django_db

MISSING = "missing: give a benchmark id, as in ?a=bench-1&b=bench-2"


def browse(people: dict, user: str, url: str):
    client = Client()
    client.force_login(people[user])
    return client.get(url)


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def summary_rows(page: str) -> list[tuple[str, str]]:
    return re.findall(r'<tr><th scope="row">(.*?)</th><td>(.*?)</td></tr>', page)


def task_row(page: str, task_id: str) -> dict[str, str]:
    row = re.search(rf'<tr>\s*<td data-label="Task">{task_id}</td>(.*?)</tr>', page, re.S)
    assert row, task_id
    cells = re.findall(r'<td data-label="([^"]+)"[^>]*>(.*?)</td>', row.group(1), re.S)
    return {label: text(cell) for label, cell in cells}


def charts(page: str) -> dict[str, dict]:
    """Each chart by its title: its bars' heights, its numbers as text, its SVG's label."""
    found = {}
    for figure in re.findall(r'<figure class="panel bench-chart".*?</figure>', page, re.S):
        title = re.search(r"<strong>(.*?)</strong>", figure).group(1)
        found[title] = {
            "heights": [float(h) for h in re.findall(r'<rect [^>]*height="([\d.]+)"', figure)],
            "numbers": [text(item) for item in re.findall(r"<li>(.*?)</li>", figure)],
            "label": re.search(r'<svg [^>]*aria-label="([^"]*)"', figure).group(1),
        }
    return found


def test_the_list_shows_a_users_benchmarks_newest_first_with_pass_rates(people, benches):
    page = browse(people, "creator", "/bench/").content.decode()

    rows = [text(row) for row in re.findall(r"<tr>\s*<td.*?</tr>", page, re.S)]
    assert rows == [
        "polyglot-b replay of polyglot-a exercism: polyglot-benchmark scripted diff 2 2 "
        f"50.0% → 100.0% done {localtime(benches['b'].created_at):%Y-%m-%d %H:%M} —",
        "polyglot-a exercism: polyglot-benchmark anthropic/claude-x diff 2 4 33.3% → 66.7% "
        f"done {localtime(benches['a'].created_at):%Y-%m-%d %H:%M} 1:02:05",
    ]
    assert 'href="/bench/polyglot-a/"' in page and "cli-bench" not in page
    assert '<a href="/bench/" aria-current="page">Benchmarks</a>' in page
    form = re.search(r'<form [^>]*action="/bench/compare/".*?</form>', page, re.S).group(0)
    assert re.findall(r'<select id="(\w)" name="(\w)"', form) == [("a", "a"), ("b", "b")]
    assert "<option selected>polyglot-b</option>" in form  # the two newest, preselected
    assert "<option selected>polyglot-a</option>" in form


def test_the_list_says_how_to_start_a_benchmark_when_there_is_none(people, benches):
    page = browse(people, "stranger", "/bench/").content.decode()

    assert "No benchmarks to show" in page and "autopack bench" in page
    assert "polyglot-a" not in page


def test_the_detail_page_shows_every_summary_column_with_its_value(people, benches):
    page = browse(people, "creator", "/bench/polyglot-a/").content.decode()

    assert summary_rows(page) == [
        ("tasks", "4"),
        ("pass rate after try 1 (%)", "33.3"),
        ("tasks passed by try 1", "1"),
        ("pass rate after try 2 (%)", "66.7"),
        ("tasks passed by try 2", "2"),
        ("not tried (errors)", "1"),
        ("percent well formed", "66.7"),
        ("malformed replies", "1"),
        ("tasks with malformed replies", "1"),
        ("syntax errors", "1"),
        ("test timeouts", "1"),
        ("exhausted context windows", "0"),
        ("prompt tokens", "6000"),
        ("completion tokens", "1100"),
        ("total cost (USD)", "0.0620"),
        ("seconds per task", "20.0"),
        ("model", "anthropic/claude-x"),
        ("edit format", "diff"),
        ("Autopack version", "0.1.0"),
        ("date", benches["a"].created_at.date().isoformat()),
    ]
    assert "exercism: polyglot-benchmark" in page and "1:02:05" in page
    assert "by creator" in page


def test_the_detail_page_draws_a_chart_per_language_and_all_together(people, benches):
    page = browse(people, "creator", "/bench/polyglot-a/").content.decode()

    drawn = charts(page)
    assert page.count("<svg ") == 3
    assert drawn["go: pass rate after each try"]["heights"] == [0.0, 0.0]
    assert drawn["go: pass rate after each try"]["numbers"] == [
        "go: after try 1: 0% (0 passed); after try 2: 0% (0 passed)"
    ]
    python = drawn["python: pass rate after each try"]
    assert python["heights"] == [50.0, 100.0]
    assert python["numbers"] == [
        "python: after try 1: 50% (1 passed); after try 2: 100% (2 passed)"
    ]
    assert python["label"] == (
        "python: pass rate after each try. "
        "python: after try 1: 50% (1 passed), after try 2: 100% (2 passed)"
    )
    combined = drawn["All languages: pass rate after each try"]
    assert combined["heights"] == [0.0, 0.0, 50.0, 100.0, 33.3, 66.7]
    assert (
        combined["numbers"][-1]
        == "all: after try 1: 33.3% (1 passed); after try 2: 66.7% (2 passed)"
    )


def test_the_detail_page_lists_tasks_with_their_runs_and_why_errors_were_not_tried(people, benches):
    page = browse(people, "creator", "/bench/polyglot-a/").content.decode()

    assert task_row(page, "python/grep") == {
        "Language": "python",
        "Status": "passed",
        "Passed at try": "2",
        "Tries": "2",
        "Malformed": "1",
        "Syntax errors": "1",
        "Timeouts": "0",
        "Tokens": "3500",
        "Cost": "$0.0300",
        "Seconds": "30.0",
        "Error": "",
        "Run": "",
    }
    assert task_row(page, "go/grep") == {
        "Language": "go",
        "Status": "error",
        "Passed at try": "—",
        "Tries": "0",
        "Malformed": "0",
        "Syntax errors": "0",
        "Timeouts": "0",
        "Tokens": "0",
        "Cost": "$0.0000",
        "Seconds": "—",
        "Error": "the go toolchain could not be installed: go1.21.0 not found",
        "Run": "",
    }
    assert task_row(page, "python/bowling")["Run"] == "polyglot-a--python-bowling"
    assert '<a href="/runs/polyglot-a--python-bowling/">' in page
    assert re.findall(r'<td data-label="Task">([^<]+)</td>', page) == [
        "go/bowling",
        "go/grep",
        "python/bowling",
        "python/grep",
    ]


def test_a_replay_links_to_the_benchmark_it_replays(people, benches):
    replay = browse(people, "creator", "/bench/polyglot-b/").content.decode()
    original = browse(people, "creator", "/bench/polyglot-a/").content.decode()

    assert '<dt>Replay of</dt><dd><a href="/bench/polyglot-a/">polyglot-a</a>' in replay
    assert "Replay of" not in original


def _download(people, page: str, label: str):
    href = re.search(rf'<a class="button" href="([^"]+)"[^>]*>{label}</a>', page).group(1)
    return browse(people, "creator", href.replace("&amp;", "&"))


def test_the_json_download_is_the_whole_benchmark(people, benches):
    page = browse(people, "creator", "/bench/polyglot-b/").content.decode()

    response = _download(people, page, "Download JSON")

    today = benches["b"].created_at.date().isoformat()
    common = {
        "percent_cases_well_formed": 100.0,
        "num_malformed_responses": 0,
        "num_with_malformed_responses": 0,
        "syntax_errors": 0,
        "test_timeouts": 0,
        "exhausted_context_windows": 0,
        "model": "scripted",
        "edit_format": "diff",
        "autopack_version": "0.1.0",
        "date": today,
    }
    task = {
        "well_formed": True,
        "malformed": 0,
        "syntax_errors": 0,
        "test_timeouts": 0,
        "context_exhausted": 0,
        "error": "",
        "tests": {},
    }
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert 'download="polyglot-b.json"' in page
    assert response.json() == {
        "bench_id": "polyglot-b",
        "suite": "/data/polyglot-benchmark",
        "suite_kind": "exercism",
        "state": "done",
        "tries": 2,
        "workers": 1,
        "wall_seconds": None,
        "replay_of": "polyglot-a",
        "summary": common
        | {
            "tasks": 2,
            "errors": 0,
            "pass_rate_1": 50.0,
            "pass_num_1": 1,
            "pass_rate_2": 100.0,
            "pass_num_2": 2,
            "prompt_tokens": 300,
            "completion_tokens": 70,
            "total_cost": "0.0030",
            "seconds_per_case": 1.5,
        },
        "languages": {
            "go": common
            | {
                "tasks": 1,
                "errors": 0,
                "pass_rate_1": 0.0,
                "pass_num_1": 0,
                "pass_rate_2": 100.0,
                "pass_num_2": 1,
                "prompt_tokens": 200,
                "completion_tokens": 50,
                "total_cost": "0.0020",
                "seconds_per_case": 2.0,
            },
            "python": common
            | {
                "tasks": 1,
                "errors": 0,
                "pass_rate_1": 100.0,
                "pass_num_1": 1,
                "pass_rate_2": 100.0,
                "pass_num_2": 1,
                "prompt_tokens": 100,
                "completion_tokens": 20,
                "total_cost": "0.0010",
                "seconds_per_case": 1.0,
            },
        },
        "tasks": [
            task
            | {
                "task_id": "go/bowling",
                "language": "go",
                "status": "passed",
                "passed_try": 2,
                "tries_used": 2,
                "prompt_tokens": 200,
                "completion_tokens": 50,
                "cost_usd": "0.00200000",
                "seconds": 2.0,
                "run_id": None,
            },
            task
            | {
                "task_id": "python/bowling",
                "language": "python",
                "status": "passed",
                "passed_try": 1,
                "tries_used": 1,
                "prompt_tokens": 100,
                "completion_tokens": 20,
                "cost_usd": "0.00100000",
                "seconds": 1.0,
                "run_id": "polyglot-b--python-bowling",
            },
        ],
    }


def test_the_csv_download_has_a_row_per_task(people, benches):
    page = browse(people, "creator", "/bench/polyglot-b/").content.decode()

    response = _download(people, page, "Download CSV")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="polyglot-b-tasks.csv"'
    assert response.content.decode() == (
        "task_id,language,status,passed_try,tries_used,well_formed,malformed,syntax_errors,"
        "test_timeouts,context_exhausted,prompt_tokens,completion_tokens,cost_usd,seconds,"
        "run_id,error\r\n"
        "go/bowling,go,passed,2,2,True,0,0,0,0,200,50,0.00200000,2.0,,\r\n"
        "python/bowling,python,passed,1,1,True,0,0,0,0,100,20,0.00100000,1.0,"
        "polyglot-b--python-bowling,\r\n"
    )


def test_the_compare_page_puts_two_benchmarks_side_by_side(people, benches):
    page = browse(people, "creator", "/bench/compare/?a=polyglot-a&b=polyglot-b").content.decode()

    columns = re.search(r'<table class="compare">.*?</table>', page, re.S).group(0)
    rows = re.findall(r'<tr><th scope="row">(.*?)</th><td>(.*?)</td><td>(.*?)</td></tr>', columns)
    assert rows[:6] == [
        ("tasks", "4", "2"),
        ("pass rate after try 1 (%)", "33.3", "50.0"),
        ("tasks passed by try 1", "1", "1"),
        ("pass rate after try 2 (%)", "66.7", "100.0"),
        ("tasks passed by try 2", "2", "2"),
        ("not tried (errors)", "1", "0"),
    ]
    assert ("model", "anthropic/claude-x", "scripted") in rows and len(rows) == 20
    languages = re.search(r'<table class="compare-languages">.*?</table>', page, re.S).group(0)
    per_language = [
        (language, re.findall(r"<td>(.*?)</td>", cells))
        for language, cells in re.findall(r'<tr><th scope="row">(\w+)</th>(.*?)</tr>', languages)
    ]
    assert per_language == [
        ("go", ["0.0", "0.0", "0.0", "100.0"]),
        ("python", ["50.0", "100.0", "100.0", "100.0"]),
    ]
    assert '<a href="/bench/polyglot-a/">polyglot-a</a>' in page


@pytest.mark.parametrize(
    ("query", "status", "body"),
    [
        ("a=polyglot-a", 400, f"b: {MISSING}\n"),
        ("a=&b=", 400, f"a: {MISSING}\nb: {MISSING}\n"),
        ("a=polyglot-a&b=nothing-here", 404, None),
        ("a=cli-bench&b=polyglot-a", 404, None),  # staff only
    ],
)
def test_the_compare_page_refuses_a_missing_or_unknown_benchmark(
    people, benches, query, status, body
):
    response = browse(people, "creator", f"/bench/compare/?{query}")

    assert response.status_code == status
    if body is not None:
        assert response["Content-Type"] == "text/plain; charset=utf-8"
        assert response.content.decode() == body


@pytest.mark.parametrize(
    ("user", "bench_id", "expected"),
    [
        ("creator", "polyglot-a", 200),
        ("stranger", "polyglot-a", 404),
        ("staff", "polyglot-a", 200),
        ("creator", "cli-bench", 404),
        ("staff", "cli-bench", 200),
    ],
)
def test_a_benchmark_is_seen_by_whoever_started_it_and_staff(
    people, benches, user, bench_id, expected
):
    api = token_client(people[user])

    assert browse(people, user, f"/bench/{bench_id}/").status_code == expected
    assert api.get(f"/api/bench/{bench_id}/").status_code == expected
    assert api.get(f"/api/bench/{bench_id}/tasks.csv").status_code == expected
    both = f"a={bench_id}&b={bench_id}"
    assert browse(people, user, f"/bench/compare/?{both}").status_code == expected
    assert api.get(f"/api/bench/compare/?{both}").status_code == expected
