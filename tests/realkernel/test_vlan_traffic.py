"""The VLAN hook handler on veth "guest ports", and traffic through it.

Real-kernel lane only. Guests are network namespaces whose veth peers are
ports of a bridge in the lane VM's root namespace (named nvt*, removed at
teardown); "running guests" are status XML files under NETVIRT_HOOKS_ROOT.
The handler and bridge_init run exactly as the dispatcher calls them.
"""
import importlib.util
import json
import logging
import os

import pytest

from nvhooks.policy import domxml, model as policy
from nvhooks.kernel import links as klinks, netlink
from nvhooks.vlan import hook as vlanhook
from nvhooks.dispatch.event import Event

_spec = importlib.util.spec_from_file_location(
    "nvt_kernel_fixtures", os.path.join(os.path.dirname(__file__), "..", "kernel", "conftest.py"))
_fx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fx)
nsrun, sh = _fx.nsrun, _fx.sh

NS = "https://github.com/netvirt/libvirt_hooks/xmlns/policy/1"
UUIDS = {"g1": "11111111-1111-4111-8111-111111111111", "g2": "22222222-2222-4222-8222-222222222222",
         "g3": "33333333-3333-4333-8333-333333333333"}


def guest_xml(name, dev, bridge_name, vlan=None):
    meta = ""
    if vlan:
        meta = (f"<metadata><nv:policy xmlns:nv='{NS}'><nv:interface index='0'><nv:vlan {vlan}/>"
                "</nv:interface></nv:policy></metadata>")
    return (f"<domain type='qemu' id='1'><name>{name}</name><uuid>{UUIDS[name]}</uuid>{meta}<devices>"
            f"<interface type='bridge'><mac address='52:54:00:00:00:0{name[-1]}'/>"
            f"<source bridge='{bridge_name}'/><target dev='{dev}'/></interface></devices></domain>").encode()


def write_status(root, name, xml):
    folder = root / "run" / "libvirt" / "qemu"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.xml").write_bytes(b"<domstatus state='running' pid='1'>" + xml + b"</domstatus>")


def remove_status(root, name):
    (root / "run" / "libvirt" / "qemu" / f"{name}.xml").unlink()


def kernel_vids(dev):
    data = json.loads(sh("bridge", "-j", "vlan", "show", "dev", dev).stdout or "[]")
    out = {}
    for entry in (data[0]["vlans"] if data else []):
        for vid in range(entry["vlan"], entry.get("vlanEnd", entry["vlan"]) + 1):
            out[vid] = sorted(entry.get("flags", []))
    return out


@pytest.fixture
def vlan_bridge(bridge, kprobe, tmp_path, monkeypatch):
    """A bridge in the host namespace (VLAN filtering off: bridge_init turns it on), 8021q loaded,
    NETVIRT_HOOKS_ROOT a scratch tree (tmp_path)."""
    if not kprobe.bridge_vlan_filtering():
        pytest.fail("this kernel lacks bridge VLAN filtering: run under virtme-ng (make test-realkernel)",
                    pytrace=False)
    sh("modprobe", "8021q")
    monkeypatch.setenv("NETVIRT_HOOKS_ROOT", str(tmp_path))
    return bridge(name="nvtbr" + _fx.uid(4))


@pytest.fixture
def site(netns, veth, vlan_bridge, tmp_path):
    br = vlan_bridge
    guests = {}
    for name, addrs in (("g1", ["10.100.0.1/24"]), ("g2", ["10.100.0.2/24"]),
                        ("g3", ["10.100.0.3/24", "10.200.0.3/24"])):
        ns = netns()
        pair = veth(None, ns, name="nvt" + name + _fx.uid(4), peer="eth0")
        sh("ip", "link", "set", pair.name, "master", br)
        for addr in addrs:
            nsrun(ns, "ip", "addr", "add", addr, "dev", "eth0")
        guests[name] = (ns, pair.name)
    uplink_ns = netns()
    up = veth(None, uplink_ns, name="nvtup" + _fx.uid(4), peer="eth0")
    sh("ip", "link", "set", up.name, "master", br)
    for vid in (100, 200):
        nsrun(uplink_ns, "ip", "link", "add", "link", "eth0", "name", f"eth0.{vid}", "type", "vlan", "id", str(vid))
        nsrun(uplink_ns, "ip", "addr", "add", f"10.{vid}.0.9/24", "dev", f"eth0.{vid}")
        nsrun(uplink_ns, "ip", "link", "set", f"eth0.{vid}", "up")
    return {"bridge": br, "guests": guests, "uplink": up.name, "uplink_ns": uplink_ns, "root": tmp_path}


def host_policy(site, **settings):
    # default_pvid 1: the opt-out from deny by default (test_deny_by_default shows the default)
    return policy.parse_host_policy({
        "settings": settings,
        "bridges": {site["bridge"]: {"vlan_filtering": True, "default_pvid": 1, "uplinks": [site["uplink"]],
                                     "uplink_vids": "100,200"}},
        # g2's VLAN comes from host policy, matched by its tap name
        "rules": [{"match": {"dev": site["guests"]["g2"][1]}, "vlan": {"pvid": 100}}]})


def xmls(site):
    br, g = site["bridge"], site["guests"]
    return {"g1": guest_xml("g1", g["g1"][1], br, "pvid='100'"),
            "g2": guest_xml("g2", g["g2"][1], br),
            "g3": guest_xml("g3", g["g3"][1], br, "pvid='200'")}


def start(name, xml, host, log):
    event = Event("qemu", [name, "started", "begin", "-"], xml)
    assert vlanhook.wants(event, xml, host)
    vlanhook.handle(event, domxml.parse_domain(xml), host, log)


def stop(name, xml, host, log):
    event = Event("qemu", [name, "stopped", "end", "-"], xml)
    if vlanhook.wants(event, xml, host):
        vlanhook.handle(event, domxml.parse_domain(xml), host, log)


def pings(ns, address):
    return nsrun(ns, "busybox", "ping", "-c", "3", "-W", "1", address, check=False).returncode == 0


def test_bridge_init_handler_and_traffic(site, caplog):
    log = logging.getLogger("nvt.vlan")
    caplog.set_level(logging.DEBUG, "nvt.vlan")
    host, docs, g = host_policy(site), xmls(site), site["guests"]
    write_status(site["root"], "g1", docs["g1"])          # g1 was running before the daemon (re)started
    vlanhook.bridge_init(host, log)
    with netlink.ipr() as nl:
        assert klinks.by_name(nl)[site["bridge"]].vlan_filtering is True
    assert kernel_vids(site["uplink"]) == {1: ["Egress Untagged", "PVID"], 100: [], 200: []}
    assert kernel_vids(g["g1"][1]) == {100: ["Egress Untagged", "PVID"]}
    for name in ("g2", "g3"):
        write_status(site["root"], name, docs[name])
        start(name, docs[name], host, log)
    assert kernel_vids(g["g2"][1]) == {100: ["Egress Untagged", "PVID"]}
    assert kernel_vids(g["g3"][1]) == {200: ["Egress Untagged", "PVID"]}
    # applying again changes nothing
    assert vlanhook.apply_guest(domxml.parse_domain(docs["g3"]), host, log) == []
    assert vlanhook.bridge_init(host, log) == []
    # same VLAN reaches, other VLAN does not, the trunk carries both tagged
    assert pings(g["g1"][0], "10.100.0.2")
    assert pings(g["g2"][0], "10.100.0.1")
    assert not pings(g["g3"][0], "10.100.0.1")
    assert not pings(g["g3"][0], "10.100.0.2")
    assert pings(g["g1"][0], "10.100.0.9")                # uplink's eth0.100 answers
    assert pings(g["g3"][0], "10.200.0.9")                # uplink's eth0.200 answers
    assert not pings(g["g1"][0], "10.100.0.3")


def test_dynamic_uplink(site, caplog):
    log = logging.getLogger("nvt.vlan")
    host, docs, g = host_policy(site, uplink_vlans="dynamic"), xmls(site), site["guests"]
    vlanhook.bridge_init(host, log)                       # no guest runs: the uplink carries no guest VLAN
    assert kernel_vids(site["uplink"]) == {1: ["Egress Untagged", "PVID"]}
    write_status(site["root"], "g1", docs["g1"])
    start("g1", docs["g1"], host, log)
    assert set(kernel_vids(site["uplink"])) == {1, 100}
    write_status(site["root"], "g3", docs["g3"])
    start("g3", docs["g3"], host, log)
    assert set(kernel_vids(site["uplink"])) == {1, 100, 200}
    assert pings(g["g3"][0], "10.200.0.9")
    remove_status(site["root"], "g1")
    stop("g1", docs["g1"], host, log)
    assert set(kernel_vids(site["uplink"])) == {1, 200}
    assert not pings(g["g1"][0], "10.100.0.9")            # VLAN 100 no longer leaves the host
    stop("g3", docs["g3"], host, log)                     # status XML may still exist at stopped/end
    assert set(kernel_vids(site["uplink"])) == {1}


def test_not_filtering_bridge_is_refused(site, caplog):
    log = logging.getLogger("nvt.vlan")
    caplog.set_level(logging.DEBUG, "nvt.vlan")
    docs, g = xmls(site), site["guests"]
    before = kernel_vids(g["g1"][1])
    with pytest.raises(Exception) as err:
        start("g1", docs["g1"], policy.HostPolicy(), log)   # bridge never set up: filtering off
    assert "guest g1" in str(err.value) and g["g1"][1] in str(err.value) and "vlan_filtering is off" in str(err.value)
    assert kernel_vids(g["g1"][1]) == before
    assert [r.levelname for r in caplog.records] == ["ERROR"]


def test_deny_by_default(site, netns, veth):
    """Managed bridges deny by default (issue #11 part 2): the bridge policy says nothing of
    default_pvid, so bridge_init sets it to 0. The bridge itself and the uplink keep the native
    VLAN 1 they had (the host and the network stay reachable in VLAN 1), a port no policy covers
    (g2, and a port added by hand afterwards) reaches nothing, a port with policy its VLAN."""
    log = logging.getLogger("nvt.vlan")
    br, g, up_ns = site["bridge"], site["guests"], site["uplink_ns"]
    host = policy.parse_host_policy({"bridges": {br: {"uplinks": [site["uplink"]], "uplink_vids": "100,200"}}})
    assert host.bridges[br].default_pvid is None
    # as an operator's bridge is before the upgrade: kernel default_pvid 1, every port in VLAN 1
    sh("ip", "addr", "add", "10.1.0.254/24", "dev", br)
    nsrun(up_ns, "ip", "addr", "add", "10.1.0.9/24", "dev", "eth0")
    for name, addr in (("g2", "10.1.0.2/24"), ("g3", "10.1.0.3/24")):
        nsrun(g[name][0], "ip", "addr", "add", addr, "dev", "eth0")
    docs = {"g1": guest_xml("g1", g["g1"][1], br, "pvid='100'"), "g2": guest_xml("g2", g["g2"][1], br),
            "g3": guest_xml("g3", g["g3"][1], br, "pvid='1'")}
    for name, xml in docs.items():
        write_status(site["root"], name, xml)             # running while libvirtd (re)starts
    vlanhook.bridge_init(host, log)
    with netlink.ipr() as nl:
        assert klinks.by_name(nl)[br].default_pvid == 0
    native = ["Egress Untagged", "PVID"]
    assert kernel_vids(site["uplink"]) == {1: native, 100: [], 200: []}
    assert kernel_vids(br) == {1: native}
    assert kernel_vids(g["g1"][1]) == {100: native} and kernel_vids(g["g3"][1]) == {1: native}
    assert kernel_vids(g["g2"][1]) == {}
    assert vlanhook.bridge_init(host, log) == []          # idempotent
    hot_ns = netns()                                      # a NIC hot-plugged or a tap added by hand
    hot = veth(None, hot_ns, name="nvthp" + _fx.uid(4), peer="eth0")
    sh("ip", "link", "set", hot.name, "master", br)
    for addr in ("10.1.0.5/24", "10.100.0.5/24"):
        nsrun(hot_ns, "ip", "addr", "add", addr, "dev", "eth0")
    assert kernel_vids(hot.name) == {}
    # ports with policy reach their VLAN; VLAN 1 still reaches the bridge and the uplink's native VLAN
    assert pings(g["g1"][0], "10.100.0.9")
    assert pings(g["g3"][0], "10.1.0.9") and pings(g["g3"][0], "10.1.0.254")
    for ns in (g["g2"][0], hot_ns):
        for address in ("10.1.0.9", "10.1.0.3", "10.1.0.254"):
            assert not pings(ns, address), address
    assert not pings(hot_ns, "10.100.0.9")
