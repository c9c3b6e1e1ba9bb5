"""Issue #11.4: no exception, odd name or exhausted resource makes a hook exit non-zero
where libvirt would kill a running guest; handlers share the event's time budget."""
import errno
import os

import pytest

from hooktree import XML, Tree, call

from nvhooks.dispatch import runner, scripts

NEVER_FAIL = [("qemu", ["g1", "reconnect", "begin", "-"]), ("qemu", ["g1", "stopped", "end", "-"]),
              ("qemu", ["g1", "release", "end", "-"]), ("lxc", ["g1", "reconnect", "begin", "-"]),
              ("daemon", ["-", "start", "-", "start"]), ("daemon", ["-", "reload", "begin", "SIGHUP"]),
              ("daemon", ["-", "shutdown", "-", "shutdown"])]
ABORTING = [("qemu", ["g1", "prepare", "begin", "-"]), ("qemu", ["g1", "start", "begin", "-"])]


@pytest.fixture
def tree(tmp_path, monkeypatch):
    monkeypatch.setenv("NETVIRT_HOOKS_ROOT", str(tmp_path))
    return Tree(tmp_path)


def _bad_name_script(tree, folder):
    base = os.path.join(tree.hooks, folder).encode()
    os.makedirs(base, exist_ok=True)
    path = base + b"/odd\xff\xfename"
    with open(path, "w") as handle:
        handle.write(f'#!/bin/sh\necho ran >> "{tree.path("/ran")}"\n')
    os.chmod(path, 0o755)


def test_script_name_not_utf8_runs_and_logs_at_reconnect_with_syslog(tree):
    # Seen: the syslog summary raised UnicodeEncodeError and the entry died non-zero.
    tree.dispatcher_conf("builtins: no\nsyslog: yes\n")
    _bad_name_script(tree, "qemu_reconnect_begin.d")
    rc, out, err = call("qemu", ["g1", "reconnect", "begin", "-"], XML)
    assert (rc, out, err) == (0, b"", "")
    with open(tree.path("/ran")) as handle:
        assert handle.read() == "ran\n"
    (log,) = tree.logs_list()
    assert "odd" in log and "exit 0" in tree.log(log)


@pytest.mark.parametrize("driver, args", NEVER_FAIL + ABORTING)
def test_a_bug_anywhere_exits_zero_unless_libvirt_aborts_on_failure(tree, monkeypatch, driver, args):
    def broken(*_args, **_kwargs):
        raise RuntimeError("a plain bug \udcff")
    monkeypatch.setattr(scripts, "plan", broken)
    rc, out, err = call(driver, args, XML if driver != "daemon" else b"")
    want = 1 if (driver, args) in ABORTING else 0
    assert rc == want and out == b""
    assert err.count("\n") == 1 and "internal error" in err and "a plain bug" in err
    assert ("aborted" in err) and (("not aborted" in err) == (want == 0))


def test_no_file_descriptor_left_at_reconnect(tree, monkeypatch):
    tree.script("qemu_reconnect_begin.d/a", "true")

    def emfile(_data):
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
    monkeypatch.setattr(runner, "stdin_fd", emfile)
    rc, _out, err = call("qemu", ["g1", "reconnect", "begin", "-"], XML)
    assert rc == 0 and "Too many open files" in err
    rc, _out, err = call("qemu", ["g1", "start", "begin", "-"], XML)
    tree.script("qemu_start_begin.d/a", "true")
    rc, _out, err = call("qemu", ["g1", "start", "begin", "-"], XML)
    assert rc == 1 and "Too many open files" in err


def test_builtins_are_not_run_once_the_event_budget_is_spent(tree):
    # the original entry program eats the whole budget; the handlers then do
    # not start (each could otherwise wait 30 s per lock)
    tree.dispatcher_conf("builtins: yes\nsyslog: no\nevent_timeout: 1\ntimeout: 1\ngrace: 0.2\n")
    tree.script("netvirt/original/qemu", "sleep 5")
    rc, _out, _err = call("qemu", ["g1", "reconnect", "begin", "-"], XML)
    assert rc == 0
    for name in ("vlanhook", "shapehook"):
        text = tree.log(f"qemu_reconnect_begin_g1_{name}.log")
        assert "not run: the event deadline (1s) has passed" in text


def test_an_unwritable_log_folder_is_said_once_per_event(tree, capsys):
    # Seen in the fault suite: a full log folder printed one stderr line per record.
    tree.write("notafolder", "")
    tree.dispatcher_conf(f"builtins: no\nsyslog: no\nlog_dir: {tree.hooks}/notafolder/logs\n")
    for name in ("a", "b", "c"):
        tree.script(f"qemu_stopped_end.d/{name}", "true")
    rc, out, err = call("qemu", ["g1", "stopped", "end", "-"], XML)
    err += capsys.readouterr().err
    assert (rc, out) == (0, b"")
    assert err.count("cannot write log") == 1 and err.count("\n") == 1, err
