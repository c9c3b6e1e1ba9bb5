"""Port isolation as policy: parsing (typed), precedence, explain, the hook's cheap check, the plan."""
import logging

import pytest

from nvhooks.errors import KernelError, PolicyError
from nvhooks.kernel.links import Link
from nvhooks.policy import domxml, model as policy, resolve
from nvhooks.vlan import hook as vlanhook, isolation

NS = "https://github.com/netvirt/libvirt_hooks/xmlns/policy/1"


def guest(meta="", name="g1", dev="vnet0"):
    meta = f"<metadata><nv:policy xmlns:nv='{NS}'>{meta}</nv:policy></metadata>" if meta else ""
    return (f"<domain type='qemu'><name>{name}</name><uuid>4f1ad3a6-5b9e-4c61-9d7e-0f5c1b1a2b3c</uuid>{meta}"
            f"<devices><interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br0'/>"
            f"<target dev='{dev}'/></interface>"
            "<interface type='ethernet'><mac address='52:54:00:00:00:02'/><target dev='tap9'/></interface>"
            "</devices></domain>").encode()


class Ev:
    def __init__(self, op="start", subop="begin", name="g1"):
        self.driver, self.op, self.subop, self.guest = "qemu", op, subop, name


@pytest.fixture(autouse=True)
def scratch(tmp_path, monkeypatch):
    monkeypatch.setenv("NETVIRT_HOOKS_ROOT", str(tmp_path))
    return tmp_path


def test_host_rule_isolated_beside_vlan_or_alone():
    host = policy.parse_host_policy({"rules": [
        {"match": {"guest": "web-*"}, "isolated": True},
        {"match": {"guest": "db"}, "vlan": {"pvid": 100}, "isolated": "no"}]})
    assert host.rules[0].isolated is True and host.rules[0].vlan is None
    assert host.rules[1].isolated is False and host.rules[1].vlan.pvid == 100


@pytest.mark.parametrize("value", ["maybe", 2, None, [True]])
def test_non_boolean_isolated_is_refused_naming_its_key(value):
    with pytest.raises(PolicyError, match=r"rules\[0\]\.isolated: .*not a boolean"):
        policy.parse_host_policy({"rules": [{"match": {"guest": "g"}, "isolated": value}]})


def test_metadata_attribute():
    dom = domxml.parse_domain(guest("<nv:interface mac='52:54:00:00:00:01' isolated='yes'/>"))
    (rule,) = policy.parse_metadata(dom.policy_element, dom.name)
    assert rule.isolated is True and rule.match.mac == "52:54:00:00:00:01" and rule.vlan is None
    bad = domxml.parse_domain(guest("<nv:interface index='0' isolated='perhaps'/>"))
    with pytest.raises(PolicyError, match=r"g1: metadata interface\[0\]\.isolated: 'perhaps' is not a boolean"):
        policy.parse_metadata(bad.policy_element, bad.name)


def test_precedence_and_explain():
    dom = domxml.parse_domain(guest("<nv:interface index='0' isolated='yes'/>"))
    port = resolve.resolve(dom)[0]
    assert port.isolated is True and port.sources["isolated"] == "metadata interface[0]"
    host = policy.parse_host_policy({"rules": [{"match": {"guest": "g1"}, "isolated": False}]})
    ports = resolve.resolve(dom, host)
    assert ports[0].isolated is False and ports[0].sources["isolated"] == "host policy rules[0]"
    explained = resolve.explain(dom, host)["ports"]
    assert explained[0]["values"]["isolated"] == {"value": False, "source": "host policy rules[0]"}
    assert explained[1]["values"]["isolated"]["value"] is False
    on_all = policy.parse_host_policy({"rules": [{"match": {"guest": "g1"}, "isolated": True}]})
    assert "isolated ignored: a ethernet port is not a Linux bridge port" in resolve.explain(dom, on_all)["ports"][1]["notes"]
    assert isolation.candidates(ports) == [ports[0]]                 # the ethernet tap is no bridge port


def test_wants_isolation(scratch):
    plain = guest()
    assert not vlanhook.wants(Ev(), plain, policy.HostPolicy())
    ruled = policy.parse_host_policy({"rules": [{"match": {"guest": "g1"}, "isolated": True}]})
    assert vlanhook.wants(Ev(), plain, ruled) and not vlanhook.wants(Ev(name="other"), plain, ruled)
    assert vlanhook.wants(Ev(), guest("<nv:interface index='0' isolated='yes'/>"), policy.HostPolicy())
    (scratch / "run" / "netvirt-hooks" / "isolated").mkdir(parents=True)
    (scratch / "run" / "netvirt-hooks" / "isolated" / "vnet0").write_text("7\n")
    assert vlanhook.wants(Ev("reconnect"), plain, policy.HostPolicy())   # ours may need turning off
    assert not vlanhook.wants(Ev("reconnect"), guest(dev="vnet1"), policy.HostPolicy())   # not its tap


class FakeNl:
    def __init__(self):
        self.calls = []

    def brport(self, command, **kwargs):
        self.calls.append((command, kwargs))


def links(isolated=False, index=7):
    return {"br0": Link(1, "br0", "bridge", default_pvid=None),
            "vnet0": Link(index, "vnet0", master=1, isolated=isolated),
            "eth9": Link(8, "eth9")}


def port_of(meta="", host=None, dev="vnet0"):
    return resolve.resolve(domxml.parse_domain(guest(meta, dev=dev)), host)[0]


def test_on_records_off_only_what_we_set(scratch):
    nl, on = FakeNl(), port_of("<nv:interface index='0' isolated='yes'/>")
    predicted = isolation.set_port(nl, on, links(), check=True)
    assert predicted["changed"] and predicted["actions"] == ["set dev vnet0 isolated on"] and not nl.calls
    assert isolation.recorded("vnet0") is None                          # check mode records nothing
    kernel = links()
    assert isolation.set_port(nl, on, kernel)["after"] == {"isolated": True}
    assert nl.calls == [("set", {"index": 7, "isolated": 1})] and isolation.recorded("vnet0") == 7
    assert not isolation.set_port(nl, on, kernel)["changed"]             # idempotent
    silent = port_of()                                                   # the policy no longer says so
    assert isolation.candidates([silent]) == [silent]
    result = isolation.set_port(nl, silent, kernel)
    assert result["actions"] == ["set dev vnet0 isolated off"] and nl.calls[-1] == ("set", {"index": 7, "isolated": 0})
    assert isolation.recorded("vnet0") is None and isolation.candidates([silent]) == []


def test_flag_set_by_libvirt_is_left_alone(scratch):
    nl, silent = FakeNl(), port_of()
    assert isolation.candidates([silent]) == []                          # not ours: not even looked at
    (scratch / "run" / "netvirt-hooks" / "isolated").mkdir(parents=True)
    (scratch / "run" / "netvirt-hooks" / "isolated" / "vnet0").write_text("3\n")   # another tap of that name
    result = isolation.set_port(nl, silent, links(isolated=True))
    assert not result["changed"] and result["after"] == {"isolated": True} and not nl.calls
    assert isolation.recorded("vnet0") is None                          # the stale record is gone
    off = port_of("<nv:interface index='0' isolated='no'/>")            # an explicit false wins
    assert isolation.set_port(nl, off, links(isolated=True))["actions"] == ["set dev vnet0 isolated off"]


def test_errors_fail_closed(scratch, caplog):
    on = port_of("<nv:interface index='0' isolated='yes'/>", dev="eth9")
    with pytest.raises(PolicyError, match="port eth9: is not a port of any bridge"):
        isolation.set_port(FakeNl(), on, links())
    missing = port_of("<nv:interface index='0' isolated='yes'/>", dev="vnet5")
    with pytest.raises(KernelError, match="port vnet5: no such interface"):
        isolation.set_port(FakeNl(), missing, links())
    log = logging.getLogger("nvt.unit")
    with pytest.raises(KernelError, match=r"guest g1: g1 port 0 \(vnet5.*no such interface"):
        vlanhook._report("g1", [KernelError("no such interface", "g1 port 0 (vnet5, x): port vnet5")],
                         policy.HostPolicy(), log)
