"""netvirt-hooks agent on the real libvirtd: hot-plug, live metadata, host policy changes,
drift heal, domiftune, holds, libvirtd restarts, SIGKILL, one agent per host.

One guest (with ACPI, for hot-plug) and one agent are shared by the whole
module to keep the lane short; each test leaves them as it found them. The
agent runs from this tree with Debian's python (python3-libvirt) and its own
policy file (--policy), managing only this module's guest (--only): other
guests on the shared host are not touched. No hook is needed: the agent
shapes what the hook would. Every wait is a bounded poll; no time is asserted.
"""
import glob
import json
import os
import re
import shutil
import signal
import sys
import subprocess
import time

import initramfs
import pytest

from conftest import domain_xml, sh, uid, virsh

TREE = os.path.join(os.path.dirname(__file__), "..", "..", "plugins", "module_utils")
LAUNCH = ("import sys; sys.path.insert(0, sys.argv.pop(1)); from nvhooks.cli import main; "
          "sys.exit(main(sys.argv[1:]))")
NS = "https://github.com/netvirt/libvirt_hooks/xmlns/policy/1"
SHAPED_PREFIX = "52:54:00:a7"      # host rule: rates both ways
GROUP_PREFIX = "52:54:00:a8"       # host rule: group nvtag
POLL = 0.1


def cli(*args, policy=None, check=True):
    argv = ["/usr/bin/python3", "-c", LAUNCH, TREE, *args]
    if policy:
        argv += ["--policy", policy]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if check and proc.returncode not in (0, 1):
        raise AssertionError(f"{argv}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def poll(what, predicate, timeout=30.0):
    """Wait (bounded) until predicate() is truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        time.sleep(POLL)


KERNEL = sorted(glob.glob("/boot/vmlinuz-*"))[-1:]     # Debian's kernel (linux-image-amd64, setup.sh)


def write_policy(path, inbound="8mbit"):
    doc = {"groups": {"nvtag": {"inbound": {"ceiling": "50mbit"}}},
           "rules": [{"match": {"mac": f"{SHAPED_PREFIX}:*"},
                      "inbound": {"average": inbound}, "outbound": {"average": "4mbit"}},
                     {"match": {"mac": f"{GROUP_PREFIX}:*"}, "group": "nvtag"}]}
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(doc, handle)
    os.replace(tmp, path)


class Agent:
    def __init__(self, policy, log_path, only):
        self.policy, self.log_path, self.only, self.proc = policy, log_path, only, None

    def start(self):
        self.log_file = open(self.log_path, "a", encoding="utf-8")  # pylint: disable=consider-using-with
        self.mark = self.log_file.tell()
        self.proc = subprocess.Popen(  # pylint: disable=consider-using-with
            ["/usr/bin/python3", "-c", LAUNCH, TREE, "agent", "--policy", self.policy, "--only", self.only],
            stdout=self.log_file, stderr=subprocess.STDOUT)
        self.wait_log("connected to libvirt", since=self.mark)
        return self

    def log(self, since=0):
        with open(self.log_path, encoding="utf-8", errors="replace") as handle:
            handle.seek(since)
            return handle.read()

    def size(self):
        return os.path.getsize(self.log_path)

    def wait_log(self, pattern, since=0, timeout=30.0):
        def found():
            if self.proc.poll() is not None:
                raise AssertionError(f"agent exited {self.proc.returncode}:\n{self.log()}")
            return re.search(pattern, self.log(since))
        return poll(f"agent log /{pattern}/ (log: {self.log_path})", found, timeout)

    def stop(self, sig=signal.SIGTERM):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)
        code = None if self.proc is None else self.proc.returncode
        self.proc = None
        self.log_file.close()
        return code


@pytest.fixture(scope="module")
def setup(libvirtd, tmp_path_factory):
    """A bridge, a guest with one shaped port (ACPI on, for hot-plug), the agent."""
    tmp = tmp_path_factory.mktemp("agent")
    policy = str(tmp / "policy.json")
    write_policy(policy)
    bridge = "nvtbr" + uid()
    sh("ip", "link", "add", bridge, "type", "bridge")
    sh("ip", "link", "set", bridge, "up")
    name = "nvt-ag" + uid()
    tap = "nvtt" + uid()
    assert KERNEL, "no /boot/vmlinuz-*: install linux-image-amd64 (tests/lanes/setup.sh)"
    os.makedirs("/var/lib/libvirt/boot", exist_ok=True)
    initrd, console = f"/var/lib/libvirt/boot/{name}.img", f"/var/lib/libvirt/boot/{name}.log"
    initramfs.write(initrd)
    iface = (f"<interface type='bridge'><source bridge='{bridge}'/><mac address='{SHAPED_PREFIX}:00:01'/>"
             f"<target dev='{tap}'/><model type='virtio'/></interface>")
    # a kernel that answers ACPI hot-unplug: 160 MiB for it (the lane's other guests have 64)
    xml = (domain_xml(name, [iface], extra_devices=f"<serial type='file'><source path='{console}'/></serial>")
           .replace("<memory unit='MiB'>64</memory>", "<memory unit='MiB'>160</memory>")
           .replace("<boot dev='hd'/>", f"<kernel>{KERNEL[0]}</kernel><initrd>{initrd}</initrd>"
                    "<cmdline>console=ttyS0 panic=-1</cmdline>")
           .replace("<on_poweroff>", "<features><acpi/></features>\n  <on_poweroff>"))
    virsh("create", "/dev/stdin", input=xml)
    agent = Agent(policy, str(tmp / "agent.log"), name).start()
    try:
        yield {"guest": name, "tap": tap, "bridge": bridge, "policy": policy, "agent": agent, "tmp": tmp,
               "console": console}
    finally:
        agent.stop()
        sys.stdout.write(f"agent log:\n{agent.log()}\n")     # shown when a test failed
        keep = os.path.join(os.path.dirname(__file__), "..", "..", "build", "results")
        if os.path.isdir(keep):
            shutil.copy(agent.log_path, os.path.join(keep, "agent-libvirt.log"))
        cli("release", name, check=False)
        virsh("destroy", name, check=False)
        sh("ip", "link", "del", bridge, check=False)
        for path in (initrd, console):
            if os.path.exists(path):
                os.unlink(path)
        cli("gc")


def booted(setup):
    """The guest's kernel is up (it must be, to complete a hot-unplug)."""
    def up():
        try:
            with open(setup["console"], "rb") as handle:
                return b"Run /init" in handle.read()
        except OSError:
            return False
    poll("guest kernel booted (serial console)", up, timeout=240)


def status(setup):
    proc = cli("--json", "status", setup["guest"], policy=setup["policy"])
    return json.loads(proc.stdout)


def port_state(setup, tap):
    for port in status(setup)["ports"]:
        if port["dev"] == tap:
            return port["shaping"]["state"]
    return None


def in_sync(setup, tap):
    return port_state(setup, tap) == "in sync"


def tc(*args):
    return sh("tc", *args, check=False).stdout


def ours_mentioning(text):
    """Our ifbs (alias netvirt ...) whose alias or name mentions ``text``."""
    out = sh("ip", "-o", "link", "show", "type", "ifb").stdout
    return [line for line in out.splitlines() if "alias netvirt " in line and text in line]


def test_agent_converges_running_guest_at_start(setup):
    # nothing but the agent shaped it: no hook knows this policy file
    poll("the guest's port shaped", lambda: in_sync(setup, setup["tap"]))
    assert "htb" in tc("qdisc", "show", "dev", setup["tap"])


def test_second_agent_refused(setup):
    proc = subprocess.run(["/usr/bin/python3", "-c", LAUNCH, TREE, "agent", "--policy", setup["policy"]],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1, proc.stderr
    assert "another netvirt-hooks agent runs" in proc.stderr


def test_hotplug_shaped_and_unplug_leaves_nothing(setup):
    from nvhooks.shaping import plan as tcplan
    guest, agent = setup["guest"], setup["agent"]
    shaped_tap, grouped_tap = "nvtt" + uid(), "nvtt" + uid()
    for tap, mac in ((shaped_tap, f"{SHAPED_PREFIX}:00:02"), (grouped_tap, f"{GROUP_PREFIX}:00:03")):
        virsh("attach-interface", guest, "bridge", setup["bridge"], "--target", tap, "--mac", mac,
              "--model", "virtio", "--live")
    poll("hot-plugged port shaped", lambda: "htb" in tc("qdisc", "show", "dev", shaped_tap))
    poll("hot-plugged group port in its group", lambda: ours_mentioning("group nvtag"))
    poll("both hot-plugged ports in sync",
         lambda: in_sync(setup, shaped_tap) and in_sync(setup, grouped_tap))
    assert ours_mentioning(f"port {shaped_tap}") or tcplan.port_ifb(shaped_tap) in sh("ip", "-o", "link").stdout
    agent.wait_log(rf"guest {guest} \(device \S+ attached")

    booted(setup)
    for mac in (f"{SHAPED_PREFIX}:00:02", f"{GROUP_PREFIX}:00:03"):
        virsh("detach-interface", guest, "bridge", "--mac", mac, "--live")
    poll("detached port's ifb removed", lambda: not ours_mentioning(f"port {shaped_tap}")
         and tcplan.port_ifb(shaped_tap) not in sh("ip", "-o", "link").stdout)
    poll("group ifb gone with its last member", lambda: not ours_mentioning("group nvtag"))
    assert cli("gc", "--check").returncode == 0
    assert in_sync(setup, setup["tap"])


def test_metadata_live_reapplies(setup):
    guest, tap, agent = setup["guest"], setup["tap"], setup["agent"]
    since = agent.size()
    extra_mac = f"52:54:00:a9:00:{uid(2)[:2]}"
    extra_tap = "nvtt" + uid()
    virsh("attach-interface", guest, "bridge", setup["bridge"], "--target", extra_tap, "--mac", extra_mac,
          "--model", "virtio", "--live")
    poll("the new port seen, with no policy", lambda: port_state(setup, extra_tap) == "none")
    assert "htb" not in tc("qdisc", "show", "dev", extra_tap)      # no policy covers it (yet)
    meta = (f"<policy><interface mac='{extra_mac}'><inbound average='3mbit'/></interface></policy>")
    virsh("metadata", guest, "--uri", NS, "--key", "nv", "--set", meta, "--live")
    poll("metadata port shaped", lambda: "htb" in tc("qdisc", "show", "dev", extra_tap))
    agent.wait_log("metadata changed", since=since)
    # metadata removed: the port it shaped is torn down
    virsh("metadata", guest, "--uri", NS, "--key", "nv", "--remove", "--live")
    poll("metadata shaping removed", lambda: "htb" not in tc("qdisc", "show", "dev", extra_tap))
    booted(setup)
    virsh("detach-interface", guest, "bridge", "--mac", extra_mac, "--live")
    poll("extra port gone", lambda: not ours_mentioning(f"port {extra_tap}"))
    assert in_sync(setup, tap)


def test_host_policy_change_picked_up(setup):
    tap = setup["tap"]
    write_policy(setup["policy"], inbound="6mbit")
    try:
        poll("new inbound rate on the tap", lambda: "rate 6Mbit" in tc("class", "show", "dev", tap))
        poll("in sync with the new policy", lambda: in_sync(setup, tap))
    finally:
        write_policy(setup["policy"])
    poll("back to the first rate", lambda: "rate 8Mbit" in tc("class", "show", "dev", tap))


def test_qdisc_deleted_is_healed_with_one_line(setup):
    tap, agent = setup["tap"], setup["agent"]
    since = agent.size()
    sh("tc", "qdisc", "del", "dev", tap, "root")
    poll("root qdisc restored", lambda: "htb" in tc("qdisc", "show", "dev", tap))
    line = agent.wait_log(rf"drift healed on guest {setup['guest']} .*", since=since).group(0)
    assert tap in line and "htb" in line, line
    poll("in sync", lambda: in_sync(setup, tap))


def test_foreign_objects_untouched(setup):
    # a veth of somebody else's with its own qdisc: the agent never looks at it
    name = "nvtf" + uid()
    sh("ip", "link", "add", name, "type", "veth", "peer", "name", name + "p")
    try:
        sh("tc", "qdisc", "add", "dev", name, "root", "handle", "1:", "htb")
        sh("tc", "qdisc", "del", "dev", name, "root")
        sh("tc", "qdisc", "add", "dev", name, "root", "tbf", "rate", "1mbit", "burst", "10k", "latency", "50ms")
        # a heal elsewhere proves the agent processed notifications after ours
        since = setup["agent"].size()
        sh("tc", "qdisc", "del", "dev", setup["tap"], "root")
        setup["agent"].wait_log("drift healed", since=since)
        assert "tbf" in tc("qdisc", "show", "dev", name)
        assert name not in setup["agent"].log(since)
    finally:
        sh("ip", "link", "del", name, check=False)


def test_domiftune_reasserts_our_policy(setup):
    tap, agent = setup["tap"], setup["agent"]
    since = agent.size()
    # libvirt replaces the tap's root qdisc; on a kernel without sch_sfq (this host) it then
    # fails half-way, leaving its own HTB: drift on a port we own either way
    virsh("domiftune", setup["guest"], tap, "--inbound", "100", "--live", check=False)
    agent.wait_log(rf"drift healed on guest {setup['guest']}", since=since)
    poll("our policy back", lambda: in_sync(setup, tap) and "rate 8Mbit" in tc("class", "show", "dev", tap))


def test_hold_and_release(setup):
    guest, tap, agent = setup["guest"], setup["tap"], setup["agent"]
    assert cli("hold", guest, "--note", "debugging").returncode == 0
    try:
        text = cli("status", guest, policy=setup["policy"]).stdout
        assert f"agent: {guest} held" in text and "debugging" in text
        since = agent.size()
        sh("tc", "qdisc", "del", "dev", tap, "root")
        agent.wait_log(rf"guest {guest}: .*not touched, hold", since=since)
        assert "htb" not in tc("qdisc", "show", "dev", tap)
    finally:
        cli("release", guest)
    # released: the next notification (or policy/connection change) heals it; poke with a notification
    sh("tc", "qdisc", "add", "dev", tap, "root", "tbf", "rate", "1mbit", "burst", "10k", "latency", "50ms")
    poll("healed after release", lambda: in_sync(setup, tap))
    assert "held" not in cli("status", guest, policy=setup["policy"]).stdout


def test_libvirtd_restart_reconnects_and_converges(setup, libvirtd):
    agent, tap = setup["agent"], setup["tap"]
    since = agent.size()
    libvirtd.restart()
    agent.wait_log("libvirt connection lost", since=since, timeout=60)
    agent.wait_log("connected to libvirt", since=since, timeout=60)
    # events flow on the new connection: a hot-plug is shaped
    new_tap = "nvtt" + uid()
    mac = f"{SHAPED_PREFIX}:00:04"
    virsh("attach-interface", setup["guest"], "bridge", setup["bridge"], "--target", new_tap, "--mac", mac,
          "--model", "virtio", "--live")
    poll("hot-plug after reconnect shaped", lambda: in_sync(setup, new_tap))
    booted(setup)
    virsh("detach-interface", setup["guest"], "bridge", "--mac", mac, "--live")
    poll("its ifb removed", lambda: not ours_mentioning(f"port {new_tap}"))
    assert in_sync(setup, tap)


def test_sigkill_mid_apply_then_restart_converges(setup):
    agent, tap = setup["agent"], setup["tap"]
    for delay in (0.0, 0.02, 0.05, 0.1):
        # make the agent apply (the root qdisc and the ifb), and kill it while it does
        sh("tc", "qdisc", "del", "dev", tap, "root")
        sh("tc", "qdisc", "del", "dev", tap, "ingress", check=False)
        sh("tc", "qdisc", "del", "dev", tap, "clsact", check=False)
        time.sleep(delay)
        agent.stop(signal.SIGKILL)
        agent.start()
    poll("converged after SIGKILL", lambda: in_sync(setup, tap))
    ifbs = ours_mentioning(f"port {tap}")
    assert len(ifbs) == 1, ifbs
    assert cli("gc", "--check").returncode == 0
    assert tc("qdisc", "show", "dev", tap).count("qdisc htb") == 1
