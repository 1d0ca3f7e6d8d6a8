"""Plans from notes, the pure module (runs/engine/notes_plans.py): the plan taken from the
Planner's reply, the prompt it is asked with, and the loop that accepts a plan, sends it
back once with its problems by line, or refuses it. No Django and no model: the calls
and the reading are the test's. The command, API and form are in test_notes_plans.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from runs.engine import notes_plans
from runs.engine.plan_scope import Repository
from runs.engine.plans import read_plan
from runs.engine.protocols import LLMResponse
from tests.builds import git, make_repo
from tests.support import ROOT

NOTES = "We need a way to ask how many of an item are in stock. Unknown items count as 0.\n"
VALID = """\
# Count the stock

## Stock

- Add quantity_of below remove_item [paths:inventory/] [deliverables:inventory/stock.py::quantity_of] [complexity:low]
  It returns how many of an item are in stock.
  - quantity_of returns 0 for an item that is not in stock
"""  # noqa: E501
# Line 3: an unknown tag and a path not in the repository; line 5: a path out of it and
# no acceptance criterion; line 6: a folder that does not exist and no criterion.
INVALID = """\
# Count the stock

- Add quantity_of [paths:inventory/,src/missing.py] [deliverables:inventory/stock.py] [size:s]
  - returns 0 for an unknown item
- Keep a secret [paths:../secrets] [deliverables:inventory/stock.py]
- Document it [paths:docs/] [deliverables:docs/stock.md]
"""


def fenced(plan: str) -> str:
    return f"Here is the plan.\n\n```markdown\n{plan}```\n\nIt keeps to the repository.\n"


def reply(text: str, truncated: bool = False) -> LLMResponse:
    return LLMResponse(text, "max_tokens" if truncated else "end_turn", truncated, 10, 10, 20)


def scripted(*texts: str | LLMResponse):
    """An `Ask` answering with `texts` in order, keeping what it was sent."""
    answers = [reply(t) if isinstance(t, str) else t for t in texts]
    sent: list[list[dict[str, str]]] = []

    def ask(system: str, messages: list[dict[str, str]]) -> LLMResponse:
        assert "You are the Planner" in system
        sent.append([dict(m) for m in messages])
        return answers[len(sent) - 1]

    return ask, sent


def reader(repo: Path):
    return lambda markdown: read_plan(markdown, base_dir=repo, overrides={"workspace": str(repo)})


def test_the_plan_is_taken_from_its_markdown_fence_or_is_the_whole_reply():
    nested = "# G\n\n- a [paths:x/]\n  ```python\n  x = 1\n  ```\n  - works\n"

    assert notes_plans.extract_markdown(fenced(VALID)) == VALID
    assert notes_plans.extract_markdown(f"```md\n{nested}```\n") == nested
    assert notes_plans.extract_markdown(f"  {VALID}\n\n") == VALID
    assert notes_plans.extract_markdown("```markdown\n# G\n- a\n") == "# G\n- a\n"


def test_the_prompt_holds_the_notes_files_map_and_test_command(tmp_path):
    repository = Repository(make_repo(tmp_path / "inventory"))

    prompt = notes_plans.user_prompt(NOTES, repository, "python -m pytest")

    assert prompt.startswith(f"# Notes\n\n{NOTES.strip()}\n")
    files = prompt.split("# Files in the repository (4)\n\n")[1].split("\n\n")[0]
    assert files.splitlines() == [
        "inventory/__init__.py",
        "inventory/stock.py",
        "pyproject.toml",
        "tests/test_stock.py",
    ]
    assert "inventory/stock.py (map:" in prompt and "def remove_item" in prompt
    assert "`python -m pytest` runs for every phase" in prompt
    assert "give every phase [test:COMMAND]" in notes_plans.user_prompt(NOTES, repository, "")


def test_the_prompt_names_at_most_400_files_and_counts_the_rest(tmp_path):
    repo = tmp_path / "many"
    (repo / "data").mkdir(parents=True)
    for number in range(405):
        (repo / "data" / f"{number:03}.txt").write_text("x\n")
    git(repo, "init", "-q")

    prompt = notes_plans.user_prompt(NOTES, Repository(repo), "make test")

    assert "data/399.txt\n… and 5 more\n" in prompt and "data/400.txt" not in prompt


def test_a_valid_plan_is_accepted_after_one_call(tmp_path):
    repo = make_repo(tmp_path / "inventory")
    ask, sent = scripted(fenced(VALID))

    plan = notes_plans.plan_from_notes(
        NOTES, Repository(repo), "python -m pytest", ask, reader(repo)
    )

    assert plan.accepted and plan.calls == 1 and plan.markdown == VALID
    (phase,) = plan.result.config["tiers"][0]["phases"]
    assert phase["scope"] == {
        "paths": ["inventory/"],
        "deliverables": ["inventory/stock.py::quantity_of"],
    }
    assert plan.result.config["goal"] == "Count the stock"
    assert sent[0][0]["content"].startswith("# Notes")


def test_an_invalid_plan_is_sent_back_once_with_its_problems_by_line(tmp_path):
    repo = make_repo(tmp_path / "inventory")
    ask, sent = scripted(fenced(INVALID), VALID)
    progress: list[str] = []

    plan = notes_plans.plan_from_notes(
        NOTES, Repository(repo), "python -m pytest", ask, reader(repo), progress.append
    )

    assert plan.accepted and plan.calls == 2
    assert [(m.line, m.message.split(":")[0]) for m in plan.sent_back] == [
        (3, "unknown tag [size]"),
        (3, "[paths] src/missing.py is not in the repository"),
        (5, "[paths"),
        (5, "no acceptance criteria"),
        (6, "[paths] docs/ is not in the repository"),
        (6, "no acceptance criteria"),
    ]
    assert "leads out of the repository" in plan.sent_back[2].message
    assert sent[1][1] == {"role": "assistant", "content": fenced(INVALID)}
    correction = sent[1][2]["content"]
    assert "- line 3: unknown tag [size]" in correction
    assert "- line 6: no acceptance criteria" in correction
    assert correction.endswith(
        "Reply with the whole corrected plan, in the same form, and nothing else."
    )
    assert progress == ["the plan had 6 problems; sent back to the planner once"]


def test_a_plan_wrong_twice_is_refused_with_the_second_plans_problems(tmp_path):
    repo = make_repo(tmp_path / "inventory")
    second = VALID.replace(" [deliverables:inventory/stock.py::quantity_of]", "")
    ask, sent = scripted(INVALID, second)

    plan = notes_plans.plan_from_notes(NOTES, Repository(repo), "", ask, reader(repo))

    assert not plan.accepted and plan.calls == 2 and len(sent) == 2
    assert plan.markdown == second
    assert [(m.line, m.message.split(":")[0]) for m in plan.problems] == [
        (5, "no [deliverables"),
        (5, "no test command"),
    ]


def test_a_cut_off_reply_front_matter_and_a_deliverable_outside_the_paths_are_problems(tmp_path):
    repo = make_repo(tmp_path / "inventory")
    plan = "---\ntoken_cap: 5\n---\n" + VALID.replace("[paths:inventory/]", "[paths:tests/]")
    ask, _ = scripted(reply(plan, truncated=True), reply(plan, truncated=True))

    refused = notes_plans.plan_from_notes(NOTES, Repository(repo), "make test", ask, reader(repo))

    assert [(m.line, m.message.split(":")[0]) for m in refused.problems] == [
        (0, "the reply was cut off at its output limit"),
        (2, "front matter (token_cap"),
        (8, "[deliverables] inventory/stock.py is outside the phase's [paths]"),
    ]


def test_the_engine_module_imports_no_django():
    code = (
        "import sys, runs.engine.notes_plans\n"
        "print(any(name.startswith('django') for name in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
