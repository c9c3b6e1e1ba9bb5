"""Log collection (dispatch/loggc.py) on logs the real dispatcher wrote in a scratch tree."""
import os
import time

import pytest

from hooktree import Tree, call

from nvhooks.cli import command as cli
from nvhooks.dispatch import conf as confmod, handlers, loggc

DAY = 86400


@pytest.fixture
def tree(tmp_path, monkeypatch):
    monkeypatch.setenv("NETVIRT_HOOKS_ROOT", str(tmp_path))
    tree = Tree(tmp_path)
    # a script name with "_" in it: the guest/script split must not guess
    tree.script("custom/all_note_it", "true")
    return tree


def xml(name):
    return f"<domain type='qemu'><name>{name}</name><devices/></domain>".encode()


def start(tree, *guests):
    for guest in guests:
        for op, subop in (("started", "begin"), ("release", "end")):
            assert call("qemu", [guest, op, subop, "-"], xml(guest))[0] == 0


def running(tree, *guests):
    folder = tree.path("/run/libvirt/qemu")
    os.makedirs(folder, exist_ok=True)
    for guest in guests:
        with open(os.path.join(folder, guest + ".xml"), "wb") as handle:
            handle.write(xml(guest))


def age(tree, days, prefix=""):
    then = time.time() - days * DAY
    for name in tree.logs_list():
        if name.split("_", 3)[-1].startswith(prefix):
            os.utime(os.path.join(tree.logs, name), (then, then))


def collect(**kw):
    return loggc.run(confmod.load_dispatcher(), handlers.names(), **kw)


def test_logs_of_guests_gone_for_long_go_running_and_recent_ones_stay(tree):
    start(tree, "old", "old_web", "run1", "new")
    with open(os.path.join(tree.logs, "dispatcher.log"), "w"):
        pass
    running(tree, "run1")
    age(tree, 40)
    age(tree, 1, prefix="new_")
    before = tree.logs_list()
    assert len(before) == 9   # 4 guests x 2 events, one script each, and dispatcher.log
    result = collect(check_mode=True)
    assert tree.logs_list() == before and len(result.removed) == 4
    result = collect()
    assert tree.logs_list() == ["dispatcher.log",
                                "qemu_release_end_new_all_note_it.log", "qemu_release_end_run1_all_note_it.log",
                                "qemu_started_begin_new_all_note_it.log", "qemu_started_begin_run1_all_note_it.log"]
    assert (result.files, result.guests, result.age_skipped) == (9, 4, None)
    assert sorted(n for n, _why in result.removed) == [
        "qemu_release_end_old_all_note_it.log", "qemu_release_end_old_web_all_note_it.log",
        "qemu_started_begin_old_all_note_it.log", "qemu_started_begin_old_web_all_note_it.log"]


def test_without_a_status_folder_nothing_goes_by_age(tree):
    start(tree, "old")
    age(tree, 400)
    result = collect()
    assert len(tree.logs_list()) == 2 and "cannot be told" in result.age_skipped


def test_rotated_copies_count_and_a_guest_keeps_its_newest_files(tree):
    tree.dispatcher_conf("builtins: no\nsyslog: no\nlog_max_files_per_guest: 3\n")
    start(tree, "web1")
    running(tree, "web1")
    base = os.path.join(tree.logs, "qemu_started_begin_web1_all_note_it.log")
    for number, suffix in enumerate((".1", ".2.gz", "-20260101.gz"), 1):
        with open(base + suffix, "w"):
            pass
        os.utime(base + suffix, (time.time() - number * DAY,) * 2)
    os.symlink("/etc/passwd", base + ".3")   # never followed, never removed
    result = collect()
    assert sorted(n for n, _why in result.removed) == [
        "qemu_started_begin_web1_all_note_it.log-20260101.gz", "qemu_started_begin_web1_all_note_it.log.2.gz"]
    assert len(tree.logs_list()) == 4


def test_conf_refuses_a_bad_bound_naming_its_key(tree):
    tree.dispatcher_conf("log_max_age_days: -1\n")
    with pytest.raises(confmod.ConfError, match="log_max_age_days"):
        confmod.load_dispatcher()


def test_daemon_start_collects_through_the_dispatcher(tree):
    tree.dispatcher_conf("builtins: yes\nsyslog: no\n")
    start(tree, "gone")
    running(tree)
    age(tree, 31)
    assert call("daemon", ["-", "start", "-", "shutdown"])[0] == 0
    assert not [n for n in tree.logs_list() if "gone" in n]
    assert "log collection: 2 of " in tree.log("daemon_start_-_-_loggc.log")


def test_gc_command_lists_then_removes_old_logs(tree, capsys):
    start(tree, "gone")
    running(tree)
    age(tree, 31)
    assert cli.main(["gc", "--only", "logs", "--check"]) == 1
    assert "old log: qemu_started_begin_gone_all_note_it.log" in capsys.readouterr().out
    assert cli.main(["gc", "--only", "logs"]) == 0
    assert tree.logs_list() == []
