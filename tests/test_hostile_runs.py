"""Whole runs against a hostile Builder and a broken provider: code the Builder writes
finds none of Autopack's secrets, no database and no other run; nothing it could have
found reaches the provider; files that look like secrets are not sent; replies the
provider garbles end an attempt, not the run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from runs.models import Project
from runs.states import RunState
from tests.builds import APPROVE, block, config, drive, git, phase, start
from tests.fake_llm import Reply
from tests.test_engine_runs import QUANTITY, attempts

pytestmark = pytest.mark.django_db(transaction=True)

PROBE = """\
import os, socket
from pathlib import Path

READ = {read!r}
LIST = {listed!r}
SOCKETS = {sockets!r}
LEAKED = {leaked!r}  # as if it had found Autopack's secret key after all


def test_probe():
    found = {{}}
    for path in READ:
        try:
            found[path] = Path(path).read_text()
        except OSError:
            pass
    for path in LIST:
        try:
            found[path] = sorted(os.listdir(path))
        except OSError:
            pass
    for path in SOCKETS:
        try:
            socket.socket(socket.AF_UNIX).connect(path)
            found[path] = "connected"
        except OSError:
            pass
    found.update((k, v) for k, v in os.environ.items() if "PASSPHRASE" in k or "TOKEN" in k)
    try:
        Path(".git").write_text("gitdir: /tmp/elsewhere\\n")
        found[".git"] = "rewritten"
    except OSError:
        pass
    assert False, f"PROBE FOUND {{found!r}} and {{LEAKED}}"
"""


def commit(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=T", "-c", "user.email=t@l", "commit", "-qm", message)


def test_code_the_builder_writes_finds_no_secrets_database_or_other_runs(
    engine, fake_llm, repo, monkeypatch
):
    home = Path(engine.AUTOPACK_HOME)
    secrets = {
        home / "secret_key": "home-secret-key-4417",
        home / "admin_password": "admin-password-8812",
        home / "workspaces" / "earlier-run" / "notes.txt": "earlier-run-private-3309",
        home.parent / "user" / ".ssh" / "id_ed25519": "ssh-private-key-1187",
    }
    for path, value in secrets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")
    monkeypatch.setenv("DEPLOY_PASSPHRASE", "deploy-passphrase-5521")
    monkeypatch.setenv("SERVICE_TOKEN", "service-token-7730")
    database = Path(django_settings.DATABASES["default"]["HOST"])
    real_home = Path(os.environ.get("AUTOPACK_HOME", home))
    probe = PROBE.format(
        read=[str(p) for p in secrets]
        + [str(real_home / "secret_key"), str(real_home / "admin_password")],
        listed=[str(Path.home() / ".ssh"), str(home / "workspaces" / "earlier-run")],
        sockets=[str(database / ".s.PGSQL.5432")],
        leaked=django_settings.SECRET_KEY,
    )
    fake_llm.script("builder", block("tests/test_probe.py", "", probe), QUANTITY)
    fake_llm.script("auditor", APPROVE)

    run = drive(start(config(repo, [phase("probe", 0, ["inventory/", "tests/"])])))

    first, second = attempts(run.phases.get())
    assert run.sandboxed is True
    assert first.outcome == "gate_failed"
    # The failure reached the next prompt, carrying nothing from outside, and the secret
    # the probe "found" scrubbed.
    retry = fake_llm.calls("builder")[1].prompt
    assert "PROBE FOUND {} and [REDACTED]" in retry, retry[-3000:]
    sent = json.dumps([call.body for call in fake_llm.calls()])
    leaked = [*secrets.values(), "deploy-passphrase-5521", "service-token-7730"]
    for value in [*leaked, django_settings.SECRET_KEY]:
        assert value not in sent
    assert second.outcome == "passed" and run.state == RunState.DONE_SUCCESS
    pointer = Path(run.worktree_path) / ".git"
    assert pointer.read_text().startswith("gitdir: ") and "elsewhere" not in pointer.read_text()


def test_files_that_look_like_secrets_are_not_sent_unless_the_project_says_so(
    engine, fake_llm, repo
):
    (repo / "inventory" / ".env").write_text("DATABASE_PASSWORD=env-file-secret-6604\n")
    (repo / "inventory" / "deploy.pem").write_text("pem-file-secret-2291\n")
    commit(repo, "secrets in the tree")
    fake_llm.script("builder", QUANTITY, QUANTITY)
    fake_llm.script("auditor", APPROVE, APPROVE)

    first = drive(start(config(repo, [phase("count", 0, ["inventory/"])])))
    Project.objects.filter(pk=first.project_id).update(send_secret_files=True)
    second = drive(start(config(repo, [phase("count", 0, ["inventory/"])], run_id="again")))

    withheld, sent = (call.prompt for call in fake_llm.calls("builder"))
    assert first.state == second.state == RunState.DONE_SUCCESS
    assert "env-file-secret-6604" not in withheld and "pem-file-secret-2291" not in withheld
    assert "they look like secrets" in withheld
    assert "inventory/.env" in withheld and "inventory/deploy.pem" in withheld
    assert "env-file-secret-6604" in sent and "pem-file-secret-2291" in sent
    event = first.events.filter(kind="context").first()
    assert event.payload["withheld"] == ["inventory/.env", "inventory/deploy.pem"]


def test_replies_the_provider_garbles_end_the_attempt_not_the_run(engine, fake_llm, repo):
    fake_llm.script(
        "builder",
        Reply(raw=b'{"content": [{"type": "text", "text": "\xff\xfe"}]}'),  # not UTF-8
        Reply(raw=b"<html>gateway</html>"),  # not JSON
        Reply(raw=b'{"content": null, "usage": "many"}'),  # not the message shape
        Reply("x" * (8192 * 32 + 1)),  # more text than the tokens asked for can hold
        QUANTITY,
    )
    fake_llm.script("auditor", APPROVE)

    run = drive(start(config(repo, [phase("count", 0, ["inventory/"], max_attempts=5)])))

    tried = attempts(run.phases.get())
    assert [a.outcome for a in tried[:4]] == ["provider_error"] * 4, [a.error for a in tried]
    assert all("cannot read" in a.error for a in tried[:3])
    assert "characters for at most 8192 output tokens" in tried[3].error
    assert run.state == RunState.DONE_SUCCESS
