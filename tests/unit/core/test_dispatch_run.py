"""The dispatcher end to end in a scratch tree: args, stdin, env, logs, exit status."""
import os
import signal

import pytest

from hooktree import XML, Tree, call

from nvhooks.dispatch import runner


@pytest.fixture
def tree(tmp_path, monkeypatch):
    monkeypatch.setenv("NETVIRT_HOOKS_ROOT", str(tmp_path))
    return Tree(tmp_path)


RECORD = 'printf "%s|%s\\n" "$(basename "$0")" "$*" >> "$NETVIRT_HOOKS_ROOT/calls"'


def calls(tree):
    with open(tree.path("/calls")) as handle:
        return handle.read().splitlines()


def test_scripts_get_args_stdin_env_and_a_log_each(tree):
    tree.script("qemu_started_begin.d/10-a", RECORD + '\ncat > "$NETVIRT_HOOKS_ROOT/stdin.$(basename "$0")"\n'
                'env | grep ^NETVIRT_HOOK_ | sort > "$NETVIRT_HOOKS_ROOT/env"\necho hello; echo oops >&2')
    tree.script("custom/all_b", RECORD + '\ncat > "$NETVIRT_HOOKS_ROOT/stdin.$(basename "$0")"')
    rc, out, err = call("qemu", ["g1", "started", "begin", "-"], XML)
    assert (rc, out, err) == (0, b"", "")
    assert calls(tree) == ["10-a|g1 started begin -", "all_b|g1 started begin -"]
    for name in ("10-a", "all_b"):
        with open(tree.path("/stdin." + name), "rb") as handle:
            assert handle.read() == XML
    with open(tree.path("/env")) as handle:
        env = dict(line.split("=", 1) for line in handle.read().splitlines())
    assert env["NETVIRT_HOOK_EVENT"] == "qemu/started/begin"
    assert env["NETVIRT_HOOK_CONF"] == tree.hooks + "/conf/10-a.conf"
    assert env["NETVIRT_HOOK_LOG"] == tree.logs + "/qemu_started_begin_g1_10-a.log"
    assert tree.logs_list() == ["qemu_started_begin_g1_10-a.log", "qemu_started_begin_g1_all_b.log"]
    log = tree.log("qemu_started_begin_g1_10-a.log")
    assert "INFO start " in log and "hello" in log and "oops" in log and "INFO exit 0 after" in log
    assert "DEBUG" not in log   # args are DEBUG; default level is INFO


def test_log_level_from_conf_and_guest_name_made_file_safe(tree):
    tree.script("qemu_prepare_begin.d/s", "true", conf="log_level: debug\n")
    rc, _out, _err = call("qemu", ["we/ird name", "prepare", "begin", "-"], XML)
    assert rc == 0
    (name,) = tree.logs_list()
    assert name.startswith("qemu_prepare_begin_we_ird_name~") and name.endswith("_s.log")
    assert "DEBUG args: ['we/ird name', 'prepare', 'begin', '-']" in tree.log(name)


def test_failing_prepare_aborts_names_the_script_and_stops_later_ones(tree):
    tree.script("qemu_prepare_begin.d/10-bad", "echo no network for you >&2; exit 3")
    tree.script("qemu_prepare_begin.d/20-next", RECORD)
    rc, out, err = call("qemu", ["g1", "prepare", "begin", "-"], XML)
    assert rc == 1 and out == b""
    assert "10-bad failed at qemu/prepare/begin: exit 3" in err
    assert not os.path.exists(tree.path("/calls"))
    assert "ERROR exit 3" in tree.log("qemu_prepare_begin_g1_10-bad.log")
    assert "not run: an earlier step failed" in tree.log("qemu_prepare_begin_g1_20-next.log")


def test_fail_ignore_lets_the_guest_start(tree):
    tree.script("qemu_prepare_begin.d/10-bad", "exit 3", conf="fail: ignore\n")
    tree.script("qemu_prepare_begin.d/20-next", RECORD)
    rc, _out, _err = call("qemu", ["g1", "prepare", "begin", "-"], XML)
    assert rc == 0 and calls(tree) == ["20-next|g1 prepare begin -"]
    assert "(fail: ignore)" in tree.log("qemu_prepare_begin_g1_10-bad.log")


@pytest.mark.parametrize("op, subop", [("reconnect", "begin"), ("stopped", "end"), ("release", "end")])
def test_failures_where_libvirt_must_not_abort_exit_zero(tree, op, subop):
    tree.script("qemu_%s_%s.d/bad" % (op, subop), "exit 1")
    rc, _out, _err = call("qemu", ["g1", op, subop, "-"], XML)
    assert rc == 0
    assert "ERROR exit 1" in tree.log("qemu_%s_%s_g1_bad.log" % (op, subop))


def test_refused_script_is_a_failure_at_prepare(tree):
    tree.script("qemu_prepare_begin.d/ww", RECORD, mode=0o777)
    rc, _out, err = call("qemu", ["g1", "prepare", "begin", "-"], XML)
    assert rc == 1 and "world-writable" in err
    assert not os.path.exists(tree.path("/calls"))
    assert "ERROR" in tree.log("qemu_prepare_begin_g1_ww.log")


@pytest.mark.parametrize("driver, args", [("xen", ["g1", "start", "begin", "-"]),
                                          ("qemu", ["g1", "reboot", "begin", "-"])])
def test_unknown_driver_or_operation_runs_nothing_and_exits_zero(tree, driver, args):
    tree.script("custom/all_x", RECORD)
    rc, _out, _err = call(driver, args, XML)
    assert rc == 0 and not os.path.exists(tree.path("/calls"))
    assert "unknown event" in tree.log("dispatcher.log")


def test_timeout_kills_the_whole_process_group(tree):
    tree.script("qemu_started_begin.d/slow",
                'echo $$ > "$NETVIRT_HOOKS_ROOT/pgid"; sleep 300 & sleep 300',
                conf="timeout: 0.5\nfail: ignore\n")
    tree.dispatcher_conf("builtins: no\nsyslog: no\ngrace: 1\n")
    rc, _out, _err = call("qemu", ["g1", "started", "begin", "-"], XML)
    assert rc == 0
    with open(tree.path("/pgid")) as handle:
        pgid = int(handle.read())
    assert runner.group_members(pgid) == []
    assert "timed out after 0.5s; process group %d killed" % pgid in tree.log("qemu_started_begin_g1_slow.log")


def test_term_ignoring_script_gets_sigkill(tree):
    tree.script("qemu_started_begin.d/stubborn",
                'trap "" TERM; echo $$ > "$NETVIRT_HOOKS_ROOT/pgid"; while :; do sleep 1; done',
                conf="timeout: 0.5\n")
    tree.dispatcher_conf("builtins: no\nsyslog: no\ngrace: 0.5\n")
    rc, _out, err = call("qemu", ["g1", "started", "begin", "-"], XML)
    assert rc == 1 and "timed out" in err
    with open(tree.path("/pgid")) as handle:
        assert runner.group_members(int(handle.read())) == []
    assert "(SIGKILL)" in tree.log("qemu_started_begin_g1_stubborn.log")


def test_background_child_holding_stdout_does_not_block(tree):
    tree.script("qemu_started_begin.d/forker", 'sleep 300 & echo $! > "$NETVIRT_HOOKS_ROOT/child"; echo bye')
    rc, _out, _err = call("qemu", ["g1", "started", "begin", "-"], XML)
    with open(tree.path("/child")) as handle:
        child = int(handle.read())
    try:
        os.kill(child, 0)   # still alive: the dispatcher returned without waiting for it
        assert rc == 0
        log = tree.log("qemu_started_begin_g1_forker.log")
        assert "bye" in log and "background process still holds" in log
    finally:
        os.kill(child, signal.SIGKILL)


def test_event_deadline_bounds_the_total(tree):
    tree.dispatcher_conf("builtins: no\nsyslog: no\nevent_timeout: 0.5\ngrace: 0.5\n")
    tree.script("qemu_stopped_end.d/a-slow", "sleep 300")
    tree.script("qemu_stopped_end.d/b-late", RECORD)
    rc, _out, _err = call("qemu", ["g1", "stopped", "end", "-"], XML)
    assert rc == 0 and not os.path.exists(tree.path("/calls"))
    assert "event deadline" in tree.log("qemu_stopped_end_g1_b-late.log")


def test_original_entry_program_runs_first_with_same_args_and_stdin(tree):
    tree.script("netvirt/original/qemu", RECORD + '\ncat > "$NETVIRT_HOOKS_ROOT/stdin.orig"')
    tree.script("qemu_prepare_begin.d/a", RECORD)
    rc, _out, _err = call("qemu", ["g1", "prepare", "begin", "-"], XML)
    assert rc == 0 and calls(tree) == ["qemu|g1 prepare begin -", "a|g1 prepare begin -"]
    with open(tree.path("/stdin.orig"), "rb") as handle:
        assert handle.read() == XML
    assert tree.logs_list() == ["qemu_prepare_begin_g1_a.log", "qemu_prepare_begin_g1_original-qemu.log"]


def test_bad_dispatcher_conf_falls_back_to_defaults_and_says_so(tree):
    tree.dispatcher_conf("timeout: soon\n")
    tree.script("qemu_prepare_begin.d/a", RECORD)
    rc, _out, err = call("qemu", ["g1", "prepare", "begin", "-"], XML)
    assert rc == 0 and "dispatcher.conf: timeout: not a number of seconds" in err
    assert calls(tree) == ["a|g1 prepare begin -"]


# ------------------------------------------------------- migrate / restore

def test_stdout_of_plain_scripts_never_reaches_libvirt(tree):
    tree.script("qemu_restore_begin.d/junk", "echo JUNK; echo '<domain/>'")
    rc, out, _err = call("qemu", ["g1", "restore", "begin", "-"], XML)
    assert (rc, out) == (0, b"")
    assert "JUNK" in tree.log("qemu_restore_begin_g1_junk.log")


def test_xml_filters_are_chained_and_the_result_printed(tree):
    sed = "sed 's|<description>%s</description>|<description>%s</description>|'"
    tree.script("qemu_restore_begin.d/1-f", sed % ("old", "mid"), conf="xml_filter: yes\n")
    tree.script("qemu_restore_begin.d/2-junk", "echo JUNK")
    tree.script("qemu_restore_begin.d/3-f", sed % ("mid", "new"), conf="xml_filter: yes\n")
    rc, out, _err = call("qemu", ["g1", "restore", "begin", "-"], XML)
    assert rc == 0 and out == XML.replace(b"old", b"new")


def test_filter_that_prints_nothing_changes_nothing(tree):
    tree.script("qemu_migrate_begin.d/f", "cat >/dev/null", conf="xml_filter: yes\n")
    assert call("qemu", ["g1", "migrate", "begin", "-"], XML)[:2] == (0, b"")


@pytest.mark.parametrize("body, reason", [
    ("sed 's|<name>g1</name>|<name>g2</name>|'", "differ from g1/"),
    ("echo not xml", "output of f"),
])
def test_bad_filter_output_refuses_the_operation(tree, body, reason):
    tree.script("qemu_restore_begin.d/f", body, conf="xml_filter: yes\nfail: ignore\n")
    rc, out, err = call("qemu", ["g1", "restore", "begin", "-"], XML)
    assert rc == 1 and out == b""
    assert "XML filter output invalid" in err and reason in err
    assert "ERROR XML filter output refused" in tree.log("qemu_restore_begin_g1_f.log")


def test_filters_do_not_touch_stdout_outside_migrate_and_restore(tree):
    tree.script("qemu_prepare_begin.d/f", "sed s/old/new/", conf="xml_filter: yes\n")
    assert call("qemu", ["g1", "prepare", "begin", "-"], XML)[:2] == (0, b"")


def test_concurrent_events_keep_log_records_whole(tree):
    tree.script("qemu_started_begin.d/chatty", "i=0; while [ $i -lt 200 ]; do echo line-$i-$1; i=$((i+1)); done")
    pids = []
    for n in range(4):
        pid = os.fork()
        if pid == 0:
            try:
                for _round in range(5):
                    call("qemu", ["g", "started", "begin", "-"], XML)
            finally:
                os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    log = tree.log("qemu_started_begin_g_chatty.log")
    records = log.split(" INFO start ")[1:]
    assert len(records) == 20
    for record in records:
        lines = [line.split(" INFO ", 1)[1] for line in record.splitlines()[1:] if " INFO line-" in line]
        assert lines == ["line-%d-g" % i for i in range(200)]


def test_dollar_zero_is_the_link_as_found(tree):
    real = tree.script("netvirt/scripts/shared", RECORD)
    os.makedirs(os.path.join(tree.hooks, "custom"))
    os.symlink(real, os.path.join(tree.hooks, "custom", "all_shared"))
    assert call("qemu", ["g1", "prepare", "begin", "-"], XML)[0] == 0
    assert calls(tree) == ["all_shared|g1 prepare begin -"]
    assert tree.logs_list() == ["qemu_prepare_begin_g1_shared.log"]   # named by the script, not the link


@pytest.mark.parametrize("extra, reason", [
    ("destroyed", "destroyed"), ("shutdown", "shutdown"), ("from-snapshot", "from-snapshot"),
    ("some-newer-reason", "some-newer-reason"),   # a later libvirt's name passes through
    ("-", None), ("", None),                      # libvirt < 10.5
    ("Destroyed; rm -rf /", None), ("x" * 40, None)])
def test_shutoff_reason_is_parsed_from_release_extra(extra, reason):
    from nvhooks.dispatch.event import Event
    assert Event("qemu", ["g1", "release", "end", extra]).shutoff_reason == reason


@pytest.mark.parametrize("driver, args", [("qemu", ["g1", "stopped", "end", "destroyed"]),
                                          ("lxc", ["c1", "release", "end", "destroyed"]),
                                          ("qemu", ["g1", "release", "end"])])
def test_no_shutoff_reason_outside_qemu_release(driver, args):
    from nvhooks.dispatch.event import Event
    assert Event(driver, args).shutoff_reason is None


@pytest.mark.parametrize("extra, env_value, logged", [("destroyed", "destroyed", True), ("-", "", False)])
def test_release_scripts_get_the_shutoff_reason_and_the_record_names_it(tree, extra, env_value, logged):
    tree.script("qemu_release_end.d/10-a", RECORD + '\nprintf "%s|%s" "${NETVIRT_HOOK_SHUTOFF_REASON-unset}" "$4"'
                ' > "$NETVIRT_HOOKS_ROOT/reason"')
    rc, _out, _err = call("qemu", ["g1", "release", "end", extra], XML)
    assert rc == 0
    with open(tree.path("/reason")) as handle:
        assert handle.read() == f"{env_value}|{extra}"
    assert ("shutoff reason destroyed" in tree.log("qemu_release_end_g1_10-a.log")) == logged


def test_other_events_have_no_shutoff_reason_variable(tree):
    tree.script("qemu_stopped_end.d/10-a", 'printf "%s" "${NETVIRT_HOOK_SHUTOFF_REASON-unset}" > "$NETVIRT_HOOKS_ROOT/reason"')
    assert call("qemu", ["g1", "stopped", "end", "-"], XML)[0] == 0
    with open(tree.path("/reason")) as handle:
        assert handle.read() == "unset"
