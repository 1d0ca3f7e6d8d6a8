"""The sandbox as a hostile command sees it: no host files, no capabilities, no network
for tests, nothing of Autopack's secrets. No database."""

from __future__ import annotations

from pathlib import Path

import pytest

from runs.engine.sandbox import Sandbox, bubblewrap

pytestmark = pytest.mark.skipif(bubblewrap() is None, reason="bubblewrap is installed by make")


def test_root_inside_cannot_remount_make_devices_or_see_the_host(tmp_path):
    secret = tmp_path / "home" / "secret_key"
    secret.parent.mkdir()
    secret.write_text("the-secret-key\n")
    work = tmp_path / "work"
    work.mkdir()
    probe = (
        "mount -o remount,rw /usr 2>&1; touch /usr/autopack-probe 2>&1; "
        "mknod /tmp/disk b 8 0 2>&1; "
        f"cat {secret} 2>&1; ls /root 2>&1; grep CapEff /proc/self/status; "
        "python3 -c \"import socket; socket.create_connection(('1.1.1.1', 53), 2)\" 2>&1 | tail -1"
    )

    result = Sandbox(workdir=work).run(probe, 60, isolated=True)

    out = result.output
    assert "mount: /usr: permission denied" in out
    assert "Read-only file system" in out
    assert "mknod: /tmp/disk: Operation not permitted" in out
    assert "the-secret-key" not in out and "No such file or directory" in out
    assert "CapEff:\t0000000000000000" in out
    assert "Network is unreachable" in out
    assert not Path("/usr/autopack-probe").exists()


def test_the_worktree_is_writable_and_its_git_pointer_is_not(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / ".git").write_text("gitdir: /nowhere\n")

    result = Sandbox(workdir=work).run(
        "echo made > made.txt && echo 'gitdir: /tmp/evil' > .git; cat .git", 60, isolated=True
    )

    assert (work / "made.txt").read_text() == "made\n"
    assert (work / ".git").read_text() == "gitdir: /nowhere\n"
    assert "Read-only file system" in result.output


def test_mounting_the_whole_host_is_refused(tmp_path):
    with pytest.raises(ValueError, match="refusing to mount /"):
        Sandbox(workdir=tmp_path, read_only=(Path("/"),)).argv("true")
