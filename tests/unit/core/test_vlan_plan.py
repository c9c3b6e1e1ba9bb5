"""Pure parts of the VLAN core: plans, views, the hook's cheap checks."""
import logging

import pytest

from nvhooks.policy import domxml, model as policy
from nvhooks.vlan import apply as vlanapply, hook as vlanhook
from nvhooks.errors import KernelError, PolicyError

PU = vlanapply.FLAG_PVID | vlanapply.FLAG_UNTAGGED


def test_plan_access_port_replaces_default():
    actions, after = vlanapply.plan({1: PU}, vlanapply.wish(100))
    assert actions == [("del", 1, 0), ("add", 100, PU)]
    assert after == {100: PU}


def test_plan_is_idempotent():
    want = vlanapply.wish(100, True, {200, 201})
    after = vlanapply.plan({1: PU}, want)[1]
    assert vlanapply.plan(after, want) == ([], want)


def test_plan_non_exclusive_keeps_others_and_moves_pvid():
    actions, after = vlanapply.plan({1: PU, 5: 0}, vlanapply.wish(7, False), exclusive=False)
    assert actions == [("add", 7, vlanapply.FLAG_PVID)]
    assert after == {1: vlanapply.FLAG_UNTAGGED, 5: 0, 7: vlanapply.FLAG_PVID}


def test_plan_remove_and_protect():
    assert vlanapply.plan({1: PU, 5: 0, 6: 0}, {}, exclusive=False, remove={5, 9})[1] == {1: PU, 6: 0}
    assert vlanapply.plan({1: PU, 5: 0}, {}, protect={1})[1] == {1: PU}


def test_plan_flag_change_is_an_add():
    actions, after = vlanapply.plan({100: PU}, vlanapply.wish(100, untagged=False))
    assert actions == [("add", 100, vlanapply.FLAG_PVID)] and after == {100: vlanapply.FLAG_PVID}


def test_views():
    table = {100: PU, 200: 0, 201: 0, 202: 0, 300: 0}
    assert vlanapply.describe(table) == {"pvid": 100, "vids": "100,200-202,300", "untagged": "100",
                                         "tagged": "200-202,300"}
    assert vlanapply.describe({}) == {"pvid": None, "vids": "", "untagged": "", "tagged": ""}
    assert vlanapply.lines(table) == ["100 pvid untagged", "200-202", "300"]
    actions = vlanapply.plan({1: PU, 7: 0, 8: 0}, table)[0]
    assert vlanapply.action_text(actions, "vnet0") == [
        "del dev vnet0 vid 1", "del dev vnet0 vid 7-8", "add dev vnet0 vid 200-202", "add dev vnet0 vid 300",
        "add dev vnet0 vid 100 pvid untagged"]


def test_requests_send_runs_as_ranges_and_pvids_alone():
    U, B, E = vlanapply.FLAG_UNTAGGED, vlanapply.FLAG_RANGE_BEGIN, vlanapply.FLAG_RANGE_END
    want = {100: PU, 200: 0, 201: 0, 202: 0, 300: 0, 400: U, 401: U}
    actions = vlanapply.plan({1: PU, 7: 0, 8: 0}, want)[0]
    assert vlanapply.requests(actions) == [
        ("del", [(1, 0)]), ("del", [(7, B), (8, E)]),
        ("add", [(200, B), (202, E)]), ("add", [(300, 0)]),
        ("add", [(400, U | B), (401, U | E)]), ("add", [(100, PU)])]


def test_wish_rejects_pvid_in_vids():
    with pytest.raises(PolicyError, match="VLAN 100 is both the pvid and in vids"):
        vlanapply.wish(100, True, {100})


def test_policy_table():
    vlan = policy.parse_vlan({"pvid": 10, "tagged": "20-21", "untagged": "no"}, "x")
    assert vlanapply.policy_table(vlan) == {10: vlanapply.FLAG_PVID, 20: 0, 21: 0}


class Ev:
    def __init__(self, driver="qemu", op="started", subop="begin", guest="g2"):
        self.driver, self.op, self.subop, self.guest = driver, op, subop, guest


XML = b"""<domain type='qemu'><name>g1</name><uuid>4f1ad3a6-5b9e-4c61-9d7e-0f5c1b1a2b3c</uuid>
<metadata><nv:policy xmlns:nv='https://github.com/netvirt/libvirt_hooks/xmlns/policy/1'>
<nv:interface index='0'><nv:vlan pvid='100' tagged='300'/></nv:interface></nv:policy></metadata>
<devices><interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br0'/><target dev='vnet0'/></interface>
<interface type='ethernet'><mac address='52:54:00:00:00:02'/><target dev='tap9'/></interface>
</devices></domain>"""
PLAIN = b"<domain type='qemu'><name>g2</name><uuid>x</uuid><devices/></domain>"


def test_wants_is_cheap_and_exact():
    empty = policy.HostPolicy()
    assert vlanhook.wants(Ev(), XML, empty)
    assert vlanhook.wants(Ev("qemu", "reconnect", "begin"), XML, empty)
    assert not vlanhook.wants(Ev(), PLAIN, empty)
    assert not vlanhook.wants(Ev("qemu", "prepare", "begin"), XML, empty)
    assert not vlanhook.wants(Ev("network", "started", "begin"), XML, empty)
    assert not vlanhook.wants(Ev("qemu", "stopped", "end"), XML, empty)
    ruled = policy.parse_host_policy({"rules": [{"match": {"guest": "g2"}, "vlan": {"pvid": 5}}]})
    assert vlanhook.wants(Ev(), PLAIN, ruled)
    assert not vlanhook.wants(Ev(guest="web1"), PLAIN, ruled)    # the rule names another guest
    dynamic = policy.parse_host_policy({"settings": {"uplink_vlans": "dynamic"},
                                        "bridges": {"br0": {"uplinks": ["bond0"]}}})
    assert vlanhook.wants(Ev("qemu", "stopped", "end"), PLAIN, dynamic)
    assert vlanhook.wants(Ev("qemu", "release", "end"), PLAIN, dynamic)


def test_vlan_ports_only_bridge_ports():
    ports = vlanhook.vlan_ports(domxml.parse_domain(XML), policy.HostPolicy())
    assert [(p.dev, p.bridge, p.vlan.pvid) for p in ports] == [("vnet0", "br0", 100)]


def test_used_vids_and_uplink_table():
    host = policy.parse_host_policy({"bridges": {"br0": {"uplinks": ["bond0"], "uplink_vids": "100-199"}}})
    used = vlanhook.used_vids(host, [domxml.parse_domain(XML)])
    assert used == {"br0": {100, 300}}
    bp = host.bridges["br0"]
    assert vlanhook.uplink_table(bp) == {vid: 0 for vid in range(100, 200)}              # static
    assert vlanhook.uplink_table(bp, used["br0"]) == {100: 0}                           # dynamic, limited
    assert vlanhook.uplink_table(policy.BridgePolicy("br1"), {7}) == {7: 0}             # dynamic, open


def test_report_abort_and_warn(caplog):
    log = logging.getLogger("nvt.unit")
    caplog.set_level(logging.INFO, "nvt.unit")
    failures = [KernelError("the reason", "g1 port 0 (vnet0, 52:54:00:00:00:01): bridge br0")]
    with pytest.raises(KernelError, match=r"guest g1: g1 port 0 \(vnet0.*the reason"):
        vlanhook._report("g1", failures, policy.HostPolicy(), log)
    assert caplog.records[-1].levelname == "ERROR"
    warn = policy.parse_host_policy({"settings": {"vlan_failure": "warn"}})
    vlanhook._report("g1", failures, warn, log)
    assert caplog.records[-1].levelname == "WARNING" and "vnet0" in caplog.records[-1].getMessage()


def test_port_without_bridge_name_fails(caplog):
    xml = XML.replace(b"<source bridge='br0'/>", b"")
    domain = domxml.parse_domain(xml)

    class NoNetlink:
        def get_links(self):
            return []

        def get_vlans(self):
            return []

    with pytest.raises(KernelError, match="the live XML names no bridge"):
        vlanhook.apply_guest(domain, policy.HostPolicy(), logging.getLogger("nvt.unit"), ipr=NoNetlink())


def test_running_domains_from_status_xml(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("NETVIRT_HOOKS_ROOT", str(tmp_path))
    qemu = tmp_path / "run" / "libvirt" / "qemu"
    qemu.mkdir(parents=True)
    (qemu / "g1.xml").write_bytes(b"<domstatus state='running' pid='1'>" + XML + b"</domstatus>")
    (qemu / "broken.xml").write_bytes(b"<domstatus>")
    (qemu / "g1.pid").write_text("1")
    caplog.set_level(logging.WARNING, "nvt.unit")
    found = vlanhook.running_domains(logging.getLogger("nvt.unit"))
    assert [d.name for d in found] == ["g1"] and found[0].is_status
    assert "broken.xml" in caplog.records[0].getMessage()


def test_deny_by_default_keeps_native_vlan_of_bridge_and_uplinks():
    """bridge_init switching default_pvid 1 -> 0 (the kernel then drops VLAN 1 from every port holding it
    as its untagged pvid): the bridge device and the uplinks that carried it get it back explicitly."""
    from nvhooks.kernel.links import Link
    links = {"br0": Link(1, "br0", "bridge", default_pvid=1), "bond0": Link(2, "bond0", master=1),
             "eth9": Link(3, "eth9", master=1), "vnet0": Link(4, "vnet0", master=1)}
    cache = {"links": links, "tables": {1: {1: PU}, 2: {1: PU, 100: 0}, 3: {100: 0}, 4: {1: PU}}}
    deny = policy.parse_host_policy({"bridges": {"br0": {"uplinks": ["bond0", "eth9"]}}}).bridges["br0"]
    assert vlanhook._kept_natives(deny, cache) == (["br0", "bond0"], 1)       # eth9 had no native VLAN
    own = policy.parse_host_policy({"bridges": {"br0": {"uplinks": ["bond0"], "self_pvid": 10}}}).bridges["br0"]
    assert vlanhook._kept_natives(own, cache) == (["bond0"], 1)               # the bridge gets self_pvid
    opt_out = policy.parse_host_policy({"bridges": {"br0": {"uplinks": ["bond0"], "default_pvid": 1}}})
    assert vlanhook._kept_natives(opt_out.bridges["br0"], cache) == ([], None)
    links["br0"].default_pvid = 0                                              # already denying: nothing to keep
    assert vlanhook._kept_natives(deny, cache) == ([], None)
    assert vlanhook._native(cache, "bond0") == {1} and vlanhook._native(cache, "eth9") == set()
