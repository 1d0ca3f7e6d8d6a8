"""Governance end to end: protected changes wait for a person, denials steer the Builder,
deletions are guarded, commands are sandboxed, secrets stay out of the records."""

from __future__ import annotations

import json
import shutil
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.utils import timezone

from governance.models import GovernanceRequest, NotificationDelivery
from governance.services import expire_requests
from memory.models import LearnedRule
from runs.models import Issue, ProjectMember, Run, RunEvent
from runs.states import AttemptState, PhaseState, RunState
from telemetry.models import LlmCall
from tests.builds import APPROVE, block, config, drive, git, phase, start
from tests.conftest import token_client
from tests.test_engine_runs import QUANTITY, REGRESSION

pytestmark = pytest.mark.django_db(transaction=True)

DOCKERFILE = block("Dockerfile", "", "FROM python:3.11-slim\nCOPY . /app\n")
TEST_FILE = block(
    "tests/test_quantity.py",
    "",
    "from inventory.stock import add_item\n\n\ndef test_adds():\n"
    "    stock = {}\n    add_item(stock, 'nut', 2)\n    assert stock == {'nut': 2}\n",
)


@pytest.fixture
def governance(engine, tmp_path):
    def configure(**overrides) -> Path:
        path = tmp_path / "governance.yaml"
        data = {
            "protected_paths": ["Dockerfile*", ".github/", "migrations/"],
            "risk": {
                "critical": [".github/", "migrations/"],
                "low": ["tests/", "*.md"],
                "large_change_lines": 100,
            },
            "auto_approve": ["low"],
            "approval_timeout_minutes": 60,
            "deletion": {"notify": 100, "block": 200},
            **overrides,
        }
        path.write_text(json.dumps(data))
        engine.AUTOPACK_GOVERNANCE = path
        return path

    configure()
    return configure


def docker_phase(repo):
    return config(repo, [phase("ship", 0, ["Dockerfile", "inventory/"])])


def test_protected_change_waits_then_the_approved_diff_lands(
    governance, fake_llm, repo, alice, bob, charlie, client
):
    fake_llm.script("builder", "The image needs a Dockerfile.\n\n" + DOCKERFILE + QUANTITY)
    fake_llm.script("auditor", APPROVE)

    run = drive(start(docker_phase(repo)))

    assert run.state == RunState.AWAITING_APPROVAL
    request = GovernanceRequest.objects.get()
    assert (request.kind, request.risk, request.state) == ("protected_path", "high", "pending")
    assert request.protected_paths == ["Dockerfile"]
    assert request.paths == ["Dockerfile", "inventory/stock.py"]
    assert request.reason == "The image needs a Dockerfile."
    assert "+FROM python:3.11-slim" in request.diff and "+def quantity_of" in request.diff
    assert (request.lines_added, request.lines_removed) == (6, 0)
    assert not (Path(run.worktree_path) / "Dockerfile").exists()  # nothing written yet
    assert run.phases.get().state == PhaseState.AWAITING_APPROVAL
    assert request.attempt.state == AttemptState.AWAITING_APPROVAL

    pending = token_client(bob).get("/api/governance/requests/?state=pending").json()
    assert [r["id"] for r in pending["results"]] == [request.pk]
    refused = token_client(bob).post(f"/api/governance/requests/{request.pk}/approve/")
    assert refused.status_code == 403
    deny = f"/api/governance/requests/{request.pk}/deny/"
    assert token_client(charlie).post(deny, {"reason": "no"}).status_code == 404  # not a member
    ProjectMember.objects.create(project=run.project, user=charlie, role="member")
    assert token_client(charlie).post(deny, {"reason": "no"}).status_code == 403  # no permission

    client.force_login(bob)
    page = client.get(f"/admin/governance/governancerequest/{request.pk}/change/")
    assert page.status_code == 200 and b"FROM python:3.11-slim" in page.content
    assert b"Approve this change" not in page.content
    client.force_login(charlie)
    assert (
        client.get(f"/admin/governance/governancerequest/{request.pk}/change/").status_code == 302
    )
    client.force_login(alice)
    page = client.get(f"/admin/governance/governancerequest/{request.pk}/change/")
    assert b"Approve this change" in page.content

    approved = token_client(alice).post(f"/api/governance/requests/{request.pk}/approve/")
    assert approved.status_code == 200 and approved.json()["decided_by"] == "alice"
    run = drive(Run.objects.get(pk=run.pk))

    assert run.state == RunState.DONE_SUCCESS, run.failure_reason
    landed = git(repo, "show", "--name-only", "--format=", "autopack/build").splitlines()
    assert sorted(landed) == ["Dockerfile", "inventory/stock.py"]
    assert GovernanceRequest.objects.get().state == "approved"
    again = token_client(alice).post(
        f"/api/governance/requests/{request.pk}/deny/", {"reason": "late"}
    )
    assert again.status_code == 409


def test_admin_approves_from_the_change_page(governance, fake_llm, repo, alice, client):
    fake_llm.script("builder", DOCKERFILE + QUANTITY)
    fake_llm.script("auditor", APPROVE)
    run = drive(start(docker_phase(repo)))
    request = GovernanceRequest.objects.get()
    client.force_login(alice)

    response = client.post(f"/admin/governance/governancerequest/{request.pk}/approve/")

    assert response.status_code == 302
    request.refresh_from_db()
    assert (request.state, request.decided_by) == ("approved", alice)
    assert drive(Run.objects.get(pk=run.pk)).state == RunState.DONE_SUCCESS


def test_denied_change_reaches_the_next_prompt_and_another_way_completes(
    governance, fake_llm, repo, alice
):
    fake_llm.script("builder", DOCKERFILE + QUANTITY, QUANTITY)
    fake_llm.script("auditor", APPROVE)
    run = drive(start(docker_phase(repo)))
    request = GovernanceRequest.objects.get()
    client = token_client(alice)

    assert (
        client.post(f"/api/governance/requests/{request.pk}/deny/", {"reason": ""}).status_code
        == 400
    )
    denied = client.post(
        f"/api/governance/requests/{request.pk}/deny/",
        {"reason": "We ship no container image; keep to inventory/."},
    )
    run = drive(Run.objects.get(pk=run.pk))

    assert denied.status_code == 200 and denied.json()["state"] == "denied"
    assert run.state == RunState.DONE_SUCCESS, run.failure_reason
    prompt = fake_llm.calls("builder")[1].prompt
    assert "We ship no container image; keep to inventory/." in prompt
    first = run.attempts.get(number=1)
    assert (first.state, first.outcome) == (AttemptState.FAILED, "denied")
    assert "Dockerfile" not in git(repo, "show", "--name-only", "--format=", "autopack/build")


def test_a_request_nobody_decides_expires_as_denied(governance, fake_llm, repo):
    fake_llm.script("builder", DOCKERFILE + QUANTITY, QUANTITY)
    fake_llm.script("auditor", APPROVE)
    run = drive(start(docker_phase(repo)))
    GovernanceRequest.objects.update(created_at=timezone.now() - timedelta(minutes=61))

    assert expire_requests() == 1
    run = drive(Run.objects.get(pk=run.pk))

    request = GovernanceRequest.objects.get()
    assert request.state == "expired"
    assert request.decision_reason == "expired: not decided within 60 minutes"
    assert run.state == RunState.DONE_SUCCESS
    assert "expired: not decided within 60 minutes" in fake_llm.calls("builder")[1].prompt


def test_a_low_risk_test_change_is_auto_approved_and_recorded(governance, fake_llm, repo):
    fake_llm.script("builder", TEST_FILE)
    fake_llm.script("auditor", APPROVE)

    run = drive(start(config(repo, [phase("tests", 0, ["tests/"], approval_required=True)])))

    assert run.state == RunState.DONE_SUCCESS, run.failure_reason
    request = GovernanceRequest.objects.get()
    assert (request.kind, request.risk, request.state) == ("approval_required", "low", "approved")
    assert request.decided_by is None
    assert request.auto_policy.startswith("auto_approve: low risk")
    assert not run.events.filter(kind="approval_needed").exists()


def test_a_150_line_deletion_notifies_and_proceeds(governance, fake_llm, repo):
    lines = "".join(f"LEGACY_{n} = {n}\n" for n in range(300))
    (repo / "inventory" / "legacy.py").write_text(lines)
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=T", "-c", "user.email=t@l", "commit", "-qm", "legacy")
    doomed = "".join(f"LEGACY_{n} = {n}\n" for n in range(150))
    fake_llm.script("builder", block("inventory/legacy.py", doomed, ""))
    fake_llm.script("auditor", APPROVE)

    run = drive(start(config(repo, [phase("trim", 0, ["inventory/"])])))

    assert run.state == RunState.DONE_SUCCESS, run.failure_reason
    assert run.events.filter(kind="large_deletion", payload__net_deleted_lines=150).exists()
    assert not GovernanceRequest.objects.exists()


def test_a_250_line_deletion_waits_for_approval(governance, fake_llm, repo):
    lines = "".join(f"LEGACY_{n} = {n}\n" for n in range(300))
    (repo / "inventory" / "legacy.py").write_text(lines)
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=T", "-c", "user.email=t@l", "commit", "-qm", "legacy")
    doomed = "".join(f"LEGACY_{n} = {n}\n" for n in range(250))
    fake_llm.script("builder", block("inventory/legacy.py", doomed, ""))

    run = drive(start(config(repo, [phase("trim", 0, ["inventory/"])])))

    assert run.state == RunState.AWAITING_APPROVAL
    request = GovernanceRequest.objects.get()
    assert (request.kind, request.risk) == ("large_deletion", "high")
    assert (request.lines_added, request.lines_removed) == (0, 250)
    assert "net deletion of 250 lines (over 200)" in request.risk_reasons


@pytest.fixture
def receiver():
    received: list[tuple[str, dict]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((self.path, body))
            status = 500 if self.path == "/broken" else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.received = received
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()


def test_notifications_reach_webhook_slack_and_telegram_and_a_broken_target_harms_nothing(
    governance, fake_llm, repo, receiver, alice, settings
):
    settings.AUTOPACK_SYNC_TASKS = True
    governance(
        notifications=[
            {"name": "hook", "type": "webhook", "url": receiver.url + "/hook"},
            {
                "name": "slack",
                "type": "slack",
                "url": receiver.url + "/slack",
                "events": ["run_finished"],
            },
            {
                "name": "telegram",
                "type": "telegram",
                "token": "123:abc",
                "chat_id": "42",
                "api_base": receiver.url,
                "events": ["approval_needed"],
            },
            {"name": "broken", "type": "webhook", "url": receiver.url + "/broken"},
        ]
    )
    fake_llm.script("builder", DOCKERFILE + QUANTITY)
    fake_llm.script("auditor", APPROVE)

    run = drive(start(docker_phase(repo)))
    token_client(alice).post(
        f"/api/governance/requests/{GovernanceRequest.objects.get().pk}/approve/"
    )
    run = Run.objects.get(pk=run.pk)

    assert run.state == RunState.DONE_SUCCESS, run.failure_reason
    hooks = [body["event"] for path, body in receiver.received if path == "/hook"]
    assert hooks == ["approval_needed", "run_finished"]
    slack = [body for path, body in receiver.received if path == "/slack"]
    assert slack == [{"text": "[Autopack] build: run succeeded"}]
    telegram = [body for path, body in receiver.received if path == "/bot123:abc/sendMessage"]
    assert len(telegram) == 1 and telegram[0]["chat_id"] == "42"
    assert "waits for approval" in telegram[0]["text"]
    broken = NotificationDelivery.objects.filter(target="broken")
    assert broken.count() == 2
    assert all(
        d.state == "pending" and d.attempts == 1 and "500" in d.last_error for d in broken
    )  # retried later with backoff
    assert NotificationDelivery.objects.filter(state="delivered").count() == 4


def test_gate_commands_run_sandboxed_without_network_or_secrets(
    governance, fake_llm, repo, monkeypatch
):
    monkeypatch.setenv("SERVICE_TOKEN", "very-secret-service-token")
    port = fake_llm.server.server_address[1]
    escape = Path("/usr/autopack-escape.txt")
    probe = block(
        "tests/test_probe.py",
        "",
        (
            "import os, socket\nimport pytest\n\n\n"
            "def test_no_network():\n"
            f"    with pytest.raises(OSError):\n"
            f"        socket.create_connection(('127.0.0.1', {port}), timeout=2)\n\n\n"
            "def test_no_secrets():\n"
            "    assert 'SERVICE_TOKEN' not in os.environ\n"
            "    assert 'ANTHROPIC_API_KEY' not in os.environ\n\n\n"
            "def test_no_writes_outside_the_worktree():\n"
            f"    with pytest.raises(OSError, match='Read-only file system'):\n"
            f"        open({str(escape)!r}, 'w')\n"
        ),
    )
    fake_llm.script("builder", probe)
    fake_llm.script("auditor", APPROVE)

    run = drive(start(config(repo, [phase("probe", 0, ["tests/"])])))

    assert run.sandboxed is True
    assert run.state == RunState.DONE_SUCCESS, run.attempts.first().error
    gate = run.attempts.get().gate_results[-1]
    assert gate["passed"] and gate["details"]["passed"] == 5
    assert not escape.exists()


def test_a_run_refuses_to_start_without_a_required_sandbox(
    governance, repo, settings, monkeypatch, tmp_path
):
    settings.AUTOPACK_REQUIRE_SANDBOX = True
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "git").symlink_to(shutil.which("git"))
    monkeypatch.setenv("PATH", str(bin_dir))  # git, but no bwrap

    run = drive(start(config(repo, [phase("x", 0, ["inventory/"])])))

    assert (run.state, run.failure_code) == (RunState.DONE_FAILED, "configuration")
    assert "must run in a sandbox, but bubblewrap" in run.failure_reason
    assert "AUTOPACK_REQUIRE_SANDBOX=false" in run.failure_reason


def test_secrets_never_reach_stored_prompts_outputs_or_events(governance, fake_llm, repo):
    key = "sk-ant-test-key"  # ANTHROPIC_API_KEY in the fake_llm fixture
    (repo / "inventory" / "settings.py").write_text(f"API_KEY = '{key}'\n")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=T", "-c", "user.email=t@l", "commit", "-qm", "settings")
    fake_llm.script("builder", f"I saw the key {key} and AKIAABCDEFGHIJKLMNOP.\n\n" + QUANTITY)
    fake_llm.script("auditor", APPROVE)

    run = drive(start(config(repo, [phase("count", 0, ["inventory/"])])))

    assert run.state == RunState.DONE_SUCCESS
    assert key in fake_llm.calls("builder")[0].prompt  # the model saw the file as it is
    stored = [
        json.dumps(list(LlmCall.objects.values()), default=str),
        json.dumps(list(RunEvent.objects.values()), default=str),
        json.dumps(list(run.attempts.values()), default=str),
    ]
    for text in stored:
        assert key not in text and "AKIAABCDEFGHIJKLMNOP" not in text
    assert "[REDACTED]" in stored[0]


def test_a_fix_that_recurs_becomes_a_rule_in_later_prompts(governance, fake_llm, repo):
    fake_llm.script(
        "builder",
        REGRESSION,
        QUANTITY,
        REGRESSION,
        QUANTITY.replace("def quantity_of", "def count_of"),
        QUANTITY.replace("def quantity_of", "def total_of"),
    )
    fake_llm.script("auditor", APPROVE, APPROVE, APPROVE)

    run = drive(
        start(
            config(
                repo,
                [phase("one", 0, ["inventory/"])],
                [phase("two", 0, ["inventory/"])],
                [phase("three", 0, ["inventory/"])],
            )
        )
    )

    assert run.state == RunState.DONE_SUCCESS, run.failure_reason
    rule = LearnedRule.objects.get()
    assert (rule.occurrences, rule.enabled, rule.source) == (2, True, "auto")
    prompts = [c.prompt for c in fake_llm.calls("builder")]
    assert "Lessons from earlier failures" not in prompts[2]  # seen once: a candidate only
    assert "Lessons from earlier failures" in prompts[4]
    assert rule.hint in prompts[4]


def test_failures_fill_the_three_level_backlog(governance, fake_llm, repo, api):
    fake_llm.script("builder", REGRESSION, REGRESSION, QUANTITY)
    fake_llm.script("auditor", APPROVE)

    run = drive(start(config(repo, [phase("count", 0, ["inventory/"])])))

    issues = {issue.scope: issue for issue in Issue.objects.all()}
    assert set(issues) == {"phase", "run", "project"}
    assert all(issue.occurrence_count == 2 for issue in issues.values())
    assert issues["phase"].phase.phase_id == "count" and issues["project"].run is None
    body = api.get(f"/api/projects/{run.project_id}/issues/?scope=project").json()
    assert [(i["scope"], i["occurrence_count"], i["severity"]) for i in body["results"]] == [
        ("project", 2, "medium")
    ]
    assert "test_cannot_remove_more_than_on_hand" in body["results"][0]["title"]


def test_sandboxed_commands_still_see_the_repository_and_fail_when_they_cannot_run(
    governance, fake_llm, repo
):
    # The test repository lives under /tmp, which the sandbox replaces with a private one.
    fake_llm.script("builder", QUANTITY, QUANTITY)
    fake_llm.script("auditor", APPROVE)

    ok = drive(
        start(
            config(
                repo,
                [phase("count", 0, ["inventory/"], test_command="git status --short")],
                run_id="git-inside",
            )
        )
    )
    missing = drive(
        start(
            config(
                repo,
                [
                    phase(
                        "count",
                        0,
                        ["inventory/"],
                        max_attempts=1,
                        test_command="no-such-test-runner",
                    )
                ],
                run_id="no-runner",
            )
        )
    )

    assert ok.state == RunState.DONE_SUCCESS, ok.failure_reason
    assert missing.state == RunState.DONE_FAILED
    assert "`no-such-test-runner` could not be run (exit 127" in missing.failure_reason


def test_the_queue_page_refuses_a_decision_it_does_not_know(
    governance, fake_llm, repo, alice, client
):
    fake_llm.script("builder", DOCKERFILE + QUANTITY)
    drive(start(docker_phase(repo)))
    request = GovernanceRequest.objects.get()
    client.force_login(alice)

    response = client.post(f"/governance/{request.pk}/maybe/", follow=True)

    assert "unknown decision &#x27;maybe&#x27;" in response.content.decode()
    request.refresh_from_db()
    assert request.state == "pending"
