"""Issue #11's fault suite: every fault case, one row each, one table.

The hooks and shaping roles are installed once for the module (real
ansible-playbook; /etc/libvirt/hooks, /usr/lib/netvirt-hooks and the command
are put back afterwards). Most cases run the installed entry program
/etc/libvirt/hooks/qemu exactly as libvirt does (four arguments, the domain
XML on stdin) against real tap devices, with NETVIRT_HOOKS_ROOT pointing conf,
policy, scripts, locks and logs at a scratch tree; the cases that need libvirt
(start-begin policy, 20 guests of one group, a libvirtd restart, the lock of
another user) use real guests.

Every case asserts: the hook returned (a subprocess timeout far above its
budget), the exit status libvirt's contract asks for, the host state fully
applied (the core's check mode has nothing to change) or untouched, one clear
line. Each records (case, expected, outcome, seconds); the table is printed at
the end and written to build/results/fault-suite.md (docs/faults.md has a copy).
Times are printed, never asserted.
"""
import concurrent.futures
import fcntl
import glob
import json
import os
import re
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import time
import uuid

import pytest

import faultsuite as fs
from conftest import REPO, SAVED, VENV_BIN, domain_xml, uid, virsh
from hooktree import Tree

RESULTS = os.path.join(os.environ.get("NVT_BUILD", os.path.join(REPO, "build")), "results")
GROUP = "nvtfsg"                 # the group of the installed policy (real guests)
REAL_RUN = "/run/netvirt-hooks"
BUDGET = 30                      # scratch event_timeout (s); the subprocess limit is 4x that
LIMIT = 4 * BUDGET
PROBE = """#!/bin/sh
# start begin: what the taps carry before qemu runs
case "$1" in nvt-fs-*) ;; *) exit 0 ;; esac
for tap in $(sed -n "s/.*<target dev='\\([^']*\\)'.*/\\1/p"); do
    echo "$tap $(tc qdisc show dev "$tap" root | head -n1 | cut -d' ' -f2)"
done > "/run/nvt-fs-probe-$1"
"""


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def suite():
    collector = fs.Suite()
    yield collector
    text = "## Fault suite (tests/libvirt/test_fault_suite.py)\n\n" + collector.table()
    sys.__stdout__.write("\n" + text)
    sys.__stdout__.flush()
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "fault-suite.md"), "w", encoding="utf-8") as handle:
        handle.write(text)


@pytest.fixture(scope="module")
def installed(libvirtd, tmp_path_factory):
    """The hooks and shaping roles on this host (once); everything put back afterwards."""
    tmp = tmp_path_factory.mktemp("nvt-fs-roles")
    archive = tmp / "before.tar"
    with tarfile.open(archive, "w") as tar:
        for path in SAVED:
            if os.path.lexists(path):
                tar.add(path)
    coll = tmp / "collections" / "ansible_collections" / "netvirt"
    coll.mkdir(parents=True)
    (coll / "libvirt_hooks").symlink_to(REPO)
    play = [{"hosts": "localhost", "gather_facts": False, "roles": [
        "netvirt.libvirt_hooks.hooks", "netvirt.libvirt_hooks.shaping"], "vars": {
        "hooks_install_packages": False, "hooks_timeout": 60, "hooks_event_timeout": 120, "hooks_grace": 2,
        "hooks_scripts": [{"name": "nvt-fs-probe", "events": ["qemu/start/begin"], "content": PROBE}],
        "shaping_groups": {GROUP: {"outbound": {"ceiling": "200mbit", "floor": "1mbit"}}},
        "shaping_rules": [{"match": {"guest": "nvt-fs-*"}, "inbound": {"average": "8mbit"}, "group": GROUP,
                           "comment": "test_fault_suite"}]}}]
    (tmp / "play.yml").write_text(json.dumps(play))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(tmp / "collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-tmp"))
    try:
        proc = subprocess.run([os.path.join(VENV_BIN, "ansible-playbook"), "-i", "localhost,", "-c", "local",
                               "-e", "ansible_python_interpreter=/usr/bin/python3", str(tmp / "play.yml")],
                              capture_output=True, text=True, timeout=900, env=env, check=False)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        libvirtd.restart()       # libvirt reads its hook programs at start
        yield
    finally:
        for name in virsh("list", "--name").stdout.split():
            if name.startswith("nvt-fs-"):
                virsh("destroy", name, check=False)
        for path in SAVED:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            elif os.path.lexists(path):
                os.unlink(path)
        with tarfile.open(archive) as tar:
            tar.extractall("/")  # noqa: S202  our own archive of root-owned paths
        libvirtd.restart()
        for path in glob.glob("/run/nvt-fs-probe-*"):   # PROBE ran for every nvt-fs-* guest
            os.unlink(path)


class Lab:
    """A scratch hook tree (NETVIRT_HOOKS_ROOT) and real tap devices in the host netns."""

    def __init__(self, root):
        self.tree = Tree(root)
        self.root = self.tree.root
        self.taps, self.names = [], []
        self.group = "nvtfg" + uid(4)
        self.names.append(self.group)
        self.conf()

    def conf(self, extra=""):
        self.tree.dispatcher_conf(f"builtins: yes\nsyslog: no\ntimeout: 20\nevent_timeout: {BUDGET}\n"
                                  f"grace: 1\n{extra}")

    def tap(self):
        name = "nvtf" + uid(6)
        fs.sh("ip", "tuntap", "add", "dev", name, "mode", "tap")
        self.taps.append(name)
        self.names.append(name)
        return name

    def policy(self, doc=None, **override):
        doc = doc if doc is not None else {
            "version": 1, "groups": {self.group: {"outbound": {"ceiling": "100mbit", "floor": "1mbit"}}},
            "rules": [{"match": {"dev": "nvtf*"}, "inbound": {"average": "8mbit"}, "group": self.group}]}
        doc.update(override)
        self.tree.write("netvirt/policy.json", json.dumps(doc))
        return doc

    def xml(self, name, taps, meta="", raw=None):
        text = domain_xml(name, [fs.iface(t, fs.mac_of(t)) for t in taps], meta, domain_uuid=str(uuid.uuid4()))
        os.makedirs(self.tree.path("/run/libvirt/qemu"), exist_ok=True)
        with open(self.tree.path(f"/run/libvirt/qemu/{name}.xml"), "w", encoding="utf-8") as handle:
            handle.write(text)   # the status XML netvirt-hooks reads
        return text

    def hook(self, guest, op, subop, xml=b"", **kw):
        kw.setdefault("timeout", LIMIT)
        return fs.hook(self.root, guest, op, subop, xml, **kw)

    def in_sync(self, guest):
        """The core's check mode (netvirt-hooks apply --check): nothing to change."""
        call = fs.command(self.root, "apply", guest, "--check")
        return call.rc == 0, call

    def planned_ifbs(self):
        """The ifb names our taps and group would get (an ifb killed before its alias was set has none)."""
        from nvhooks.shaping import plan as tcplan
        return {tcplan.port_ifb(t) for t in self.taps} | {tcplan.group_ifb(self.group, d)
                                                          for d in ("inbound", "outbound")}

    def teardown(self):
        for tap in self.taps:
            fs.sh("ip", "link", "del", tap, check=False)
        for name in set(fs.ours(self.names)) | (self.planned_ifbs() & set(fs.ifbs())):
            fs.sh("ip", "link", "del", name, check=False)


@pytest.fixture
def lab(installed, tmp_path):
    (tmp_path / "root").mkdir()
    made = Lab(tmp_path / "root")
    yield made
    made.teardown()


def applied(lab, guest, taps):
    ok, call = lab.in_sync(guest)
    assert ok, f"check mode wants changes: {call.stdout[-600:]} {call.stderr[-300:]}"
    assert all(fs.root_qdisc(t) == "htb" for t in taps)
    return True


def untouched(lab, taps):
    assert all(fs.untouched(t) for t in taps), [fs.sh("tc", "qdisc", "show", "dev", t) for t in taps]
    assert not fs.ours(lab.names), fs.ours(lab.names)
    return True


def aborted(call, *words):
    """Exit 1 (libvirt aborts) with one stderr line containing ``words``."""
    assert call.rc == 1, call
    line = call.one_line()
    for word in words:
        assert word in line, line
    return line


def quiet_ok(call):
    """Exit 0 with at most one stderr line."""
    assert call.rc == 0, call
    assert len(call.lines) <= 1, call.lines
    return call.lines[0] if call.lines else "(no stderr)"


def logged(lab, guest, event):
    """A non-aborting failure: exit 0 was checked; each failed step logged exactly one ERROR line."""
    errors = {k: v for k, v in fs.errors_of(lab.root, guest).items() if k.startswith(event.replace("/", "_") + "_")}
    assert errors, f"no ERROR logged for {event}"
    # a handler's log may detail each port; its one summary line is "<handler>.handle failed: ..."
    summary = {k: [x for x in v if ".handle failed" in x] if k.endswith("hook.log") else v for k, v in errors.items()}
    assert all(len(v) == 1 for v in summary.values()), errors
    first = next(iter(summary.values()))[0]
    return f"{len(errors)} step(s) logged 1 ERROR each: " + first.split(" ERROR ", 1)[1]


def short(text, n=150):
    text = re.sub(r"/tmp/pytest-of-root/[^ ]*?/root/", "$ROOT/", text.replace("netvirt-hooks: ", ""))
    return text if len(text) <= n else text[:n] + "..."


# ------------------------------------------------------- issue #11's own items
def test_01_policy_applied_at_start_begin_before_qemu(suite, installed, guest):
    with suite.case("#11.1 shaped guest: policy at `start begin`, before qemu runs",
                    "tap carries our HTB at start begin; guest runs; check mode clean") as row:
        tap = "nvtf" + uid(6)
        g = guest([fs.iface(tap)], name="nvt-fs-" + uid(6))
        try:
            assert g.is_active()
            with open(f"/run/nvt-fs-probe-{g.name}", encoding="utf-8") as handle:
                probe = handle.read().split()
            assert probe == [tap, "htb"], probe
            call = fs.command(None, "apply", g.name, "--check")
            assert call.rc == 0, call
            row.outcome = f"start begin saw `{tap} htb`; guest running; apply --check exit 0"
        finally:
            if os.path.exists(f"/run/nvt-fs-probe-{g.name}"):
                os.unlink(f"/run/nvt-fs-probe-{g.name}")


def test_03_mac_read_as_int_is_refused_naming_the_key(suite, lab):
    with suite.case("#11.3 MAC that YAML read as an int (rules[0].match.mac)",
                    "start: exit 1, one line naming the key; reconnect: exit 0; tap untouched") as row:
        tap = lab.tap()
        lab.policy(rules=[{"match": {"mac": 41135085296}, "inbound": {"average": "8mbit"}}])
        xml = lab.xml("nvt-fs-mac", [tap])
        line = aborted(lab.hook("nvt-fs-mac", "start", "begin", xml), "rules[0].match.mac", "int")
        quiet_ok(lab.hook("nvt-fs-mac", "reconnect", "begin", xml))
        logged(lab, "nvt-fs-mac", "qemu/reconnect/begin")
        untouched(lab, [tap])
        row.outcome = "exit 1: " + short(line)


def test_04a_non_utf8_script_name_at_reconnect(suite, lab):
    with suite.case("#11.4 script file name not UTF-8 (b'10-\\xff\\xfe') at reconnect",
                    "exit 0, the script runs or is refused with a log record") as row:
        folder = lab.tree.path("/etc/libvirt/hooks/qemu_reconnect_begin.d").encode()
        os.makedirs(folder, exist_ok=True)
        marker = lab.tree.path("/ran-bad-name")
        path = folder + b"/10-\xff\xfe"
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(f"#!/bin/sh\ntouch {marker}\n")
        os.chmod(path, 0o755)
        call = lab.hook("nvt-fs-utf", "reconnect", "begin", lab.xml("nvt-fs-utf", []))
        line = quiet_ok(call)
        logs = os.listdir(lab.tree.logs)
        row.outcome = f"exit 0, ran={os.path.exists(marker)}, {len(logs)} log file(s); stderr: {short(line, 60)}"


@pytest.mark.parametrize("limit,op,subop,want,most", [
    (7, "reconnect", "begin", 0, 1), (7, "stopped", "end", 0, 1), (7, "start", "begin", 1, 1),
    (5, "reconnect", "begin", 0, 2)])
def test_04b_emfile(suite, lab, limit, op, subop, want, most):
    lines = "one stderr line" if most == 1 else "a line that the log cannot be written, and the reason"
    with suite.case(f"#11.4 EMFILE (RLIMIT_NOFILE={limit}) at {op}/{subop}", f"exit {want}, {lines}") as row:
        tap = lab.tap()
        lab.policy()
        xml = lab.xml("nvt-fs-emfile", [tap])
        lab.tree.script(f"qemu_{op}_{subop}.d/10-echo", "echo hello")

        def few_fds():
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        call = lab.hook("nvt-fs-emfile", op, subop, xml, preexec_fn=few_fds)
        assert call.rc == want, call
        assert 1 <= len(call.lines) <= most, call.lines
        row.outcome = f"exit {call.rc}: " + short(" / ".join(call.lines))


@pytest.mark.parametrize("op,subop,want", [("start", "begin", 1), ("reconnect", "begin", 0)])
def test_04c_policy_file_is_a_folder(suite, lab, op, subop, want):
    with suite.case(f"#11.4 unexpected error: policy.json is a folder, at {op}/{subop}",
                    f"exit {want}, one line; tap untouched") as row:
        tap = lab.tap()
        os.makedirs(lab.tree.path("/etc/libvirt/hooks/netvirt/policy.json"))
        call = lab.hook("nvt-fs-dir", op, subop, lab.xml("nvt-fs-dir", [tap], fs.metadata(
            f"<nv:interface dev='{tap}'><nv:inbound average='8mbit'/></nv:interface>")))
        assert call.rc == want, call
        line = call.one_line() if want else logged(lab, "nvt-fs-dir", f"qemu/{op}/{subop}")
        untouched(lab, [tap])
        row.outcome = f"exit {call.rc}: " + short(line)


@pytest.mark.parametrize("op,want", [("start", 1), ("reconnect", 0)])
def test_04d_handlers_share_the_event_budget(suite, lab, op, want):
    with suite.case(f"#11.4 group lock held by a stuck hook, event_timeout 3 s, at {op}",
                    f"the wait ends with the budget: exit {want}, one line; tap untouched") as row:
        tap = lab.tap()
        lab.tree.dispatcher_conf("builtins: yes\nsyslog: no\ntimeout: 20\nevent_timeout: 3\ngrace: 1\n")
        lab.policy()
        locks = lab.tree.path(REAL_RUN + "/locks")
        os.makedirs(locks, mode=0o700)
        os.chmod(os.path.dirname(locks), 0o700)
        fd = os.open(f"{locks}/group-{lab.group}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            call = lab.hook("nvt-fs-budget", op, "begin", lab.xml("nvt-fs-budget", [tap]), timeout=60)
        finally:
            os.close(fd)
        assert call.rc == want, call
        line = call.one_line() if want else (call.lines[0] if call.lines else "(no stderr)")
        assert len(call.lines) <= 1, call.lines
        errors = fs.error_lines(lab.root, f"qemu_{op}_begin_nvt-fs-budget_shapehook.log")
        assert errors, "no ERROR in the shapehook log"
        untouched(lab, [tap])
        row.outcome = f"exit {call.rc} after {call.seconds:.1f}s: " + short(line if want else errors[-1].split(" ERROR ")[1])


def test_05a_lock_files_root_only(suite, lab):
    with suite.case("#11.5 lock folders/files made 0755/0644 by an old version",
                    "tightened to 0700/0600 on first use; guest shaped") as row:
        tap = lab.tap()
        lab.policy()
        run = lab.tree.path(REAL_RUN)
        os.makedirs(run + "/locks", mode=0o755)
        os.chmod(run, 0o755)
        old = f"{run}/locks/group-{lab.group}.lock"
        with open(old, "w"):
            pass
        os.chmod(old, 0o644)
        xml = lab.xml("nvt-fs-modes", [tap])
        assert lab.hook("nvt-fs-modes", "start", "begin", xml).rc == 0
        modes = {p: stat.S_IMODE(os.lstat(p).st_mode) for p in [run, run + "/locks"] +
                 [os.path.join(run, "locks", f) for f in os.listdir(run + "/locks")]}
        assert modes[run] == 0o700 and modes[run + "/locks"] == 0o700, modes
        assert all(m == 0o600 for p, m in modes.items() if p.endswith(".lock")), modes
        applied(lab, "nvt-fs-modes", [tap])
        row.outcome = f"0700/0700 and {len(modes) - 2} lock file(s) 0600; applied"


def test_05b_planted_lock_symlink_refused(suite, lab):
    with suite.case("#11.5 lock file replaced by a symlink to another file",
                    "start: exit 1, one line 'is a symlink'; target untouched; tap untouched") as row:
        tap = lab.tap()
        lab.policy()
        locks = lab.tree.path(REAL_RUN + "/locks")
        os.makedirs(locks, mode=0o700)
        os.chmod(os.path.dirname(locks), 0o700)
        victim = lab.tree.path("/victim")
        os.symlink(victim, f"{locks}/group-{lab.group}.lock")
        call = lab.hook("nvt-fs-plant", "start", "begin", lab.xml("nvt-fs-plant", [tap]))
        line = aborted(call, "symlink")
        assert not os.path.exists(victim)
        untouched(lab, [tap])
        row.outcome = "exit 1: " + short(line)


def test_06a_symlink_chain_hop_in_writable_folder(suite, lab):
    with suite.case("#11.6 symlink chain whose middle hop sits in a world-writable folder",
                    "refused (exit 1, one line), the script never runs") as row:
        marker = lab.tree.path("/ran-chain")
        real = lab.tree.script("../../../safe/real.sh", f"touch {marker}")
        ww = lab.tree.path("/ww")
        os.makedirs(ww)
        os.chmod(ww, 0o777)
        os.symlink(real, ww + "/hop")
        folder = lab.tree.path("/etc/libvirt/hooks/qemu_start_begin.d")
        os.makedirs(folder, exist_ok=True)
        os.symlink(ww + "/hop", folder + "/20-chain")
        call = lab.hook("nvt-fs-chain", "start", "begin", lab.xml("nvt-fs-chain", []))
        line = aborted(call, "refused")
        assert not os.path.exists(marker)
        row.outcome = "exit 1: " + short(line)


def test_06b_symlink_swapped_before_exec(suite, lab):
    with suite.case("#11.6 symlink swap: an earlier script repoints a later script's link",
                    "the swapped link is refused at the re-check (exit 1, one line); the new target never runs") as row:
        good, evil = lab.tree.path("/ran-good"), lab.tree.path("/ran-evil")
        good_sh = lab.tree.script("../../../safe/good.sh", f"touch {good}")
        evil_sh = lab.tree.script("../../../safe/evil.sh", f"touch {evil}")
        folder = lab.tree.path("/etc/libvirt/hooks/qemu_start_begin.d")
        os.makedirs(folder, exist_ok=True)
        os.symlink(good_sh, folder + "/20-victim")
        lab.tree.script("qemu_start_begin.d/10-swap", f"ln -sfn {evil_sh} {folder}/20-victim")
        call = lab.hook("nvt-fs-swap", "start", "begin", lab.xml("nvt-fs-swap", []))
        line = aborted(call, "20-victim")
        assert not os.path.exists(evil) and not os.path.exists(good)
        row.outcome = "exit 1: " + short(line)


def test_07_bad_status_xml_of_one_guest(suite, lab):
    with suite.case("#11.7 one guest's status XML has a 4 GiB burst; another guest is fine",
                    "netvirt-hooks status BAD: exit 4; apply GOOD --check: exit 0") as row:
        bad_tap, good_tap = lab.tap(), lab.tap()
        lab.policy({"version": 1})
        lab.xml("nvt-fs-bad", [bad_tap], fs.metadata(
            f"<nv:interface dev='{bad_tap}'><nv:inbound average='8mbit' burst='4GiB'/></nv:interface>"))
        good = lab.xml("nvt-fs-good", [good_tap], fs.metadata(
            f"<nv:interface dev='{good_tap}'><nv:inbound average='8mbit'/></nv:interface>"))
        assert lab.hook("nvt-fs-good", "start", "begin", good).rc == 0
        bad = fs.command(lab.root, "status", "nvt-fs-bad")
        assert bad.rc == 4, bad
        assert "burst" in bad.stderr + bad.stdout, bad
        applied(lab, "nvt-fs-good", [good_tap])
        every = fs.command(lab.root, "status")
        row.outcome = (f"status BAD exit 4 ({short((bad.stderr or bad.stdout).strip(), 70)}); "
                       f"GOOD in sync; `status` (all) exit {every.rc}")


def test_08_doctype_after_comment(suite, lab):
    with suite.case("#11.8 `<!-- c -->` then `<!DOCTYPE ... ENTITY>` on stdin",
                    "start: exit 1, one line naming DOCTYPE; reconnect: exit 0; tap untouched") as row:
        tap = lab.tap()
        lab.policy()
        xml = lab.xml("nvt-fs-dtd", [tap])
        evil = ("<!-- leading comment -->\n<!DOCTYPE domain [<!ENTITY e SYSTEM 'file:///etc/shadow'>]>\n"
                + xml.replace("<memory", "<description>&e;</description><memory", 1))
        line = aborted(lab.hook("nvt-fs-dtd", "start", "begin", evil), "DOCTYPE")
        quiet_ok(lab.hook("nvt-fs-dtd", "reconnect", "begin", evil))
        logged(lab, "nvt-fs-dtd", "qemu/reconnect/begin")
        untouched(lab, [tap])
        row.outcome = "exit 1: " + short(line)


def test_09_metadata_may_not_join_groups(suite, lab):
    with suite.case("#11.9 settings.metadata_groups: [] and metadata joins a group",
                    "start: exit 1, one line naming settings.metadata_groups; tap untouched") as row:
        tap = lab.tap()
        doc = lab.policy()
        doc.update(rules=[], settings={"metadata_groups": []})
        lab.policy(doc)
        xml = lab.xml("nvt-fs-trust", [tap], fs.metadata(
            f"<nv:interface dev='{tap}'><nv:group name='{lab.group}'/></nv:interface>"))
        line = aborted(lab.hook("nvt-fs-trust", "start", "begin", xml), "metadata_groups")
        untouched(lab, [tap])
        row.outcome = "exit 1: " + short(line)


# ------------------------------------------------------------------ scripts
@pytest.mark.parametrize("op,subop,want", [("start", "begin", 1), ("reconnect", "begin", 0)])
def test_10_hanging_script(suite, lab, op, subop, want):
    with suite.case(f"script hangs (sleep 600, timeout 2 s, grace 1 s) at {op}",
                    f"killed with its process group, hook returns, exit {want}") as row:
        pids = lab.tree.path("/hang.pid")
        lab.tree.script(f"qemu_{op}_{subop}.d/10-hang", f"echo $$ > {pids}\nsleep 600 & sleep 600",
                        conf="timeout: 2\n")
        call = lab.hook("nvt-fs-hang", op, subop, lab.xml("nvt-fs-hang", []), timeout=60)
        assert call.rc == want, call
        with open(pids, encoding="utf-8") as handle:
            pgid = int(handle.read())
        alive = fs.group_alive(pgid)
        assert not alive, alive
        log = fs.log_text(lab.root, f"qemu_{op}_{subop}_nvt-fs-hang_10-hang.log")
        assert "timed out after 2s" in log
        if want:
            aborted(call, "timed out")
        row.outcome = f"exit {call.rc} after {call.seconds:.1f}s; group {pgid} gone; log: timed out after 2s"


def test_11_forking_script(suite, lab):
    with suite.case("script forks a child that keeps stdout open, then exits 0",
                    "hook returns at the script's exit, exit 0, log says a background process holds the pipe") as row:
        child = lab.tree.path("/child.pid")
        lab.tree.script("qemu_started_begin.d/10-fork", f"sleep 600 & echo $! > {child}\necho forked")
        try:
            call = lab.hook("nvt-fs-fork", "started", "begin", lab.xml("nvt-fs-fork", []), timeout=60)
            quiet_ok(call)
            log = fs.log_text(lab.root, "qemu_started_begin_nvt-fs-fork_10-fork.log")
            assert "background process still holds" in log, log
            row.outcome = f"exit 0 after {call.seconds:.1f}s; WARNING background process logged"
        finally:
            if os.path.exists(child):
                with open(child, encoding="utf-8") as handle:
                    os.kill(int(handle.read()), signal.SIGKILL)


def test_12_spamming_script(suite, lab):
    with suite.case("script spams stdout forever (`yes`), timeout 2 s, fail: ignore",
                    "killed, exit 0, log bounded (256 KiB captured per stream)") as row:
        lab.tree.script("qemu_start_begin.d/10-spam", "exec yes spam", conf="timeout: 2\nfail: ignore\n")
        call = lab.hook("nvt-fs-spam", "start", "begin", lab.xml("nvt-fs-spam", []), timeout=60)
        assert call.rc == 0, call
        path = os.path.join(lab.tree.logs, "qemu_start_begin_nvt-fs-spam_10-spam.log")
        size = os.path.getsize(path)
        assert size < 4 * 1024 * 1024, size
        assert "(truncated)" in fs.log_text(lab.root, "qemu_start_begin_nvt-fs-spam_10-spam.log")
        row.outcome = f"exit 0 after {call.seconds:.1f}s; log {size // 1024} KiB, stdout marked truncated"


@pytest.mark.parametrize("op,subop,want", [("start", "begin", 1), ("stopped", "end", 0)])
def test_13_failing_script(suite, lab, op, subop, want):
    with suite.case(f"script exits 3 at {op}/{subop}",
                    f"exit {want}; " + ("one line naming the script" if want else "ERROR logged")) as row:
        lab.tree.script(f"qemu_{op}_{subop}.d/10-deny", "echo 'no uplink' >&2; exit 3")
        call = lab.hook("nvt-fs-deny", op, subop, lab.xml("nvt-fs-deny", []))
        assert call.rc == want, call
        errors = fs.error_lines(lab.root, f"qemu_{op}_{subop}_nvt-fs-deny_10-deny.log")
        assert len(errors) == 1, errors
        line = aborted(call, "10-deny", "exit 3") if want else errors[0].split(" ERROR ", 1)[1]
        row.outcome = f"exit {call.rc}: " + short(line)


def test_14_world_writable_script(suite, lab):
    with suite.case("world-writable script (0777) at start",
                    "refused, never run: exit 1, one line") as row:
        marker = lab.tree.path("/ran-ww")
        lab.tree.script("qemu_start_begin.d/10-ww", f"touch {marker}", mode=0o777)
        os.chmod(lab.tree.path("/etc/libvirt/hooks/qemu_start_begin.d/10-ww"), 0o777)
        line = aborted(lab.hook("nvt-fs-ww", "start", "begin", lab.xml("nvt-fs-ww", [])), "world-writable")
        assert not os.path.exists(marker)
        row.outcome = "exit 1: " + short(line)


HOSTILE = ["nvt-fs-$(touch /tmp/nvt-fs-pwned)", "nvt-fs-../../../../../tmp/nvt-fs-escape",
           "nvt-fs-;reboot;`id`|&", "nvt-fs-" + "x" * 240, "nvt-fs-\u65e5\u672c \u00fcn\u00ef",
           "nvt-fs-\x1b[31mred\x1b[0m", "-rf", "nvt-fs-*?[a]"]


def test_15_hostile_guest_names(suite, lab):
    with suite.case(f"{len(HOSTILE) + 1} hostile guest names ($(...), ../, 240 chars, ESC, non-UTF-8, -rf, globs)",
                    "exit 0 each; scripts get the name verbatim; logs stay in the log folder, one per name") as row:
        out = lab.tree.path("/names")
        lab.tree.script("qemu_started_begin.d/10-rec",
                        f"import os, sys\nopen({out!r}, 'ab').write(os.fsencode(sys.argv[1]) + b'\\0')",
                        shell="/usr/bin/python3")
        names = [n.encode() for n in HOSTILE] + [b"nvt-fs-\xff\xfe"]
        for name in names:
            xml = lab.xml("nvt-fs-hostile", []).replace("nvt-fs-hostile", "nvt-fs-x")
            call = fs.hook(lab.root, name.decode("utf-8", "surrogateescape"), "started", "begin", xml, timeout=LIMIT)
            quiet_ok(call)
        with open(out, "rb") as handle:
            got = handle.read().split(b"\0")[:-1]
        assert got == names, got
        assert not os.path.exists("/tmp/nvt-fs-pwned") and not os.path.exists(lab.tree.path("/tmp"))
        logs = os.listdir(lab.tree.logs)
        assert len([n for n in logs if n.endswith("_10-rec.log")]) == len(names), logs
        assert all(os.path.isfile(os.path.join(lab.tree.logs, n)) for n in logs)
        row.outcome = f"{len(names)} x exit 0; names verbatim; {len(logs)} log files, all inside the folder"


# ------------------------------------------------------------ policy and XML
@pytest.mark.parametrize("op,subop,want", [("start", "begin", 1), ("reconnect", "begin", 0), ("stopped", "end", 0)])
def test_16_malformed_xml(suite, lab, op, subop, want):
    with suite.case(f"malformed domain XML (cut in half) at {op}/{subop}",
                    f"exit {want}, one line; tap untouched") as row:
        tap = lab.tap()
        lab.policy()
        xml = lab.xml("nvt-fs-cut", [tap])
        call = lab.hook("nvt-fs-cut", op, subop, xml[:len(xml) // 2])
        assert call.rc == want, call
        line = call.one_line() if want else logged(lab, "nvt-fs-cut", f"qemu/{op}/{subop}")
        untouched(lab, [tap])
        row.outcome = f"exit {call.rc}: " + short(line)


@pytest.mark.parametrize("label,rate,word", [
    ("unknown unit '10mbitz'", "10mbitz", "rules[0].inbound.average"),
    ("absurd rate '99999999tbit' (fits u64, beyond HTB)", "99999999tbit", "beyond what HTB can express"),
    ("absurd rate '999999999tbit' (beyond u64 bytes/s)", "999999999tbit", "rules[0].inbound.average"),
    ("zero rate", "0", "rules[0].inbound.average"),
    ("negative rate", "-5mbit", "rules[0].inbound.average")])
def test_17_bad_rates(suite, lab, label, rate, word):
    with suite.case(f"host policy with {label}", f"start: exit 1, one line with '{word}'; tap untouched") as row:
        tap = lab.tap()
        lab.policy(rules=[{"match": {"dev": "nvtf*"}, "inbound": {"average": rate}}])
        line = aborted(lab.hook("nvt-fs-rate", "start", "begin", lab.xml("nvt-fs-rate", [tap])), word)
        untouched(lab, [tap])
        row.outcome = "exit 1: " + short(line)


def test_18_absurd_metadata_burst(suite, lab):
    with suite.case("guest metadata burst='4GiB' (beyond u32) at start",
                    "exit 1, one line naming burst; tap untouched") as row:
        tap = lab.tap()
        lab.policy({"version": 1})
        xml = lab.xml("nvt-fs-burst", [tap], fs.metadata(
            f"<nv:interface dev='{tap}'><nv:inbound average='8mbit' burst='4GiB'/></nv:interface>"))
        line = aborted(lab.hook("nvt-fs-burst", "start", "begin", xml), "burst")
        untouched(lab, [tap])
        row.outcome = "exit 1: " + short(line)


@pytest.mark.parametrize("op,subop,want", [("start", "begin", 1), ("reconnect", "begin", 0), ("stopped", "end", 0)])
def test_19_missing_device(suite, lab, op, subop, want):
    with suite.case(f"XML names a tap that does not exist, at {op}/{subop}",
                    f"exit {want}, at most one line; nothing created") as row:
        lab.policy()
        gone = "nvtf" + uid(6)
        lab.names.append(gone)
        call = lab.hook("nvt-fs-gone", op, subop, lab.xml("nvt-fs-gone", [gone]))
        assert call.rc == want, call
        line = call.one_line() if want else quiet_ok(call)
        if not want:
            line = logged(lab, "nvt-fs-gone", f"qemu/{op}/{subop}") if fs.errors_of(lab.root, "nvt-fs-gone") \
                else "nothing logged as ERROR (" + line + ")"
        assert not fs.ours(lab.names), fs.ours(lab.names)
        row.outcome = f"exit {call.rc}: " + short(line)


# ------------------------------------------------------------ the environment
def test_20_full_tmp(suite, lab):
    with suite.case("TMPDIR on a full 64 KiB tmpfs, a script and shaping at start",
                    "exit 0, fully applied") as row:
        tap = lab.tap()
        lab.policy()
        full = lab.tree.path("/fulltmp")
        os.makedirs(full)
        fs.sh("mount", "-t", "tmpfs", "-o", "size=64k,mode=1777", "nvtfs-tmp", full)
        try:
            subprocess.run(["dd", "if=/dev/zero", f"of={full}/fill", "bs=4k"], capture_output=True, check=False)
            lab.tree.script("qemu_start_begin.d/10-hi", "echo hi")
            xml = lab.xml("nvt-fs-full", [tap])
            call = lab.hook("nvt-fs-full", "start", "begin", xml,
                            env=fs.clean_env(lab.root, TMPDIR=full))
            quiet_ok(call)
            applied(lab, "nvt-fs-full", [tap])
            row.outcome = f"exit 0 after {call.seconds:.1f}s; applied (check mode clean)"
        finally:
            fs.sh("umount", full, check=False)


def test_21_full_log_folder(suite, lab):
    with suite.case("log_dir on a full 64 KiB tmpfs, a script and shaping at start",
                    "exit 0, fully applied, one stderr line about the log") as row:
        tap = lab.tap()
        lab.policy()
        full = lab.tree.path("/fulllog")
        os.makedirs(full)
        fs.sh("mount", "-t", "tmpfs", "-o", "size=64k", "nvtfs-log", full)
        try:
            subprocess.run(["dd", "if=/dev/zero", f"of={full}/fill", "bs=4k"], capture_output=True, check=False)
            lab.tree.dispatcher_conf(f"builtins: yes\nsyslog: no\ntimeout: 20\nevent_timeout: {BUDGET}\n"
                                     f"grace: 1\nlog_dir: {full}\n")
            lab.tree.script("qemu_start_begin.d/10-hi", "echo hi")
            call = lab.hook("nvt-fs-flog", "start", "begin", lab.xml("nvt-fs-flog", [tap]))
            assert call.rc == 0, call
            applied(lab, "nvt-fs-flog", [tap])
            row.outcome = f"exit 0; applied; {len(call.lines)} stderr line(s): {short(call.lines[0]) if call.lines else ''}"
            assert len(call.lines) <= 1, call.lines
        finally:
            fs.sh("umount", full, check=False)


def test_22_lock_of_another_user(suite, installed, guest):
    with suite.case("user nobody tries to hold a group lock (setpriv --reuid=65534)",
                    "cannot even open it (0700/0600, root's); a guest of the group starts") as row:
        first = guest([fs.iface("nvtf" + uid(6))], name="nvt-fs-" + uid(6))
        assert first.is_active()
        lock = os.path.join(REAL_RUN, "locks", f"group-{GROUP}.lock")
        assert stat.S_IMODE(os.stat(REAL_RUN).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(lock).st_mode) == 0o600 and os.stat(lock).st_uid == 0
        probe = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3",
                                "-c", "import fcntl, sys; f = open(sys.argv[1], 'rb'); fcntl.flock(f, fcntl.LOCK_EX);"
                                " print('held')", lock], capture_output=True, text=True, timeout=30, check=False)
        assert probe.returncode != 0 and "held" not in probe.stdout, probe
        assert "PermissionError" in probe.stderr, probe.stderr
        start = time.monotonic()
        second = guest([fs.iface("nvtf" + uid(6))], name="nvt-fs-" + uid(6))
        assert second.is_active()
        row.outcome = f"nobody: PermissionError; second guest started in {time.monotonic() - start:.1f}s"


def test_23_twenty_guests_concurrently_then_libvirtd_restart(suite, installed, libvirtd):
    names = ["nvt-fs-" + uid(6) for _n in range(20)]
    taps = {n: "nvtf" + uid(6) for n in names}
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=20)
    try:
        with suite.case("20 guests of one group started concurrently (threads, virsh create)",
                        "all run; one group ifb; every guest in sync (apply --check exit 0)") as row:
            xmls = {n: domain_xml(n, [fs.iface(taps[n])]) for n in names}
            results = list(pool.map(lambda n: virsh("create", "/dev/stdin", input=xmls[n], check=False), names))
            bad = [(n, r.stderr.strip()) for n, r in zip(names, results) if r.returncode]
            assert not bad, bad
            checks = {n: fs.command(None, "apply", n, "--check") for n in names}
            drift = {n: c for n, c in checks.items() if c.rc}
            assert not drift, drift
            group_ifbs = [n for n, a in fs.ifbs().items() if a.split()[:3] == ["netvirt", "group", GROUP]]
            assert len(group_ifbs) == 1, fs.ifbs()
            assert all(fs.root_qdisc(t) == "htb" for t in taps.values())
            row.outcome = "20 running, 1 group ifb, 20 x apply --check exit 0"
        with suite.case("libvirtd restart with the 20 guests running (20 reconnect events)",
                        "all still run; every guest still in sync; no ERROR in reconnect logs") as row:
            libvirtd.restart()
            state = {n: virsh("domstate", n, check=False).stdout.strip() for n in names}
            assert set(state.values()) == {"running"}, state
            deadline = time.monotonic() + 60   # reconnect hooks run after libvirtd answers
            logs = {}
            while time.monotonic() < deadline:
                logs = {n: f"/var/log/libvirt/hooks/qemu_reconnect_begin_{n}_shapehook.log" for n in names}
                if all(os.path.exists(p) for p in logs.values()):
                    break
                time.sleep(0.5)
            missing = [n for n, p in logs.items() if not os.path.exists(p)]
            assert not missing, missing
            errors = [n for n, p in logs.items() if " ERROR " in open(p, encoding="utf-8", errors="replace").read()]
            assert not errors, errors
            drift = {n: c for n in names if (c := fs.command(None, "apply", n, "--check")).rc}
            assert not drift, drift
            row.outcome = "20 running after restart; 20 reconnect logs without ERROR; all in sync"
        with suite.case("the 20 guests destroyed concurrently",
                        "no ifb of ours left (the last member removes the group ifb)") as row:
            list(pool.map(lambda n: virsh("destroy", n, check=False), names))
            left = fs.ours([GROUP, *taps.values()])
            assert not left, left
            row.outcome = "0 ifbs of ours left"
    finally:
        list(pool.map(lambda n: virsh("destroy", n, check=False), names))
        pool.shutdown()


def test_24_sigkill_mid_apply_then_next_event(suite, lab):
    with suite.case("SIGKILL of the hook during a start apply (10 delays across the apply), then the next events",
                    "after `started`: fully applied, one ifb each, no duplicates; after `stopped`: untouched") as row:
        taps = [lab.tap(), lab.tap()]
        lab.policy(rules=[{"match": {"dev": "nvtf*"}, "inbound": {"average": "8mbit"},
                           "outbound": {"average": "4mbit"}, "group": lab.group}])
        xml = lab.xml("nvt-fs-kill", taps)
        # the full state once, for the expected ifb set
        first = lab.hook("nvt-fs-kill", "start", "begin", xml)
        assert first.rc == 0, first
        full = fs.ours(lab.names)
        assert lab.hook("nvt-fs-kill", "stopped", "end", xml).rc == 0
        untouched(lab, taps)
        seen, broken = [], []
        for delay in [round(first.seconds * f, 3) for f in (0.4, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)]:
            proc = subprocess.Popen([fs.ENTRY, "nvt-fs-kill", "start", "begin", "-"], stdin=subprocess.PIPE,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=fs.clean_env(lab.root))
            proc.stdin.write(xml.encode())
            proc.stdin.close()
            time.sleep(delay)
            proc.kill()
            rc = proc.wait(timeout=LIMIT)
            present = sum(fs.root_qdisc(t) == "htb" for t in taps) + len(fs.ours(lab.names))
            bare = sorted(n for n in lab.planned_ifbs() & set(fs.ifbs()) if not fs.ifbs()[n])
            nxt = lab.hook("nvt-fs-kill", "started", "begin", xml)
            ok, check = lab.in_sync("nvt-fs-kill")
            now = fs.ours(lab.names)
            good = nxt.rc == 0 and ok and sorted(now.values()) == sorted(full.values())
            kill = "killed" if rc == -9 else f"exit {rc}"
            seen.append(f"{delay}s {kill}, {present} objects" + (f", alias-less ifb {bare[0]}" if bare else "")
                        + (" -> ok" if good else f" -> started exit {nxt.rc}, in sync {ok}"))
            if not good:
                broken.append((delay, short(nxt.stderr.strip(), 200)))
                for name in bare:   # what an operator would have to do by hand
                    fs.sh("ip", "link", "del", name, check=False)
            assert lab.hook("nvt-fs-kill", "stopped", "end", xml).rc == 0
            untouched(lab, taps)
        row.outcome = f"{len(full)} ifbs when applied; " + "; ".join(seen)
        assert not broken, f"the next event did not recover after SIGKILL at {broken}"


def test_25_alias_less_ifb_left_by_a_kill(suite, lab):
    with suite.case("an ifb of our planned name without alias (a kill between `link add` and its alias), then start",
                    "the next event recovers: applied (check mode clean), or one line saying what to delete") as row:
        tap = lab.tap()
        lab.policy(rules=[{"match": {"dev": "nvtf*"}, "inbound": {"average": "4mbit"},
                           "outbound": {"average": "4mbit"}}])
        from nvhooks.shaping import plan as tcplan
        fs.sh("ip", "link", "add", tcplan.port_ifb(tap), "type", "ifb")
        xml = lab.xml("nvt-fs-bare", [tap])
        call = lab.hook("nvt-fs-bare", "start", "begin", xml)
        row.outcome = f"start exit {call.rc}: " + short(" / ".join(call.lines) or "(no stderr)", 200)
        assert call.rc == 0, call
        applied(lab, "nvt-fs-bare", [tap])
