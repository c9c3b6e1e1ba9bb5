"""Issue #11.5: lock folders and files are ours alone, made without following planted
symlinks; every wait ends with the hook event's time budget."""
import fcntl
import os
import stat
import subprocess
import sys

import pytest

from nvhooks import locks, paths
from nvhooks.errors import NetvirtError


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("NETVIRT_HOOKS_ROOT", str(tmp_path))
    os.makedirs(tmp_path / "run")
    yield paths.run_dir()
    locks.set_deadline(None)


def _mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_folders_are_0700_and_files_0600(run_dir):
    path = locks.lock_path("group-web")
    with locks.flock(path, 1, "web"):
        assert _mode(run_dir) == 0o700 and _mode(os.path.dirname(path)) == 0o700
        assert _mode(path) == 0o600


def test_earlier_0755_folders_and_0644_files_are_tightened(run_dir):
    path = locks.lock_path("group-web")
    os.makedirs(os.path.dirname(path), mode=0o755)
    os.chmod(run_dir, 0o755)
    with open(path, "w"):
        pass
    os.chmod(path, 0o644)
    with locks.flock(path, 1, "web"):
        pass
    assert (_mode(run_dir), _mode(os.path.dirname(path)), _mode(path)) == (0o700, 0o700, 0o600)


def test_a_planted_symlink_is_never_followed(run_dir, tmp_path):
    target = tmp_path / "victim"
    target.write_text("keep")
    path = locks.lock_path("group-web")
    locks.private_dir(os.path.dirname(path))
    os.symlink(target, path)
    with pytest.raises(NetvirtError, match="symlink"):
        with locks.flock(path, 1, "web"):
            pass
    assert target.read_text() == "keep" and _mode(target) != 0o600


def test_a_planted_symlink_folder_is_refused(run_dir, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    locks.private_dir(run_dir)
    os.symlink(elsewhere, os.path.join(run_dir, "locks"))
    with pytest.raises(NetvirtError, match="not a folder"):
        with locks.group_locks(["web"], timeout=1):
            pass


def test_a_missing_parent_is_made_but_not_tightened(tmp_path, monkeypatch):
    monkeypatch.setenv("NETVIRT_HOOKS_ROOT", str(tmp_path / "fresh"))
    with locks.group_locks(["web"], timeout=1):
        pass
    assert _mode(tmp_path / "fresh" / "run") == 0o755 and _mode(paths.run_dir()) == 0o700


def test_an_unmakeable_parent_is_an_error(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("NETVIRT_HOOKS_ROOT", str(tmp_path / "file"))
    with pytest.raises(NetvirtError, match="cannot create"):
        with locks.group_locks(["web"], timeout=1):
            pass


def test_the_event_budget_ends_a_wait_before_the_lock_timeout(run_dir):
    path = locks.lock_path("group-web")
    with locks.flock(path, 1, "web"):
        holder = os.open(path, os.O_RDWR)   # a second open file: flock conflicts with it
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        locks.set_deadline(__import__("time").monotonic() + 0.2)
        with pytest.raises(NetvirtError, match="time budget ran out"):
            with locks.flock(path, 30, "web"):
                pass
        locks.set_deadline(None)
        with pytest.raises(NetvirtError, match="more than 0 s"):
            with locks.flock(path, 0.1, "web"):
                pass
    finally:
        os.close(holder)


def test_another_user_cannot_open_a_lock(run_dir):
    path = locks.lock_path("group-web")
    with locks.flock(path, 1, "web"):
        pass
    if os.geteuid() != 0:
        # unprivileged lane: the lock is this user's own; the modes above are the proof
        assert _mode(path) == 0o600
        return
    code = f"import fcntl, os; fd = os.open({path!r}, os.O_RDONLY); fcntl.flock(fd, fcntl.LOCK_EX)"
    proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", code],
                          capture_output=True, text=True, check=False)
    assert proc.returncode != 0 and "Permission denied" in proc.stderr
