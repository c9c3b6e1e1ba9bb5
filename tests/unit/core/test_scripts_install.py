"""Installing scripts (hookscript.py, behind libvirt_hook_script): plan, apply, idempotence, run()."""
import os

import pytest

from hooktree import XML, Tree, call

from nvhooks.dispatch import conf as confmod
from nvhooks.change import Failed
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


def module_params(**given):
    out = dict(name="greet", events=None, content=None, src=None, timeout=None, fail=None, xml_filter=None,
               log_level=None, config={}, state="present", event=None)
    out.update(given)
    return out


def test_plan_change_is_one_change_with_a_section_per_file(tree):
    first = hookscript.plan("greet", "present", confmod.load_dispatcher(), BODY, ["qemu/started/begin"],
                            {"timeout": "5"})
    change = first.change()
    link = tree.hooks + "/qemu_started_begin.d/greet"
    assert change.changed and change.before == first.before and change.after == first.after
    assert change.actions == [f"write {first.script}", f"write {first.conf_file}", f"link {link} -> {first.script}"]
    assert change.diff() == first.diff() == [
        {"before_header": first.script, "after_header": first.script, "before": "", "after": BODY.decode()},
        {"before_header": first.conf_file, "after_header": first.conf_file, "before": "", "after": "timeout: 5\n"},
        {"before_header": "links", "after_header": "links", "before": "", "after": f"{link}\n"}]
    first.apply()
    os.chmod(first.script, 0o700)
    again = hookscript.plan("greet", "present", confmod.load_dispatcher(), BODY, ["qemu/started/begin"],
                            {"timeout": "5"}).change()
    assert again.changed and again.actions == [f"set mode 0755 (owner root) of {first.script}"]
    gone = hookscript.plan("greet", "absent", confmod.load_dispatcher()).change()
    assert gone.actions == [f"unlink {link}", f"remove {first.script}", f"remove {first.conf_file}"]


def test_run_installs_predicts_in_check_mode_and_removes(tree):
    p = module_params(events=["qemu/started/begin"], content=BODY.decode(), timeout=5)
    check, warnings = hookscript.run(p, check=True, diff=True)
    assert warnings == [] and check["changed"] and not os.path.exists(check["script"])
    assert list(check) == ["changed", "script", "conf_file", "links", "diff"] and len(check["diff"]) == 3
    real = hookscript.run(p)[0]
    assert real == {"changed": True, "script": check["script"], "conf_file": check["conf_file"],
                    "links": [tree.hooks + "/qemu_started_begin.d/greet"]}
    assert os.path.exists(real["script"]) and not hookscript.run(p)[0]["changed"]
    gone = hookscript.run(module_params(state="absent"))[0]
    assert gone["changed"] and gone["links"] == [] and not os.path.lexists(real["script"])


def test_run_reads_src_and_query_lists_the_order(tree, tmp_path):
    src = tmp_path / "src.sh"
    src.write_bytes(BODY)
    hookscript.run(module_params(events=["qemu/started/begin"], src=str(src)))
    result = hookscript.run(module_params(state="query", event="qemu/started/begin"))[0]
    assert result["changed"] is False and [i["name"] for i in result["order"] if i["kind"] == "script"] == ["greet"]


@pytest.mark.parametrize("given, message", [
    (dict(events=["qemu/started/begin"], src="/nonexistent/x.sh"), "src: cannot read /nonexistent/x.sh: No such"),
    (dict(events=["qemu/started/begin"], content="echo hi\n"), "greet: no shebang line"),
    (dict(events=["qemu/started/begin"], content=BODY.decode(), fail="maybe"), "config: fail: expected one of"),
    (dict(state="query", event="nope/x"), "unknown driver 'nope'"),
])
def test_run_errors_are_failed_with_the_text_the_module_gave(tree, given, message):
    with pytest.raises(Failed) as caught:
        hookscript.run(module_params(**given))
    assert str(caught.value).startswith(message) and caught.value.fields == {}


def test_run_apply_failure_carries_the_result(tree):
    with open(tree.hooks + "/qemu_started_begin.d", "w"):
        pass     # a file where the event folder should be
    with pytest.raises(Failed) as caught:
        hookscript.run(module_params(events=["qemu/started/begin"], content=BODY.decode()), diff=True)
    assert str(caught.value).startswith("cannot install greet: ")
    assert caught.value.fields["changed"] is True and len(caught.value.fields["diff"]) == 3
