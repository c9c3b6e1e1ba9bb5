"""Fixtures for end-to-end tests against a real libvirtd (no systemd here).

The whole session holds an flock on /run/nvt-libvirt.lock: there is one
libvirtd per machine and several people/lanes may run these tests at once.
Guests are type='qemu' (TCG), 64 MiB, no disk: they sit in firmware, which
is enough for every hook event and real tap devices.
"""
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from xml.sax.saxutils import escape

import pytest

LOCK = "/run/nvt-libvirt.lock"
URI = "qemu:///system"
SOCK = "/run/libvirt/libvirt-sock"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.join(os.environ.get("NVT_BUILD", os.path.join(REPO, "build")), "venv", "bin")
# what the roles change on the host: restore_host snapshots and puts back exactly these
SAVED = ("/etc/libvirt/hooks", "/usr/lib/netvirt-hooks", "/usr/local/sbin/netvirt-hooks")


def uid(n=6):
    return uuid.uuid4().hex[:n]


def sh(*argv, check=True, input=None, timeout=120):
    p = subprocess.run([str(a) for a in argv], input=input, capture_output=True, text=True,
                       timeout=timeout, check=False)
    if check and p.returncode:
        raise AssertionError(f"{' '.join(map(str, argv))} -> rc={p.returncode}\n{p.stdout}{p.stderr}")
    return p


def virsh(*args, check=True, input=None):
    """`virsh -c qemu:///system <args>` -> CompletedProcess."""
    return sh("virsh", "-q", "-c", URI, *args, check=check, input=input)


def _pids(name):
    p = sh("pgrep", "-x", name, check=False)
    return [int(x) for x in p.stdout.split()]


class Libvirtd:
    """The machine's one libvirtd, started by hand when not running."""

    def ensure(self, timeout=60):
        if not _pids("virtlogd"):  # qemu console logs go through virtlogd
            sh("virtlogd", "-d")
        if not _pids("libvirtd"):
            sh("libvirtd", "-d")
        deadline = time.monotonic() + timeout
        while True:  # the socket file may be stale: ask the daemon
            if os.path.exists(SOCK) and virsh("version", check=False).returncode == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"libvirtd did not answer on {SOCK} within {timeout}s")
            time.sleep(0.5)

    def restart(self, timeout=60):
        """Stop and start libvirtd (re-reads hooks; running guests get `reconnect`)."""
        for pid in _pids("libvirtd"):
            os.kill(pid, 15)
        deadline = time.monotonic() + timeout
        while _pids("libvirtd"):
            if time.monotonic() > deadline:
                raise AssertionError("libvirtd did not stop")
            time.sleep(0.2)
        self.ensure(timeout)


@pytest.fixture(scope="session", autouse=True)
def _libvirt_lock():
    if os.environ.get("NVT_LIBVIRT_LOCK_HELD") == "1":  # the lane runner holds it
        yield
        return
    timeout = int(os.environ.get("NVT_LIBVIRT_LOCK_TIMEOUT", "1800"))
    with open(LOCK, "w") as f:  # Python fds are close-on-exec: libvirtd -d won't inherit it
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            # pytest captures fixture output: tell the terminal directly
            sys.__stderr__.write(f"\nwaiting up to {timeout}s for {LOCK}; open by {_lock_holders()}\n")
            _timed_flock(f, timeout)
        yield


def _timed_flock(f, timeout):
    """Blocking flock (queued fairly with flock(1) waiters) with a deadline; a
    thread, not SIGALRM, which pytest-timeout owns."""
    t = threading.Thread(target=fcntl.flock, args=(f, fcntl.LOCK_EX), daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        pytest.fail(f"{LOCK} still held after {timeout}s; open by {_lock_holders()}", pytrace=False)


def _lock_holders():
    """'pid (cmdline)' of processes with the lock file open: a daemon here means a leaked fd."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if not any(os.readlink(f"/proc/{pid}/fd/{fd}") == LOCK for fd in fds):
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as c:
                cmd = c.read().replace(b"\0", b" ").decode().strip()
            out.append(f"{pid} ({cmd})")
        except OSError:
            continue
    return ", ".join(out) or "nobody visible"


@pytest.fixture(scope="session")
def libvirtd(_libvirt_lock):
    """Session: a running libvirtd (Libvirtd: .ensure(), .restart()); stale nvt-* guests removed."""
    if os.geteuid() != 0:
        pytest.fail("libvirt tests need root (run them via `make test-libvirt`)", pytrace=False)
    d = Libvirtd()
    d.ensure()
    for name in virsh("list", "--all", "--name").stdout.split():
        if name.startswith("nvt-"):  # left by a killed run; safe under the lock
            virsh("destroy", name, check=False)
            virsh("undefine", name, "--nvram", check=False)
    return d


@pytest.fixture(name="virsh")
def virsh_fixture():
    """`virsh(*args, check=True, input=None)` -> CompletedProcess."""
    return virsh


@pytest.fixture
def host_bridge():
    """Factory: `host_bridge(name=None)` -> name (nvtbr*) of an up bridge in the host netns."""
    made = []

    def make(name=None):
        name = name or "nvtbr" + uid()
        sh("ip", "link", "add", name, "type", "bridge")
        made.append(name)
        sh("ip", "link", "set", name, "up")
        return name

    yield make
    for name in reversed(made):
        sh("ip", "link", "del", name, check=False)


def bridge_iface(bridge, target=None, mac=None, extra=""):
    """<interface type='bridge'> snippet; target tap defaults to nvtt<hex>."""
    target = target or "nvtt" + uid()
    mac_xml = f"<mac address='{mac}'/>" if mac else ""
    return (f"<interface type='bridge'><source bridge='{bridge}'/>{mac_xml}"
            f"<target dev='{target}'/><model type='virtio'/>{extra}</interface>")


def ethernet_iface(target=None, mac=None, extra=""):
    """<interface type='ethernet'> snippet (libvirt creates the tap); target defaults to nvtt<hex>."""
    target = target or "nvtt" + uid()
    mac_xml = f"<mac address='{mac}'/>" if mac else ""
    return (f"<interface type='ethernet'>{mac_xml}<target dev='{target}'/>"
            f"<model type='virtio'/>{extra}</interface>")


def domain_xml(name, interfaces=(), metadata="", extra_devices="", domain_uuid=None, title=None, description=None):
    """A 64 MiB TCG guest with no disk; `domain_uuid`, `title`, `description` only when given."""
    head = "".join(f"\n  <{tag}>{escape(value)}</{tag}>" for tag, value in
                   (("uuid", domain_uuid), ("title", title), ("description", description)) if value is not None)
    return f"""<domain type='qemu'>
  <name>{escape(name)}</name>{head}
  <metadata>{metadata}</metadata>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    {''.join(interfaces)}
    {extra_devices}
  </devices>
</domain>"""


class Guest:
    def __init__(self, name, xml, persistent):
        self.name, self.xml, self.persistent = name, xml, persistent

    def start(self):
        if self.persistent:
            virsh("start", self.name)
        else:
            virsh("create", "/dev/stdin", input=self.xml)

    def destroy(self, check=True):
        virsh("destroy", self.name, check=check)

    def is_active(self):
        return virsh("domstate", self.name, check=False).stdout.strip() == "running"

    def dumpxml(self, inactive=False):
        return virsh("dumpxml", *(["--inactive"] if inactive else []), self.name).stdout

    def taps(self):
        """Target device names of the running guest's interfaces, in XML order."""
        from xml.etree import ElementTree as ET
        root = ET.fromstring(self.dumpxml())
        return [t.get("dev") for t in root.findall("./devices/interface/target")]


@pytest.fixture
def guest(libvirtd):
    """Factory: `guest(interfaces=(), metadata="", persistent=False, start=True,
    name=None, extra_devices="")` -> Guest (.name .xml .start() .destroy()
    .is_active() .dumpxml() .taps()). Destroyed (and undefined) at teardown."""
    made = []

    def make(interfaces=(), metadata="", persistent=False, start=True, name=None, extra_devices=""):
        name = name or "nvt-" + uid(8)
        g = Guest(name, domain_xml(name, interfaces, metadata, extra_devices), persistent)
        made.append(g)
        if persistent:
            virsh("define", "/dev/stdin", input=g.xml)
        if start:
            g.start()
        return g

    yield make
    for g in reversed(made):
        virsh("destroy", g.name, check=False)
        if g.persistent:
            virsh("undefine", g.name, "--nvram", check=False)


@pytest.fixture
def restore_host(tmp_path, libvirtd):
    """Snapshot what the roles change (SAVED); put it back (and tell libvirtd) afterwards."""
    archive = tmp_path / "before.tar"
    with tarfile.open(archive, "w") as tar:
        for path in SAVED:
            if os.path.lexists(path):
                tar.add(path)
    yield
    for path in SAVED:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.unlink(path)
    with tarfile.open(archive) as tar:
        tar.extractall("/")          # noqa: S202  our own archive of root-owned paths
    libvirtd.restart()               # libvirt re-reads its hook programs at start


@pytest.fixture
def run_roles(tmp_path):
    """`run_roles(roles=(), variables=None, check=False, *, playbook=None, inventory=None,
    collections_path=None, cwd=None)` -> ansible-playbook's stdout (asserts rc 0).

    With `roles`: a play running them on localhost (`-i localhost, -c local`), `variables`
    as play vars. With `playbook` (e.g. "netvirt.libvirt_hooks.site"): that playbook
    against `inventory`, `variables` as extra vars (`-e @extra.json`). Either way
    `hooks_install_packages` is false. The collection is this tree, symlinked under
    tmp_path/collections, unless `collections_path` names another (an installed one).
    `check` adds --check. ansible-playbook is the build venv's; its exit code must be
    `expect_rc`. `venv_bin` names another ansible-core's bin/ (tests/lanes/setup.sh's oldest one).
    """
    def run(roles=(), variables=None, check=False, *, playbook=None, inventory=None, collections_path=None, cwd=None,
            expect_rc=0, venv_bin=VENV_BIN):
        assert bool(roles) != bool(playbook), "give roles or a playbook"
        variables = dict(variables or {})
        if collections_path is None:
            collections_path = tmp_path / "collections"
            coll = collections_path / "ansible_collections" / "netvirt"
            coll.mkdir(parents=True, exist_ok=True)
            if not (coll / "libvirt_hooks").exists():
                (coll / "libvirt_hooks").symlink_to(REPO)
        argv = [os.path.join(venv_bin, "ansible-playbook")]
        if roles:
            play = [{"hosts": "localhost", "gather_facts": False,
                     "vars": dict({"hooks_install_packages": False}, **variables), "roles": list(roles)}]
            (tmp_path / "play.yml").write_text(json.dumps(play))
            argv += ["-i", inventory or "localhost,", "-c", "local",
                     "-e", "ansible_python_interpreter=/usr/bin/python3", str(tmp_path / "play.yml")]
        else:
            (tmp_path / "extra.json").write_text(json.dumps(dict(variables, hooks_install_packages=False)))
            argv += ["-i", str(inventory or os.path.join(REPO, "examples", "inventory")),
                     playbook, "-e", "@" + str(tmp_path / "extra.json")]
        if check:
            argv.append("--check")
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections_path), ANSIBLE_NOCOLOR="1",
                   ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"))
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, env=env,
                              cwd=None if cwd is None else str(cwd), check=False)
        assert proc.returncode == expect_rc, proc.stdout[-4000:] + proc.stderr[-2000:]
        return proc.stdout

    return run
