"""Precedence (host rules > guest metadata > native <bandwidth>) and explain."""
import pytest

from nvhooks.policy import domxml, model as policy, resolve
from nvhooks.errors import PolicyError

DOMAIN = """<domain type='qemu'><name>web-1</name><uuid>0b5f8a2e-8f6a-4d27-9d8c-1c1b3c1d2e3f</uuid>
<metadata><nv:policy xmlns:nv="{ns}">
  <nv:interface mac="52:54:00:00:00:01"><nv:inbound average="20mbit"/><nv:outbound average="5mbit"/></nv:interface>
  <nv:interface index="1"><nv:vlan pvid="100"/><nv:group name="web"/></nv:interface>
</nv:policy></metadata>
<devices>
  <interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br0'/><target dev='vnet0'/>
    <bandwidth><inbound average='1000' peak='2000' burst='64'/><outbound average='500'/></bandwidth></interface>
  <interface type='ethernet'><mac address='52:54:00:00:00:02'/><target dev='tap-web1'/></interface>
  <interface type='bridge'><mac address='52:54:00:00:00:03'/><source bridge='ovsbr'/>
    <virtualport type='openvswitch'/><target dev='vnet2'/>
    <bandwidth><inbound average='1000' peak='2000'/></bandwidth></interface>
</devices></domain>""".format(ns=policy.NS)


def host(rules=(), native="takeover"):
    return policy.parse_host_policy({
        "settings": {"native_bandwidth": native},
        "groups": {"web": {"inbound": {"ceiling": "100mbit", "floor": "10mbit"}}},
        "rules": list(rules)})


def ports(rules=(), native="takeover"):
    return resolve.resolve(domxml.parse_domain(DOMAIN), host(rules, native))


def test_metadata_beats_native():
    port = ports()[0]
    assert port.inbound == policy.Rate(average=20_000_000)
    assert port.sources["inbound"] == "metadata interface[0]"
    assert port.native and any("replaced by ours" in note for note in port.notes)


def test_host_rule_beats_metadata_per_aspect():
    port = ports([{"match": {"dev": "vnet*"}, "inbound": {"average": "30mbit"}}])[0]
    assert port.inbound.average == 30_000_000
    assert port.sources["inbound"] == "host policy rules[0]"
    assert port.outbound.average == 5_000_000             # metadata still rules outbound
    assert port.sources["outbound"] == "metadata interface[0]"


def test_first_matching_host_rule_wins():
    port = ports([{"match": {"mac": "52:54:00:00:00:0?"}, "inbound": {"average": "1mbit"}},
                  {"match": {"guest": "web-*"}, "inbound": {"average": "2mbit"}}])[0]
    assert port.inbound.average == 1_000_000


def test_native_only_when_nothing_else():
    dom = domxml.parse_domain(DOMAIN.replace("<nv:inbound average=\"20mbit\"/><nv:outbound average=\"5mbit\"/>",
                                             "<nv:group name='web'/>"))
    port = resolve.resolve(dom, host())[0]
    assert port.inbound == policy.Rate(average=1000 * 8192, peak=2000 * 8192, burst=64 * 1024)
    assert port.sources["inbound"] == resolve.NATIVE
    left = resolve.resolve(dom, host(native="libvirt"))[0]
    assert left.inbound is None and left.group.name == "web"


def test_group_vlan_and_index_match():
    port = ports()[1]
    assert port.group.name == "web" and port.vlan.pvid == 100
    assert any("not a Linux bridge port" in note for note in port.notes)   # ethernet port


def test_ovs_port_notes_peak():
    port = ports()[2]
    assert port.ovs
    assert any("OVS ignores average" in note for note in port.notes)


def test_unknown_group_from_metadata():
    bad = DOMAIN.replace("<nv:group name=\"web\"/>", "<nv:group name=\"db\"/>")
    with pytest.raises(PolicyError, match=r"web-1: interface\[1\].*group 'db' is not defined"):
        resolve.resolve(domxml.parse_domain(bad), host())


def test_explain_names_every_source():
    out = resolve.explain(domxml.parse_domain(DOMAIN), host([{"match": {"guest": "web-1", "index": 0},
                                                              "outbound": {"average": "7mbit"}}]))
    values = out["ports"][0]["values"]
    assert values["inbound.average"] == {"value": "20mbit", "source": "metadata interface[0]"}
    assert values["outbound.average"] == {"value": "7mbit", "source": "host policy rules[0]"}
    assert out["ports"][1]["values"]["vlan.pvid"]["source"] == "metadata interface[1]"
    assert out["precedence"][0].startswith("host policy")


def test_no_policy_no_host_file():
    dom = domxml.parse_domain("<domain><name>x</name><uuid>0b5f8a2e-8f6a-4d27-9d8c-1c1b3c1d2e30</uuid>"
                              "<devices><interface type='network'><source network='default'/></interface>"
                              "</devices></domain>")
    (port,) = resolve.resolve(dom)
    assert not port.shaped and port.vlan is None and port.sources == {}


def _restricted(**settings):
    return policy.parse_host_policy({
        "settings": settings,
        "groups": {"web": {"inbound": {"ceiling": "100mbit"}}, "db": {"inbound": {"ceiling": "10mbit"}}}})


# Issue #11.9: the host can restrict what a guest's own metadata may choose.
def test_metadata_vlans_outside_the_hosts_list_are_refused():
    domain = domxml.parse_domain(DOMAIN)
    with pytest.raises(PolicyError) as err:
        resolve.resolve(domain, _restricted(metadata_vlans="200-299"))
    assert str(err.value) == ("web-1: interface[1] (metadata interface[1]): its metadata asks for VLAN 100, which "
                              "this host does not allow guests to choose (settings.metadata_vlans: 200-299)")
    assert resolve.resolve(domain, _restricted(metadata_vlans="100,200-299"))[1].vlan.pvid == 100
    with pytest.raises(PolicyError, match=r"metadata_vlans: none"):
        resolve.resolve(domain, _restricted(metadata_vlans=[]))


def test_metadata_groups_outside_the_hosts_list_are_refused():
    domain = domxml.parse_domain(DOMAIN)
    with pytest.raises(PolicyError, match=r"asks for group 'web'.*\(settings.metadata_groups: db\)"):
        resolve.resolve(domain, _restricted(metadata_groups=["db"]))
    assert resolve.resolve(domain, _restricted(metadata_groups=["db", "web"]))[1].group.name == "web"


def test_host_rules_are_not_restricted_by_the_metadata_lists():
    host = policy.parse_host_policy({
        "settings": {"metadata_vlans": [], "metadata_groups": []},
        "groups": {"web": {"inbound": {"ceiling": "100mbit"}}},
        "rules": [{"match": {"guest": "web-1", "index": 1}, "group": "web", "vlan": {"pvid": 100}}]})
    port = resolve.resolve(domxml.parse_domain(DOMAIN), host)[1]
    assert (port.vlan.pvid, port.group.name) == (100, "web")
    assert port.sources["vlan"] == port.sources["group"] == "host policy rules[0]"


@pytest.mark.parametrize("settings, where", [
    ({"metadata_vlans": "5000"}, "settings.metadata_vlans"),
    ({"metadata_groups": "web"}, "settings.metadata_groups"),
    ({"metadata_groups": [7]}, r"settings.metadata_groups\[0\]"),
])
def test_metadata_lists_are_typed(settings, where):
    with pytest.raises(PolicyError, match=rf"^policy.json: {where}: "):
        policy.parse_host_policy({"settings": settings})
