"""The hooks role on this machine, the dispatcher under a real libvirtd, real guests.

The role is installed with a real ansible-playbook run (build/venv) onto
this host; /etc/libvirt/hooks is saved before and restored after. Runs under
the libvirt lock (tests/libvirt/conftest.py).
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import ethernet_iface, virsh

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV = os.environ.get("NVT_VENV", os.path.join(REPO, "build", "venv"))
HOOKS = "/etc/libvirt/hooks"
LOGS = "/var/log/libvirt/hooks"
WORK = "/run/nvt-hooktest"
CALLS = WORK + "/calls"

RECORD = """#!/bin/sh
# records: name|args|guest-name-in-stdin
name=$(basename "$0")
case "$1" in nvt-*|-) ;; *) exit 0 ;; esac
stdin=$(cat)
case "$stdin" in *"<name>$1</name>"*) got=stdin-ok ;; *) got=stdin-bad ;; esac
[ "$1" = - ] && got=no-stdin
echo "$name|$*|$got" >> /run/nvt-hooktest/calls
"""
FOREIGN = """#!/bin/sh
case "$1" in nvt-*) echo "foreign-qemu|$*|$(cat | grep -c "<name>$1</name>")" >> /run/nvt-hooktest/calls ;; esac
exit 0
"""
PLAYBOOK = """
- name: Install the netvirt hooks onto this machine
  hosts: localhost
  connection: local
  gather_facts: true
  roles:
    - role: netvirt.libvirt_hooks.hooks
      vars:
        hooks_install_packages: false
        hooks_scripts:
          - name: order-a
            events: [qemu/prepare/begin, qemu/started/begin, qemu/release/end]
            content: "{{ record }}"
          - name: order-c
            events: [qemu/started]
            content: "{{ record }}"
          - name: order-b
            events: [qemu/all]
            content: "{{ record }}"
          - name: reloaded
            events: [daemon/reload, daemon/start]
            content: "{{ record }}"
"""


def calls(guest=None):
    try:
        with open(CALLS) as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return []
    return [line for line in lines if guest is None or line.split("|")[1].split(" ")[0] == guest]


def hook_log(event, guest, script):
    with open(os.path.join(LOGS, "%s_%s_%s.log" % (event, guest, script))) as handle:
        return handle.read()


def put(path, text, mode=0o755, conf=None):
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)
    os.chmod(path, mode)
    if conf is not None:
        with open(os.path.join(HOOKS, "conf", os.path.basename(path) + ".conf"), "w") as handle:
            handle.write(conf)


def wait_for(predicate, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.2)


def ansible_playbook(tmp, extra=()):
    coll = os.path.join(tmp, "collections", "ansible_collections", "netvirt")
    os.makedirs(coll, exist_ok=True)
    if not os.path.exists(os.path.join(coll, "libvirt_hooks")):
        os.symlink(REPO, os.path.join(coll, "libvirt_hooks"))
    play = os.path.join(tmp, "play.yml")
    with open(play, "w") as handle:
        handle.write(PLAYBOOK)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(tmp, "collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=os.path.join(tmp, "ansible-tmp"), ANSIBLE_STDOUT_CALLBACK="default")
    cmd = [os.path.join(VENV, "bin", "ansible-playbook"), "-i", "localhost,",
           "-e", "ansible_python_interpreter=/usr/bin/python3", "-e", "@" + os.path.join(tmp, "vars.json"),
           *extra, play]
    with open(os.path.join(tmp, "vars.json"), "w") as handle:
        import json
        json.dump({"record": RECORD}, handle)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, check=False)


@pytest.fixture(scope="module")
def hooks(libvirtd):
    """The role installed (over a foreign qemu hook); everything restored afterwards."""
    if not os.path.exists(os.path.join(VENV, "bin", "ansible-playbook")):
        pytest.fail("no %s/bin/ansible-playbook: run 'make setup'" % VENV, pytrace=False)
    tmp = tempfile.mkdtemp(prefix="nvt-hooks-role-")
    saved = os.path.join(tmp, "hooks.saved")
    had_hooks = os.path.isdir(HOOKS)
    if had_hooks:
        shutil.copytree(HOOKS, saved, symlinks=True)
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK, mode=0o755)
    os.makedirs(HOOKS, mode=0o755, exist_ok=True)
    put(HOOKS + "/qemu", FOREIGN)   # an operator's own hook, there before us
    try:
        run = ansible_playbook(tmp)
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
        # The handler sent SIGHUP: libvirtd re-scans hooks and runs daemon/reload.
        wait_for(lambda: any(c.startswith("reloaded|- reload begin SIGHUP") for c in calls()),
                 "daemon reload hook after the role's SIGHUP")
        yield {"first": run, "tmp": tmp}
    finally:
        for name in virsh("list", "--name").stdout.split():
            if name.startswith("nvt-"):
                virsh("destroy", name, check=False)
        shutil.rmtree(HOOKS, ignore_errors=True)
        if had_hooks:
            shutil.copytree(saved, HOOKS, symlinks=True)
        libvirtd.restart()   # forget our entry programs
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(WORK, ignore_errors=True)


def started_guest(guest, **kw):
    return guest([ethernet_iface()], **kw)


def test_role_moves_foreign_hook_aside_and_second_run_changes_nothing(hooks):
    run = hooks["first"]
    assert "Kept the operator's /etc/libvirt/hooks/qemu" in run.stdout
    with open(HOOKS + "/netvirt/original/qemu") as handle:
        assert handle.read() == FOREIGN
    with open(HOOKS + "/qemu") as handle:
        assert "netvirt-hooks entry program" in handle.read()
    again = ansible_playbook(hooks["tmp"])
    assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout[-4000:]


def test_both_layouts_run_in_documented_order_with_args_stdin_and_logs(hooks, guest):
    g = started_guest(guest)
    g.destroy()
    got = calls(g.name)
    prepare = [c for c in got if " prepare begin " in c]
    assert prepare == ["foreign-qemu|%s prepare begin -|1" % g.name,
                       "order-a|%s prepare begin -|stdin-ok" % g.name,
                       "all_order-b|%s prepare begin -|stdin-ok" % g.name]
    started = [c.split("|")[0] for c in got if " started begin " in c]
    assert started == ["foreign-qemu", "order-a", "all_order-b", "started_order-c"]
    sys.path.insert(0, os.path.join(REPO, "plugins", "module_utils"))
    from nvhooks.dispatch import dispatcher as dispatch
    documented = ["foreign-qemu" if i["kind"] == "original" else i["path"].rsplit("/", 1)[1]
                  for i in dispatch.query("qemu/started/begin") if i["kind"] in ("original", "script")]
    assert documented == started
    assert "order-a|%s release end -|stdin-ok" % g.name in got
    log = hook_log("qemu_started_begin", g.name, "order-a")
    assert "INFO start /etc/libvirt/hooks/netvirt/scripts/order-a" in log and "INFO exit 0" in log
    assert "INFO exit 0" in hook_log("qemu_started_begin", g.name, "order-b")   # logs are per script, not per link


def test_timeout_kills_group_and_background_child_does_not_block(hooks, guest):
    folder = HOOKS + "/qemu_started_begin.d"
    put(folder + "/nvt-slow", '#!/bin/sh\ncase "$1" in nvt-*) ;; *) exit 0;; esac\n'
        'echo $$ > /run/nvt-hooktest/slow.pgid\nsleep 600 & sleep 600\n', conf="timeout: 2\nfail: ignore\n")
    put(folder + "/nvt-forker", '#!/bin/sh\ncase "$1" in nvt-*) ;; *) exit 0;; esac\n'
        'sleep 600 & echo $! > /run/nvt-hooktest/forker.child\necho forked\n')
    child = None
    try:
        g = started_guest(guest)
        assert g.is_active()
        with open(WORK + "/slow.pgid") as handle:
            pgid = int(handle.read())
        with open(WORK + "/forker.child") as handle:
            child = int(handle.read())
        sys.path.insert(0, os.path.join(REPO, "plugins", "module_utils"))
        from nvhooks.dispatch import runner
        assert runner.group_members(pgid) == []
        assert "timed out after 2s; process group %d killed" % pgid in hook_log("qemu_started_begin", g.name, "nvt-slow")
        os.kill(child, 0)   # the sleeper still runs: the hook did not wait for it
        assert "background process still holds" in hook_log("qemu_started_begin", g.name, "nvt-forker")
    finally:
        for path in (folder + "/nvt-slow", folder + "/nvt-forker", HOOKS + "/conf/nvt-slow.conf"):
            os.unlink(path)
        if child:
            os.kill(child, signal.SIGKILL)


def test_world_writable_script_is_refused(hooks, guest):
    path = HOOKS + "/qemu_started_begin.d/nvt-ww"
    put(path, '#!/bin/sh\ntouch /run/nvt-hooktest/ww-ran\n', mode=0o777, conf="fail: ignore\n")
    try:
        g = started_guest(guest)
        assert g.is_active() and not os.path.exists(WORK + "/ww-ran")
        log = hook_log("qemu_started_begin", g.name, "nvt-ww")
        assert " ERROR " in log and "refused: script %s is world-writable (mode 0777)" % path in log
    finally:
        os.unlink(path)
        os.unlink(HOOKS + "/conf/nvt-ww.conf")


def test_failing_prepare_script_stops_the_guest_and_says_why(hooks, guest):
    path = HOOKS + "/qemu_prepare_begin.d/nvt-deny"
    put(path, '#!/bin/sh\ncase "$1" in nvt-*) echo "no uplink for $1" >&2; exit 4;; esac\n')
    try:
        g = guest([ethernet_iface()], start=False, persistent=True)
        res = virsh("start", g.name, check=False)
        assert res.returncode != 0 and not g.is_active()
        assert "nvt-deny failed at qemu/prepare/begin: exit 4" in res.stderr
        log = hook_log("qemu_prepare_begin", g.name, "nvt-deny")
        assert "no uplink for %s" % g.name in log and "ERROR exit 4" in log
    finally:
        os.unlink(path)


def test_failing_reconnect_script_leaves_the_guest_running(hooks, guest, libvirtd):
    path = HOOKS + "/qemu_reconnect_begin.d/nvt-fail"
    put(path, '#!/bin/sh\nexit 1\n')
    try:
        g = started_guest(guest)
        libvirtd.restart()
        assert g.is_active()
        assert "ignored at reconnect: the guest keeps running" in hook_log("qemu_reconnect_begin", g.name, "nvt-fail")
    finally:
        os.unlink(path)


def test_restore_junk_stdout_ignored_and_xml_filter_applied(hooks, guest, tmp_path):
    folder = HOOKS + "/qemu_restore_begin.d"
    put(folder + "/nvt-junk", "#!/bin/sh\necho JUNK-NOT-XML\necho '<domain/>'\n")
    g = started_guest(guest)
    image = str(tmp_path / "guest.save")
    try:
        virsh("save", g.name, image)
        virsh("restore", image)
        assert g.is_active()
        assert "JUNK" not in g.dumpxml() and "nvt-filtered" not in g.dumpxml()
        assert "JUNK-NOT-XML" in hook_log("qemu_restore_begin", g.name, "nvt-junk")
        put(folder + "/nvt-desc", "#!/usr/bin/python3\nimport sys\n"
            "xml = sys.stdin.read()\n"
            "sys.stdout.write(xml.replace('</name>', '</name><description>nvt-filtered</description>', 1))\n",
            conf="xml_filter: yes\n")
        virsh("save", g.name, image)
        virsh("restore", image)
        assert g.is_active()
        assert "<description>nvt-filtered</description>" in g.dumpxml()
        assert "XML filter output accepted" in hook_log("qemu_restore_begin", g.name, "nvt-desc")
    finally:
        for path in (folder + "/nvt-junk", folder + "/nvt-desc", HOOKS + "/conf/nvt-desc.conf"):
            if os.path.exists(path):
                os.unlink(path)


def test_restore_refused_when_filter_changes_the_uuid(hooks, guest, tmp_path):
    folder = HOOKS + "/qemu_restore_begin.d"
    put(folder + "/nvt-bad", "#!/usr/bin/python3\nimport re, sys\n"
        "sys.stdout.write(re.sub('<uuid>[^<]*</uuid>', '<uuid>00000000-0000-0000-0000-000000000001</uuid>',"
        " sys.stdin.read()))\n", conf="xml_filter: yes\n")
    g = started_guest(guest)
    image = str(tmp_path / "guest.save")
    try:
        virsh("save", g.name, image)
        res = virsh("restore", image, check=False)
        assert res.returncode != 0 and not g.is_active()
        assert "XML filter output invalid" in res.stderr
        assert "ERROR XML filter output refused" in hook_log("qemu_restore_begin", g.name, "nvt-bad")
    finally:
        os.unlink(folder + "/nvt-bad")
        os.unlink(HOOKS + "/conf/nvt-bad.conf")
