"""Fixtures for tests that change real kernel state (tests/kernel, tests/realkernel).

Everything a test creates is named nvt* and lives in throwaway network
namespaces; factories remove what they made at teardown, also on failure.
"""
import collections
import os
import subprocess
import uuid

import pytest


def uid(n=6):
    return uuid.uuid4().hex[:n]


def sh(*argv, check=True, input=None):
    """Run argv on the host; return CompletedProcess (text). Raise with stderr on failure."""
    p = subprocess.run([str(a) for a in argv], input=input, capture_output=True, text=True,
                       check=False)
    if check and p.returncode:
        raise AssertionError(f"{' '.join(map(str, argv))} -> rc={p.returncode}\n{p.stdout}{p.stderr}")
    return p


def nsrun(ns, *argv, check=True, input=None):
    """Run argv inside netns `ns` (None = host)."""
    if ns is None:
        return sh(*argv, check=check, input=input)
    return sh("ip", "netns", "exec", ns, *argv, check=check, input=input)


def _in_ns(ns):
    return ["-n", ns] if ns else []


Veth = collections.namedtuple("Veth", "name ns peer peer_ns")


@pytest.fixture(autouse=True)
def _need_root():
    if os.geteuid() != 0:
        pytest.fail("kernel tests need root (run them via `make test-kernel`)", pytrace=False)


@pytest.fixture(name="nsrun")
def nsrun_fixture():
    """`nsrun(ns, *argv, check=True, input=None)` -> CompletedProcess."""
    return nsrun


@pytest.fixture
def netns():
    """Factory: `netns()` -> name of a fresh netns (lo up), deleted at teardown."""
    made = []

    def make():
        name = "nvt" + uid(8)
        sh("ip", "netns", "add", name)
        made.append(name)
        nsrun(name, "ip", "link", "set", "lo", "up")
        return name

    yield make
    for name in reversed(made):
        sh("ip", "netns", "del", name, check=False)


@pytest.fixture
def veth():
    """Factory: `veth(ns, peer_ns=None, name=None, peer=None, up=True)` -> Veth.

    `name` goes into netns `ns`, `peer` into `peer_ns` (None = host netns).
    """
    made = []

    def make(ns, peer_ns=None, name=None, peer=None, up=True):
        base = "nvt" + uid()
        name, peer = name or base + "a", peer or base + "b"
        sh("ip", "link", "add", name, *(["netns", ns] if ns else []), "type", "veth",
           "peer", "name", peer, *(["netns", peer_ns] if peer_ns else []))
        v = Veth(name, ns, peer, peer_ns)
        made.append(v)
        if up:
            sh("ip", *_in_ns(ns), "link", "set", name, "up")
            sh("ip", *_in_ns(peer_ns), "link", "set", peer, "up")
        return v

    yield make
    for v in reversed(made):  # deleting one end deletes the pair; ends may be gone with their netns
        for dev, ns in ((v.name, v.ns), (v.peer, v.peer_ns)):
            if ns is None or os.path.exists(f"/run/netns/{ns}"):
                sh("ip", *_in_ns(ns), "link", "del", dev, check=False)


@pytest.fixture
def bridge():
    """Factory: `bridge(ns=None, name=None, up=True, **opts)` -> name; opts go to
    `ip link add ... type bridge` (e.g. vlan_filtering=1)."""
    made = []

    def make(ns=None, name=None, up=True, **opts):
        name = name or "nvtbr" + uid()
        args = [str(x) for kv in opts.items() for x in kv]
        sh("ip", *_in_ns(ns), "link", "add", name, "type", "bridge", *args)
        made.append((name, ns))
        if up:
            sh("ip", *_in_ns(ns), "link", "set", name, "up")
        return name

    yield make
    for name, ns in reversed(made):
        if ns is None or os.path.exists(f"/run/netns/{ns}"):
            sh("ip", *_in_ns(ns), "link", "del", name, check=False)


class KernelProbe:
    """What this kernel can do, tried for real in a scratch netns (cached)."""

    def __init__(self):
        self._cache = {}

    def tc(self, *args, setup=()):
        """True if `tc <args>` works on device `d0` (a veth; no dummy on every kernel)
        after the `setup` tc commands (which must work)."""
        key = (tuple(setup), args)
        if key not in self._cache:
            ns = "nvtp" + uid(8)
            sh("ip", "netns", "add", ns)
            try:
                sh("ip", "-n", ns, "link", "add", "d0", "type", "veth", "peer", "name", "d1")
                for cmd in setup:
                    nsrun(ns, "tc", *cmd)
                ok = nsrun(ns, "tc", *args, check=False).returncode == 0
            finally:
                sh("ip", "netns", "del", ns, check=False)
            self._cache[key] = ok
        return self._cache[key]

    def qdisc(self, kind, *params):
        """True if qdisc `kind` can be the root qdisc."""
        return self.tc("qdisc", "add", "dev", "d0", "root", kind, *params)

    def bridge_vlan_filtering(self):
        if "vlanf" not in self._cache:
            ns = "nvtp" + uid(8)
            sh("ip", "netns", "add", ns)
            try:
                self._cache["vlanf"] = sh("ip", "-n", ns, "link", "add", "b0", "type", "bridge",
                                          "vlan_filtering", "1", check=False).returncode == 0
            finally:
                sh("ip", "netns", "del", ns, check=False)
        return self._cache["vlanf"]


@pytest.fixture(scope="session")
def kprobe():
    """KernelProbe: kprobe.qdisc('sfq'), kprobe.tc(...), kprobe.bridge_vlan_filtering()."""
    return KernelProbe()


@pytest.fixture
def scratch_root(tmp_path, monkeypatch):
    """Locks and the capability cache of the core go to a scratch tree, never /run
    (use with ``pytestmark = pytest.mark.usefixtures("scratch_root")``)."""
    (tmp_path / "run").mkdir()   # as on a host: the core makes its folders under /run, never /run itself
    monkeypatch.setenv("NETVIRT_HOOKS_ROOT", str(tmp_path))


@pytest.fixture(scope="session")
def caps():
    """The core's capability probe of this kernel, run once (never from a cache)."""
    from nvhooks.shaping import caps as capsmod
    return capsmod.probe()
