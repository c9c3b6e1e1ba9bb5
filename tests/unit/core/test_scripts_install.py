"""Installing scripts (hookscript.py, behind libvirt_hook_script): plan, apply, idempotence."""
import os

import pytest

from hooktree import XML, Tree, call

from nvhooks.dispatch import conf as confmod
from nvhooks.dispatch import hookscript

BODY = b'#!/bin/sh\necho "$NETVIRT_HOOK_EVENT $1" >> "$NETVIRT_HOOKS_ROOT/calls"\n'


@pytest.fixture
def tree(tmp_path, monkeypatch):
    monkeypatch.setenv("NETVIRT_HOOKS_ROOT", str(tmp_path))
    return Tree(tmp_path)


def install(events, content=BODY, **conf):
    dconf = confmod.load_dispatcher()
    plan = hookscript.plan("greet", "present", dconf, content, events, hookscript.conf_values(**conf))
    if plan.changed:
        plan.apply()
    return plan


def test_install_runs_where_linked_and_second_apply_changes_nothing(tree):
    first = install(["qemu/started/begin", "qemu/all", "daemon/start"], timeout=5)
    assert first.changed and first.before["content"] is None
    assert not install(["qemu/started/begin", "qemu/all", "daemon/start"], timeout=5).changed
    assert call("qemu", ["g1", "started", "begin", "-"], XML)[0] == 0
    assert call("qemu", ["g1", "stopped", "end", "-"], XML)[0] == 0
    assert call("daemon", ["-", "start", "-", "start"])[0] == 0
    with open(tree.path("/calls")) as handle:   # started: folder + all_ link, run once
        assert handle.read().splitlines() == ["qemu/started/begin g1", "qemu/stopped/end g1", "daemon/start -"]
    st = os.stat(first.script)
    assert oct(st.st_mode & 0o7777) == "0o755"
    with open(first.conf_file) as handle:
        assert handle.read() == "timeout: 5\n"


def test_dropping_events_removes_their_links_and_absent_removes_everything(tree):
    install(["qemu/started/begin", "qemu/prepare"])
    plan = install(["qemu/started/begin"])
    assert plan.changed and plan.after["links"] == [tree.hooks + "/qemu_started_begin.d/greet"]
    assert not os.path.lexists(tree.hooks + "/custom/prepare_greet")
    gone = hookscript.plan("greet", "absent", confmod.load_dispatcher())
    assert gone.changed
    gone.apply()
    assert not os.path.lexists(gone.script) and hookscript.current_links(gone.script, confmod.load_dispatcher()) == []
    assert not hookscript.plan("greet", "absent", confmod.load_dispatcher()).changed


def test_diff_shows_before_and_after(tree):
    install(["qemu/started/begin"])
    plan = hookscript.plan("greet", "present", confmod.load_dispatcher(), BODY + b"# v2\n",
                           ["qemu/started/begin"], {})
    assert plan.changed
    assert plan.diff()[0]["before"] == BODY.decode() and plan.diff()[0]["after"].endswith("# v2\n")


def test_refuses_to_replace_a_file_that_is_not_its_link(tree):
    tree.script("qemu_started_begin.d/greet", "true")
    with pytest.raises(hookscript.ScriptError, match="is not a link to"):
        install(["qemu/started/begin"])


@pytest.mark.parametrize("content, message", [
    (b"echo hi\n", "no shebang"),
    (b"#!/bin/sh\nif then\n", "syntax check"),
    (b"#!/usr/bin/python3\ndef (\n", "syntax check"),
    (b"#!/nonexistent/interp\n", "not found"),
])
def test_bad_content_is_refused_before_anything_is_written(tree, content, message):
    with pytest.raises(hookscript.ScriptError, match=message):
        install(["qemu/started/begin"], content=content)
    assert not os.path.exists(hookscript.scripts_dir())


@pytest.mark.parametrize("events, message", [
    (["network/all"], "for qemu only"),
    (["network/start"], "give the sub-operation"),
    (["qemu/started/middle"], "begin or end"),
    (["qemu/boot/begin"], "unknown operation"),
])
def test_bad_events_are_refused(tree, events, message):
    with pytest.raises(hookscript.ScriptError, match=message):
        install(events)


def test_bad_conf_values_are_refused_naming_the_key():
    with pytest.raises(hookscript.ScriptError, match="fail"):
        hookscript.conf_values(fail="maybe")
    with pytest.raises(hookscript.ScriptError, match="one line"):
        hookscript.conf_values(config={"x": "a\nb"})
    with pytest.raises(hookscript.ScriptError, match="name"):
        hookscript.check_name("../evil")
