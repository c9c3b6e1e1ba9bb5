"""Every interface kind libvirt gives a guest (issue #12): <actual>, macvtap, non-devices, native edge cases."""
import logging

import pytest

from nvhooks.errors import XmlError
from nvhooks.policy import domxml, ifaces, model as policy, resolve
from nvhooks.shaping import hook as shapehook, plan as tcplan
from nvhooks.shaping.caps import Caps
from nvhooks.vlan import hook as vlanhook

CAPS = Caps(leaf="fq_codel", tick_in_usec=15.625)
UUID = "0b5f8a2e-8f6a-4d27-9d8c-1c1b3c1d2e3f"


def status(devices):
    """A <domstatus> as libvirt writes it (/run/libvirt/qemu/NAME.xml), reduced to what we read."""
    return (f"<domstatus state='running' pid='4242'><domain type='kvm' id='7'><name>g1</name><uuid>{UUID}</uuid>"
            f"<devices>{devices}</devices></domain></domstatus>")


def domain(devices):
    return f"<domain type='kvm'><name>g1</name><uuid>{UUID}</uuid><devices>{devices}</devices></domain>"


def host(rules=(), **settings):
    return policy.parse_host_policy({"settings": settings, "rules": list(rules),
                                     "groups": {"web": {"inbound": {"ceiling": "100mbit"}}}})


def port_of(xml, rules=(), **settings):
    return resolve.resolve(domxml.parse_domain(xml), host(rules, **settings))[0]


NET_BRIDGE = """<interface type='network'><mac address='52:54:00:00:00:01'/>
  <source network='lan' portgroup='web' portid='4d6859d7-f23b-4b26-8db7-5beb37e24e0a'/>
  <actual type='bridge'><source bridge='br-lan'/>{extra}</actual>
  <target dev='vnet0'/><model type='virtio'/></interface>"""


# ------------------------------------------------------------------ <actual>

def test_actual_gives_the_real_type_and_bridge_of_a_network_port():
    iface = domxml.parse_domain(status(NET_BRIDGE.format(extra=""))).interfaces[0]
    assert (iface.type, iface.kind, iface.source_bridge) == ("network", "bridge", "br-lan")
    assert (iface.source_network, iface.portgroup) == ("lan", "web")
    port = port_of(status(NET_BRIDGE.format(extra="")), [{"match": {"dev": "vnet0"}, "vlan": {"pvid": 100}}])
    assert (port.type, port.bridge, port.device) == ("bridge", "br-lan", "tap")
    assert port.explain()["network"] == "lan portgroup web"


def test_network_port_vlans_land_under_its_bridge():
    dom = domxml.parse_domain(status(NET_BRIDGE.format(extra="")))
    pol = host([{"match": {"dev": "vnet0"}, "vlan": {"pvid": 100}}])
    assert [p.bridge for p in vlanhook.vlan_ports(dom, pol)] == ["br-lan"]
    assert vlanhook.used_vids(pol, [dom]) == {"br-lan": {100}}      # dynamic uplinks: the right bridge


def test_isolated_network_keeps_type_network_on_its_libvirt_bridge():
    xml = status("""<interface type='network'><mac address='52:54:00:00:00:02'/>
      <source network='iso' portid='d0d34164-4abf-42b8-a9aa-2d9a9b4b5f48'/>
      <actual type='network'><source bridge='virbr9'/></actual><target dev='vnet1'/></interface>""")
    port = port_of(xml)
    assert (port.type, port.bridge) == ("network", "virbr9")


def test_ovs_network_port_is_never_shaped_with_tc():
    xml = status(NET_BRIDGE.format(extra="<virtualport type='openvswitch'><parameters interfaceid="
                                         "'09b11c53-8b5c-4eeb-8f00-d84eaa0aaa4f'/></virtualport>"))
    port = port_of(xml, [{"match": {"dev": "vnet0"}, "inbound": {"average": "10mbit"}}])
    assert port.ovs and port.shaped and tcplan.plan_port(port, CAPS) is None
    assert any("never tc" in note for note in port.notes)
    assert port.owners["qdiscs"] == "openvswitch"


def test_portgroup_bandwidth_is_visible_with_its_source():
    xml = status(NET_BRIDGE.format(extra="<bandwidth><inbound average='1000' peak='2000'/></bandwidth>"))
    port = port_of(xml)
    assert port.inbound.average == 1000 * 8192
    assert port.sources["inbound"] == f"{resolve.NATIVE} from network lan portgroup web"
    values = port.explain()["values"]
    assert values["inbound.average"]["source"].endswith("portgroup web")
    assert port.owners["qdiscs"] == "netvirt"
    # the interface's own <bandwidth>, copied into <actual> by libvirt, stays "native <bandwidth>"
    own = status("""<interface type='network'><mac address='52:54:00:00:00:01'/><source network='lan'/>
      <bandwidth><inbound average='1000'/></bandwidth>
      <actual type='bridge'><source bridge='br-lan'/><bandwidth><inbound average='1000'/></bandwidth></actual>
      <target dev='vnet0'/></interface>""")
    assert port_of(own).sources["inbound"] == resolve.NATIVE
    assert port_of(xml, native_bandwidth="libvirt").owners["qdiscs"] == "libvirt"


def test_hook_xml_at_start_begin_has_no_actual_but_names_the_bridge():
    # what libvirt 9.0 pipes to `start begin` (captured here): the live form, type = actual type
    xml = domain("""<interface type='bridge'><mac address='52:54:00:00:00:01'/>
      <source network='lan' portid='4d6859d7-f23b-4b26-8db7-5beb37e24e0a' bridge='br-lan'/>
      <target dev='vnet0'/></interface>""")
    port = port_of(xml)
    assert (port.type, port.bridge, port.network) == ("bridge", "br-lan", "lan")


# ------------------------------------------------------------------ macvtap

def test_macvtap_is_shaped_the_other_way_round():
    xml = domain("""<interface type='direct'><mac address='52:54:00:00:00:03'/>
      <source dev='eth0' mode='bridge'/><target dev='macvtap0'/></interface>""")
    port = port_of(xml, [{"match": {"dev": "macvtap0"}, "inbound": {"average": "8mbit"},
                          "outbound": {"average": "2mbit"}}])
    assert port.device == "macvtap" and port.swapped
    objs = {o.key: o for o in tcplan.plan_port(port, CAPS).objects}
    ifb = tcplan.port_ifb("macvtap0")
    # guest inbound enters the macvtap: ingress redirect to the ifb, HTB 8 Mbit/s there
    assert objs[("class", ifb, tcplan.PORT_CLASS)].get("rate") == 1_000_000
    assert objs[("filter", "macvtap0", (tcplan.CLSACT_INGRESS, tcplan.FILTER_PRIO, None))].get("redirect") == ifb
    # guest outbound leaves through it: root HTB on the macvtap at 2 Mbit/s
    assert objs[("class", "macvtap0", tcplan.PORT_CLASS)].get("rate") == 250_000
    assert any("reverse of a tap" in note for note in port.notes)


def test_macvtap_group_inbound_redirects_from_ingress():
    xml = domain("""<interface type='direct'><mac address='52:54:00:00:00:03'/>
      <source dev='eth0' mode='vepa'/><target dev='macvtap0'/></interface>""")
    port = port_of(xml, [{"match": {"dev": "macvtap0"}, "group": "web"}])
    plan = tcplan.plan_port(port, CAPS)
    filters = [o for o in plan.objects if o.kind == "filter" and o.dev == "macvtap0"]
    assert [f.id[0] for f in filters] == [tcplan.CLSACT_INGRESS]
    assert plan.memberships[0].mac_at == -14       # still the guest's MAC as destination
    tap = port_of(xml.replace("type='direct'", "type='ethernet'"), [{"match": {"dev": "macvtap0"}, "group": "web"}])
    assert [o.id[0] for o in tcplan.plan_port(tap, CAPS).objects
            if o.kind == "filter" and o.dev == "macvtap0"] == [tcplan.CLSACT_EGRESS]


def test_network_with_direct_actual_is_a_macvtap():
    xml = status("""<interface type='network'><mac address='52:54:00:00:00:04'/><source network='sriov'/>
      <actual type='direct'><source dev='eth1' mode='passthrough'/></actual><target dev='macvtap3'/></interface>""")
    port = port_of(xml, [{"match": {"dev": "macvtap3"}, "inbound": {"average": "8mbit"}}])
    assert port.device == "macvtap" and port.type == "direct"


# ------------------------------------------------------------------ not kernel devices here

NON_DEVICES = {
    "vhostuser": "<source type='unix' path='/run/vhost-user1.sock' mode='server'/><target dev='vhost-user1'/>",
    "hostdev": "<source><address type='pci' domain='0x0000' bus='0x03' slot='0x10' function='0x1'/></source>",
    "vdpa": "<source dev='/dev/vhost-vdpa-0'/>",
    "user": "<backend type='passt'/>",
    "server": "<source address='192.0.2.1' port='5558'/>",
    "client": "<source address='192.0.2.1' port='5558'/>",
    "mcast": "<source address='230.0.0.1' port='5558'/>",
    "udp": "<source address='192.0.2.1' port='5558'><local address='127.0.0.1' port='4444'/></source>",
    "null": "",
    "vds": "<source switchid='12345678-1234-1234-1234-123456789abc' portid='6' portgroupid='pg-1'/>",
}


@pytest.mark.parametrize("kind", sorted(NON_DEVICES))
def test_non_device_kinds_are_never_planned_and_a_matching_rule_is_only_a_warning(kind, caplog):
    xml = domain(f"<interface type='{kind}'><mac address='52:54:00:00:00:05'/>{NON_DEVICES[kind]}"
                 "<bandwidth><inbound average='1000'/></bandwidth></interface>")
    rules = [{"match": {"mac": "52:54:00:00:00:05"}, "inbound": {"average": "8mbit"}, "group": "web",
              "vlan": {"pvid": 100}}]
    port = port_of(xml, rules)
    assert port.device is None and not port.shaped and port.vlan is None
    assert tcplan.plan_port(port, CAPS) is None and tcplan.plan_port_absent(port) is None
    assert any("not a kernel device on this host" in note for note in port.notes)
    assert any("matches this port but is not applied" in note for note in port.notes)
    log = logging.getLogger("t")
    with caplog.at_level(logging.WARNING):
        dom = domxml.parse_domain(xml)
        assert shapehook.apply_guest(dom, host(rules), log, caps=CAPS) == []      # no error, no tc
        assert shapehook.teardown_guest(dom, log) == []
        assert vlanhook.vlan_ports(dom, host(rules)) == []
    assert "matches this port but is not applied" in caplog.text


# ------------------------------------------------------------------ native <bandwidth> edge cases

def test_floor_only_on_a_network_port_never_stops_a_guest():
    xml = status("""<interface type='network'><mac address='52:54:00:00:00:06'/><source network='nat'/>
      <bandwidth><inbound floor='500'/></bandwidth>
      <actual type='network'><source bridge='virbr1'/><bandwidth classID='3'><inbound floor='500'/></bandwidth>
      </actual><target dev='vnet6'/></interface>""")
    port = port_of(xml)                          # default native_bandwidth: takeover
    assert not port.shaped and tcplan.plan_port(port, CAPS) is None
    assert any("guaranteed by its class 1:3 on the network's bridge virbr1" in n for n in port.notes)
    assert any("floor only, no average" in n for n in port.notes)
    assert shapehook.apply_guest(domxml.parse_domain(xml), host(), logging.getLogger("t"), caps=CAPS) == []


def test_floor_where_libvirt_ignores_it_is_reported():
    bridge = domain("""<interface type='bridge'><source bridge='br0'/><target dev='vnet7'/>
      <bandwidth><inbound average='1000' floor='500'/><outbound average='100' floor='50'/></bandwidth></interface>""")
    port = port_of(bridge)
    assert any("ignored by libvirt on a bridge port" in n for n in port.notes)
    assert any("outbound floor 50 KiB/s is ignored" in n for n in port.notes)
    assert port.inbound == policy.Rate(average=1000 * 8192)     # the average is still ours to shape


def test_two_inbound_elements_the_first_counts_like_in_libvirt_and_it_is_said():
    xml = domain("""<interface type='bridge'><source bridge='br0'/><target dev='vnet8'/>
      <bandwidth><inbound average='1000'/><inbound average='2000'/></bandwidth></interface>""")
    port = port_of(xml)
    assert port.inbound.average == 1000 * 8192
    assert any("2 <inbound> elements: only the first counts" in n for n in port.notes)


def test_floor_on_a_network_without_inbound_qos_is_reported_as_ignored():
    ignored = status("""<interface type='network'><mac address='52:54:00:00:00:06'/><source network='nat'/>
      <bandwidth><inbound floor='500'/></bandwidth>
      <actual type='network'><source bridge='virbr1'/><bandwidth><inbound floor='500'/></bandwidth></actual>
      <target dev='vnet6'/></interface>""")
    assert any("ignored by libvirt: no class for it" in n for n in port_of(ignored).notes)
    live = domain("""<interface type='network'><source network='nat' bridge='virbr1'/><target dev='vnet6'/>
      <bandwidth><inbound floor='500'/></bandwidth></interface>""")
    assert any("only if that network has an inbound <bandwidth>" in n for n in port_of(live).notes)


@pytest.mark.parametrize("vlan, match", [
    ("<vlan trunk='no'><tag id='10'/><tag id='20'/></vlan>", "trunk='no'"),
    ("<vlan trunk='no'><tag id='10' nativeMode='untagged'/></vlan>", "trunk='no'"),
    ("<vlan trunk='maybe'><tag id='10'/></vlan>", "must be yes or no"),
    ("<vlan trunk='yes'><tag id='10' nativeMode='bogus'/><tag id='20'/></vlan>", "nativeMode='bogus'"),
    ("<vlan trunk='yes'><tag id='10' nativeMode='tagged'/><tag id='20' nativeMode='untagged'/></vlan>",
     "more than one native"),
    ("<vlan><tag id='4096'/></vlan>", "out of range"),
])
def test_native_vlan_that_libvirt_refuses_is_refused(vlan, match):
    with pytest.raises(XmlError, match=match):
        domxml.parse_domain(domain(f"<interface type='bridge'><source bridge='br0'/>{vlan}</interface>"))


@pytest.mark.parametrize("vid", [0, 4095])
def test_reserved_vlan_ids_are_read_and_reported(vid):
    port = port_of(domain(f"<interface type='bridge'><source bridge='br0'/><target dev='vnet9'/>"
                          f"<vlan><tag id='{vid}'/></vlan></interface>"))
    assert port.native_vlan == f"access {vid}"
    assert any(f"reserved VLAN id {vid}" in n for n in port.notes)


# ------------------------------------------------------------------ native <vlan>, isolation, ownership

def test_native_trunk_native_mode_and_isolation_are_shown_and_owned_by_libvirt():
    xml = domain("""<interface type='bridge'><source bridge='br0'/><target dev='vnet10'/>
      <vlan trunk='yes'><tag id='42' nativeMode='untagged'/><tag id='47'/></vlan>
      <port isolated='yes'/></interface>""")
    port = port_of(xml, [{"match": {"dev": "vnet10"}, "vlan": {"pvid": 100}}])
    values = port.explain()["values"]
    assert values["native.vlan"]["value"] == "trunk 42 (native untagged), 47"
    assert values["native.isolated"]["value"] == "yes"
    assert port.vlan is None and port.owners["vlans"] == "libvirt"          # never fight libvirt
    assert any("owns this port's VLANs" in n for n in port.notes)
    dom = domxml.parse_domain(xml)
    assert vlanhook.vlan_ports(dom, host([{"match": {"dev": "vnet10"}, "vlan": {"pvid": 100}}])) == []


def test_portgroup_vlan_in_actual_is_libvirts():
    xml = status(NET_BRIDGE.format(extra="<vlan><tag id='42'/></vlan>"))
    iface = domxml.parse_domain(xml).interfaces[0]
    assert iface.vlan_from == "network" and iface.vlan.tags[0].id == 42
    port = port_of(xml)
    assert port.owners["vlans"] == "libvirt" and port.native_vlan == "access 42"
    # dynamic uplinks still carry what libvirt gave the port, under its bridge
    assert vlanhook.used_vids(host(), [domxml.parse_domain(xml)]) == {"br-lan": {42}}


def test_our_vlan_policy_owns_a_port_without_native_vlan():
    port = port_of(domain("<interface type='bridge'><source bridge='br0'/><target dev='vnet11'/></interface>"),
                   [{"match": {"dev": "vnet11"}, "vlan": {"pvid": 100}}])
    assert port.owners == {"qdiscs": None, "vlans": "netvirt"} and port.vlan.pvid == 100


def test_device_kinds_table():
    assert [ifaces.device_of(k) for k in ("bridge", "network", "ethernet", "direct", "vhostuser", "")] == \
        ["tap", "tap", "tap", "macvtap", None, None]


def test_status_says_why_a_non_device_port_is_skipped():
    from nvhooks.cli import probe
    xml = domain("<interface type='vhostuser'><mac address='52:54:00:00:00:05'/>"
                 "<source type='unix' path='/run/vhu0.sock' mode='server'/></interface>")
    dom = domxml.parse_domain(xml)
    port = resolve.resolve(dom, host())[0]
    state = probe.shaping(dom, port, host(), counters=False)
    assert state["state"] == "skipped" and "not a kernel device on this host" in state["why"]
    assert probe.vlan(dom, port, host()) == {"state": "none"}
