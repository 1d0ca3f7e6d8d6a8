"""Backlog maintenance, propose first: each item is a one-phase run whose change waits in
the governance queue and is merged into the maintenance branch only when approved.
Real PostgreSQL, real git, the project's own tests, models behind the fake server."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from governance import maintenance, services
from governance.models import Backlog, GovernanceRequest
from runs.models import Project, Run
from tests.builds import APPROVE, QUANTITY, block, drive, git

pytestmark = pytest.mark.django_db(transaction=True)

BACKLOG = """\
# Inventory upkeep

- Add a quantity_of lookup to the stock ledger [paths:inventory/] [complexity:low]
  - quantity_of returns the quantity on hand, 0 for an unknown item
- Add a stock report module [paths:inventory/] [complexity:low]
  - the report lists every item with its quantity
- [x] Remove the old ledger format
- Make remove_item refuse negative quantities [paths:inventory/] [complexity:low] [max_attempts:1]
  - remove_item raises ValueError for a negative quantity
"""

REPORT_LINES = "".join(f"# report line {n}: what the report shows\n" for n in range(45))
REPORT = block("inventory/report.py", "", REPORT_LINES + "def report():\n    return []\n")
# SEARCH text the file does not have: the only attempt fails to apply.
BROKEN = block("inventory/stock.py", "def remove_item(nothing):\n", "def remove_item():\n")


@pytest.fixture
def project(repo) -> Project:
    return Project.objects.create(name="inventory", repository=str(repo))


def _write(tmp_path, text: str = BACKLOG):
    path = tmp_path / "BACKLOG.md"
    path.write_text(text)
    return path


def _script_three_items(fake_llm) -> None:
    fake_llm.script("builder", QUANTITY, REPORT, BROKEN)
    fake_llm.script("auditor", APPROVE, APPROVE)


def test_a_backlog_merges_the_low_risk_item_holds_the_large_one_and_reports_the_failed_one(
    engine, fake_llm, repo, project, tmp_path, capsys
):
    base = git(repo, "rev-parse", "main")
    _script_three_items(fake_llm)
    with pytest.raises(CommandError, match="1 item of backlog #.* failed"):
        call_command("backlog", str(_write(tmp_path)), project="inventory")
    out = capsys.readouterr().out
    backlog = Backlog.objects.get()
    items = list(backlog.items.select_related("run"))
    assert [maintenance.status(item).status for item in items] == [
        "merged",
        "proposed",
        "failed",
    ]
    assert [item.line for item in items] == [3, 5, 8]  # the checked item is not built
    assert "[merged] Add a quantity_of lookup" in out and "[proposed]" in out

    # The small change with passing tests and the Auditor's approval: auto-approved, merged.
    merged = GovernanceRequest.objects.get(run=items[0].run)
    assert merged.kind == "proposal" and merged.state == "approved" and merged.risk == "low"
    assert merged.auto_policy.startswith("auto_approve: low risk")
    assert merged.evidence["auditor"][0]["verdict"] == "approve"
    assert merged.evidence["tests"] and all(t["passed"] for t in merged.evidence["tests"])
    assert "def quantity_of" in merged.diff
    assert items[0].run.state == "DONE_SUCCESS"
    branch = git(repo, "show", "autopack-maintenance:inventory/stock.py")
    assert "def quantity_of" in branch
    assert "inventory/report.py" not in git(repo, "ls-tree", "-r", "autopack-maintenance")

    # The 47-line change is not small: it waits for a person, with its diff and evidence.
    waiting = GovernanceRequest.objects.get(run=items[1].run)
    assert waiting.state == "pending" and waiting.risk == "medium"
    assert any("not small" in reason for reason in waiting.risk_reasons)
    assert waiting.lines_added == 47 and "inventory/report.py" in waiting.paths
    assert items[1].run.state == "AWAITING_APPROVAL"

    # The failed item says why, and proposed nothing.
    assert items[2].run.state == "DONE_FAILED"
    assert items[2].run.failure_code == "phase_failed"
    assert maintenance.status(items[2]).detail == items[2].run.failure_reason != ""
    assert not GovernanceRequest.objects.filter(run=items[2].run).exists()

    # Approved later, the waiting proposal is merged by the next step; main never moves.
    alice = get_user_model().objects.create_user("alice")
    services.approve(waiting, alice, "reviewed")
    run = drive(Run.objects.get(pk=items[1].run.pk))
    assert run.state == "DONE_SUCCESS"
    assert maintenance.status(backlog.items.get(index=1)).status == "merged"
    tree = git(repo, "ls-tree", "-r", "--name-only", "autopack-maintenance")
    assert "inventory/report.py" in tree
    assert "def quantity_of" in git(repo, "show", "autopack-maintenance:inventory/stock.py")
    assert git(repo, "rev-parse", "main") == base
    assert "quantity_of" not in git(repo, "show", "main:inventory/stock.py")
    log = git(repo, "log", "--format=%s", "autopack-maintenance")
    assert "Merge proposal #" in log


def test_a_denied_proposal_fails_its_run_with_the_reason_and_merges_nothing(
    engine, fake_llm, repo, project, tmp_path
):
    fake_llm.script("builder", REPORT)
    fake_llm.script("auditor", APPROVE)
    text = "- Add a stock report module [paths:inventory/] [complexity:low]\n  - it reports\n"
    backlog = maintenance.create_backlog(text, project, name="one.md")
    run = drive(maintenance.start_next(project, enqueue=False))
    request = GovernanceRequest.objects.get(run=run)
    assert run.state == "AWAITING_APPROVAL" and request.is_pending

    services.deny(request, get_user_model().objects.create_user("bob"), "not this way")
    run = drive(run)
    assert run.state == "DONE_FAILED" and run.failure_code == "proposal_rejected"
    assert "denied by bob: not this way" in run.failure_reason
    item = backlog.items.get()
    assert maintenance.status(item).status == "rejected"
    branches = git(repo, "branch", "--list", "autopack-maintenance")
    assert branches == ""


def test_one_item_builds_at_a_time_and_a_worker_starts_the_next(
    engine, fake_llm, repo, project, tmp_path
):
    fake_llm.script("builder", REPORT, QUANTITY)
    fake_llm.script("auditor", APPROVE, APPROVE)
    text = (
        "- Add a stock report module [paths:inventory/] [complexity:low]\n  - it reports\n"
        "- Add a quantity_of lookup [paths:inventory/] [complexity:low]\n  - it looks up\n"
    )
    backlog = maintenance.create_backlog(text, project, name="two.md", detached=True)
    first = maintenance.start_next(project, enqueue=False)
    assert maintenance.start_next(project, enqueue=False) is None  # the first one builds
    second_item = backlog.items.get(index=1)
    assert second_item.run is None

    drive(first)  # its proposal waits: it no longer holds the project
    second_item.refresh_from_db()
    assert second_item.run is not None
    assert maintenance.status(backlog.items.get(index=0)).status == "proposed"
    assert drive(second_item.run).state == "DONE_SUCCESS"  # low risk: merged


def test_backlog_errors_name_the_line_and_start_nothing(project, tmp_path, capsys):
    bad = "- Fix it [paths:inventory/] [colour:red]\n- [x] done\n"
    with pytest.raises(CommandError, match="nothing started"):
        call_command("backlog", str(_write(tmp_path, bad)), project="inventory")
    assert "BACKLOG.md:1: error: unknown tag [colour" in capsys.readouterr().err
    with pytest.raises(maintenance.BacklogError, match="base branch"):
        maintenance.create_backlog(
            "- Fix it [paths:inventory/]\n", project, name="x", branch="main"
        )
    with pytest.raises(maintenance.BacklogError, match="no phases"):
        maintenance.create_backlog("- [x] done\n", project, name="x")
    with pytest.raises(CommandError, match="there is no project 'nope'"):
        call_command("backlog", str(_write(tmp_path)), project="nope")
    assert not Backlog.objects.exists() and not Run.objects.exists()


def test_a_maintenance_branch_the_team_moved_is_merged_into_not_overwritten(
    engine, fake_llm, repo, project
):
    git(repo, "branch", "autopack-maintenance", "main")
    git(repo, "checkout", "-q", "autopack-maintenance")
    (repo / "NOTES.md").write_text("kept by the team\n")
    git(repo, "add", "NOTES.md")
    git(repo, "-c", "user.name=T", "-c", "user.email=t@localhost", "commit", "-qm", "notes")
    ours = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "main")
    fake_llm.script("builder", QUANTITY)
    fake_llm.script("auditor", APPROVE)
    maintenance.create_backlog(
        "- Add a quantity_of lookup [paths:inventory/] [complexity:low]\n  - it looks up\n",
        project,
        name="one.md",
    )
    run = drive(maintenance.start_next(project, enqueue=False))
    assert run.state == "DONE_SUCCESS", run.failure_reason
    tip = git(repo, "rev-parse", "autopack-maintenance")
    assert git(repo, "rev-parse", f"{tip}^1") == ours  # merged on top of the team's commit
    assert git(repo, "show", "autopack-maintenance:NOTES.md") == "kept by the team"
    assert "def quantity_of" in git(repo, "show", "autopack-maintenance:inventory/stock.py")


def test_the_sweep_starts_the_next_item_when_a_waiting_one_was_cancelled(engine, project):
    from runs.services import cancel_run

    text = "- Add a report [paths:inventory/]\n  - r\n- Add a lookup [paths:inventory/]\n  - l\n"
    backlog = maintenance.create_backlog(text, project, name="two.md", detached=True)
    first = maintenance.start_next(project, enqueue=False)
    assert maintenance.start_waiting() == 0  # the first item holds the project
    cancel_run(first, by="alice")
    assert maintenance.status(backlog.items.get(index=0)).status == "cancelled"
    assert maintenance.start_waiting() == 1
    assert backlog.items.get(index=1).run.state == "QUEUED"
    assert maintenance.start_waiting() == 0


def test_repo_makes_the_project_on_the_branch_the_repository_has_checked_out(repo, tmp_path):
    bad = "- Fix it [paths:inventory/] [colour:red]\n"
    with pytest.raises(CommandError, match="nothing started"):
        call_command("backlog", str(_write(tmp_path, bad)), project="fresh", repo=str(repo))
    project = Project.objects.get(name="fresh")
    assert (project.repository, project.base_branch) == (str(repo), "main")
    with pytest.raises(CommandError, match="not a git repository"):
        call_command("backlog", str(_write(tmp_path)), project="other", repo=str(tmp_path))
