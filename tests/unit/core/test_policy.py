"""Host policy file and guest <metadata>: validation with errors naming the key."""
import json

import pytest

from nvhooks.policy import domxml, model as policy
from nvhooks.errors import PolicyError

GOOD = {
    "version": 1,
    "settings": {"vlan_failure": "warn", "uplink_vlans": "dynamic", "native_bandwidth": "libvirt"},
    "groups": {"web": {"inbound": {"ceiling": "100mbit", "floor": "10mbit"},
                       "outbound": {"ceiling": "50mbit"}}},
    "bridges": {"br0": {"vlan_filtering": True, "default_pvid": 1, "uplinks": ["eth1"],
                        "uplink_vids": "100,200-210", "self_vids": "10", "self_pvid": 10}},
    "rules": [
        {"match": {"guest": "web-*"}, "group": "web", "comment": "web tier"},
        {"match": {"mac": "52:54:00:AA:*"}, "inbound": {"average": 1250, "peak": "20mbit", "burst": "64k"}},
        {"match": {"guest": "db1", "index": 1}, "vlan": {"pvid": 100, "tagged": "200-202"}},
    ],
}


def test_good_policy_parses():
    host = policy.parse_host_policy(GOOD, "policy.json")
    assert host.settings == policy.Settings("warn", "dynamic", "libvirt")
    assert host.groups["web"].inbound == policy.GroupSide(ceiling=100_000_000, floor=10_000_000)
    assert host.bridges["br0"].uplink_vids == frozenset([100] + list(range(200, 211)))
    assert host.bridges["br0"].self_pvid == 10
    assert host.rules[1].inbound == policy.Rate(average=10_240_000, peak=20_000_000, burst=65536)
    assert host.rules[1].match.mac == "52:54:00:aa:*"      # MACs compare lower-case
    assert host.rules[2].vlan == policy.VlanPolicy(pvid=100, tagged=frozenset([200, 201, 202]))
    assert host.rules[0].where == "rules[0]"


def test_defaults():
    host = policy.parse_host_policy({})
    assert host.settings == policy.Settings("abort", "static", "takeover")
    assert host.rules == ()


def test_managed_bridge_denies_by_default_and_opts_out():
    host = policy.parse_host_policy({"bridges": {"br0": {}, "br1": {"default_pvid": 1}, "br2": {"default_pvid": 0}}})
    assert host.bridges["br0"].default_pvid is None and host.bridges["br2"].default_pvid is None
    assert host.bridges["br1"].default_pvid == 1
    assert policy.BridgePolicy("br3").default_pvid is None


def _bad(path, value):
    data = json.loads(json.dumps(GOOD))
    node = data
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if key.isdigit() else node[key]
    node[keys[-1]] = value
    with pytest.raises(PolicyError) as err:
        policy.parse_host_policy(data, "/etc/policy.json")
    return str(err.value)


@pytest.mark.parametrize("path, value, where, reason", [
    ("rules.1.inbound.peak", "5mbit", "rules[1].inbound.peak", "below average"),
    ("rules.1.inbound.average", "10qbit", "rules[1].inbound.average", "unknown rate unit"),
    ("rules.1.inbound.bogus", 1, "rules[1].inbound.bogus", "unknown key"),
    ("rules.0.group", "nope", "rules[0].group", "unknown group"),
    ("rules.2.vlan.pvid", 5000, "rules[2].vlan.pvid", "outside 1-4094"),
    ("rules.2.vlan.tagged", "100", "rules[2].vlan.tagged", "both the pvid and tagged"),
    ("rules.2.match.guest", None, "rules[2].match.index", "only makes sense with a guest"),
    ("rules.0.match", {}, "rules[0].match", "at least one of"),
    ("groups.web.inbound.ceiling", None, "groups.web.inbound.ceiling", "needs a ceiling"),
    ("groups.web.inbound.floor", "1gbit", "groups.web.inbound.floor", "above the group's ceiling"),
    ("bridges.br0.uplinks", "eth1", "bridges.br0.uplinks", "list of interface names"),
    ("bridges.br0.vlan_filtering", "maybe", "bridges.br0.vlan_filtering", "not a boolean"),
    ("settings.vlan_failure", "explode", "settings.vlan_failure", "not one of abort, warn"),
    ("version", 2, "version", "unsupported version"),
])
def test_errors_point_at_the_key(path, value, where, reason):
    message = _bad(path, value)
    assert message.startswith(f"/etc/policy.json: {where}: "), message
    assert reason in message


def test_rule_must_say_something():
    with pytest.raises(PolicyError, match=r"rules\[0\]: a rule needs inbound"):
        policy.parse_host_policy({"rules": [{"match": {"guest": "x"}}]})


def test_load_file(tmp_path):
    assert policy.load_host_policy(str(tmp_path / "missing.json")) == policy.HostPolicy()
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(GOOD))
    assert policy.load_host_policy(str(path)).source == str(path)
    path.write_text("{not json")
    with pytest.raises(PolicyError, match="not valid JSON"):
        policy.load_host_policy(str(path))


META = """<domain type='qemu'><name>web-1</name><uuid>0b5f8a2e-8f6a-4d27-9d8c-1c1b3c1d2e3f</uuid>
<metadata><nv:policy xmlns:nv="{ns}">
  <nv:interface mac="52:54:00:00:00:01">
    <nv:inbound average="10mbit" peak="20mbit" burst="64k"/>
    <nv:outbound average="1250"/>
    <nv:group name="web"/>
  </nv:interface>
  <!-- a comment is fine -->
  <nv:interface index="1"><nv:vlan pvid="100" untagged="yes" tagged="200,300-302" keep-default="no"/></nv:interface>
</nv:policy></metadata>
<devices/></domain>"""


def test_metadata_parses():
    dom = domxml.parse_domain(META.format(ns=policy.NS))
    rules = policy.parse_metadata(dom.policy_element, dom.name)
    assert rules[0].match == policy.PortMatch(mac="52:54:00:00:00:01")
    assert rules[0].inbound == policy.Rate(average=10_000_000, peak=20_000_000, burst=65536)
    assert rules[0].outbound == policy.Rate(average=10_240_000)
    assert rules[0].group == "web"
    assert rules[1].match == policy.PortMatch(guest="web-1", index=1)
    assert rules[1].vlan == policy.VlanPolicy(pvid=100, tagged=frozenset([200, 300, 301, 302]))


@pytest.mark.parametrize("body, needle", [
    ('<nv:interface mac="52:54:00:00:00:0a"><nv:inbound average="fast"/></nv:interface>',
     "web-1: metadata interface[0].inbound.average: cannot read 'fast'"),
    ('<nv:interface><nv:inbound average="1"/></nv:interface>', "needs mac, dev or index"),
    ('<nv:port mac="52:54:00:00:00:0a"/>', "unexpected element <port>"),
    ('<nv:interface mac="52:54:00:00:00:0a"><nv:vlan pvid="9999"/></nv:interface>', "outside 1-4094"),
    ('<nv:interface mac="52:54:00:00:00:0a"><nv:inbound average="1"/><nv:inbound average="2"/></nv:interface>', "given twice"),
])
def test_metadata_errors(body, needle):
    xml = (f"<domain><name>web-1</name><uuid>0b5f8a2e-8f6a-4d27-9d8c-1c1b3c1d2e3f</uuid>"
           f"<metadata><nv:policy xmlns:nv='{policy.NS}'>{body}</nv:policy></metadata></domain>")
    dom = domxml.parse_domain(xml)
    with pytest.raises(PolicyError, match=needle.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        policy.parse_metadata(dom.policy_element, dom.name)


# Issue #11.3: a value of the wrong type is refused naming its key, with a hint;
# a null or empty match never silently becomes "match every port".
@pytest.mark.parametrize("path, value, where, reason", [
    ("rules.1.match.mac", 41135085296, "rules[1].match.mac", "quote MAC addresses in YAML"),  # 52:54:00:12:34:56
    ("rules.1.match.mac", None, "rules[1].match.mac", "is null"),
    ("rules.1.match.mac", "", "rules[1].match.mac", "is empty"),
    ("rules.1.match.mac", "52:54:00:zz:*", "rules[1].match.mac", "not a MAC address"),
    ("rules.1.match.mac", ["52:54:00:aa:00:01"], "rules[1].match.mac", "list, not a string"),
    ("rules.0.match.guest", 1234, "rules[0].match.guest", "int, not a string: quote it in YAML"),
    ("rules.0.match.guest", None, "rules[0].match.guest", "is null"),
    ("rules.0.match.dev", 7, "rules[0].match.dev", "not a string"),
    ("rules.0.match", {"guest": None, "mac": None}, "rules[0].match.mac", "is null"),
    ("rules.0.match", None, "rules[0].match", "must be a mapping"),
    ("rules.0.group", 7, "rules[0].group", "int, not a string"),
    ("rules.0.comment", ["x"], "rules[0].comment", "not a string"),
    ("rules.2.match.index", None, "rules[2].match.index", "not an interface index"),
    ("rules.2.match.index", True, "rules[2].match.index", "not an interface index"),
    ("groups", ["web"], "groups", "must be a mapping of names"),
    ("bridges", "br0", "bridges", "must be a mapping of names"),
    ("settings", ["warn"], "settings", "must be a mapping"),
    ("rules.1.inbound.average", True, "rules[1].inbound.average", "not a number"),
    ("rules.1.inbound.average", 1.5, "rules[1].inbound.average", "has no unit"),
    ("rules.2.vlan.pvid", True, "rules[2].vlan.pvid", "not a VLAN id"),
    ("rules.2.vlan.untagged", "sometimes", "rules[2].vlan.untagged", "not a boolean"),
])
def test_values_are_typed(path, value, where, reason):
    message = _bad(path, value)
    assert message.startswith(f"/etc/policy.json: {where}: ") and reason in message, message


def test_a_typed_match_still_matches_as_before():
    host = policy.parse_host_policy({"rules": [{"match": {"mac": "52:54:00:AA:00:0?", "guest": "web-*", "dev": "vnet*"},
                                                "inbound": {"average": "1mbit"}}]})
    assert host.rules[0].match == policy.PortMatch(guest="web-*", mac="52:54:00:aa:00:0?", dev="vnet*")
