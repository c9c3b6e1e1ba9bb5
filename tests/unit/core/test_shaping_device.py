"""shaping/device.py, the tc_shape module's call: plan from arguments, the query view, the result (no kernel)."""
from types import SimpleNamespace

import pytest

from nvhooks.change import Failed
from nvhooks.policy.model import Rate
from nvhooks.shaping import device, plan as tcplan
from nvhooks.shaping.caps import Caps

CAPS = Caps(leaf="fq_codel", tick_in_usec=15.625)


def params(**given):
    out = dict(device="vnet3", netns=None, state="present", inbound=None, outbound=None, group=None, mac=None)
    out.update(given)
    return out


def test_where_names_the_netns_when_given():
    assert device.where(params()) == "device vnet3"
    assert device.where(params(netns="lab1")) == "device vnet3 (netns lab1)"


def test_build_plan_from_arguments_ignores_unset_suboptions():
    plan = device.build_plan(params(inbound={"average": "10mbit", "peak": None, "burst": None, "floor": None},
                                    outbound={"average": 1250, "peak": None, "burst": None, "floor": None}), CAPS)
    assert plan.label == "device vnet3" and plan.present
    assert plan.describe() == tcplan.plan_device("vnet3", CAPS, inbound=_rate(10_000_000),
                                                 outbound=_rate(1250 * 8192), label="device vnet3").describe()


def _rate(bits):
    return Rate(average=bits)


def test_build_plan_group_and_absent():
    group = {"name": "web", "inbound": None, "outbound": {"ceiling": "1gbit", "floor": None, "burst": None}}
    plan = device.build_plan(params(group=group, mac="52:54:00:AA:BB:CC"), CAPS)
    assert plan.groups == ("web",) and plan.mac == "52:54:00:aa:bb:cc"
    gone = device.build_plan(params(state="absent", mac="52:54:00:AA:BB:CC", netns="ns1"), CAPS)
    assert not gone.present and gone.port_ifbs == (tcplan.port_ifb("vnet3"),) and gone.label == \
        "device vnet3 (netns ns1)"


@pytest.mark.parametrize("given, message", [
    (dict(inbound={"average": "0"}), "device vnet3: inbound.average: '0' must be greater than zero"),
    (dict(), "device vnet3: nothing to shape: give an average (or a group)"),
    (dict(group={"name": "g", "inbound": {"ceiling": "1mbit"}, "outbound": None}),
     "device vnet3: group 'g' needs the guest's MAC to tell members apart"),
])
def test_errors_name_device_and_field_and_carry_device_and_netns(monkeypatch, given, message):
    monkeypatch.setattr(device.nvcaps, "get", lambda: CAPS)
    with pytest.raises(Failed) as caught:
        device.run(params(**given))
    assert str(caught.value) == message and caught.value.fields == {"device": "vnet3", "netns": None}


@pytest.mark.parametrize("alias, role", [
    (tcplan.port_ifb_alias("vnet3"), (None, "outbound")),
    (tcplan.group_ifb_alias("web", "inbound"), ("web", "inbound")),
    (tcplan.group_ifb_alias("a b", "outbound"), ("a b", "outbound")),
    ("something else", (None, None)), (None, (None, None)), ("netvirt ", (None, None)),
])
def test_alias_role_inverts_the_alias_the_planner_gives(alias, role):
    assert device.alias_role(alias) == role


def _cls(classid, rate=1250000, **counters):
    return dict({"id": classid, "rate": rate, "ceil": rate * 2, "burst": 65536}, **counters)


def test_query_view_names_direction_and_group_per_class():
    port_ifb, group_ifb = tcplan.port_ifb("vnet3"), tcplan.group_ifb("web", "inbound")
    live = {"devices": {
        "vnet3": {"kind": "tun", "alias": None, "classes": [_cls(0x10001, bytes=10, packets=1)]},
        port_ifb: {"kind": "ifb", "alias": tcplan.port_ifb_alias("vnet3"), "classes": [_cls(0x10001)]},
        group_ifb: {"kind": "ifb", "alias": tcplan.group_ifb_alias("web", "inbound"),
                    "classes": [{"text": "class htb 1:12 dev x", "rate": 1000, "ceil": 1000, "burst": 1600}]},
        "foreign0": {"kind": "ifb", "alias": "not ours", "classes": [_cls(0x20001)]}}}
    view = device.query_view("vnet3", live)
    assert view["present"] and view["devices"] is live["devices"]
    got = {(c["device"], c["classid"]): (c["direction"], c["group"]) for c in view["classes"]}
    assert got == {("vnet3", "1:1"): ("inbound", None), (port_ifb, "1:1"): ("outbound", None),
                   (group_ifb, "1:12"): ("inbound", "web"), ("foreign0", "2:1"): ("outbound", None)}
    first = next(c for c in view["classes"] if c["device"] == "vnet3")
    assert first == {"device": "vnet3", "classid": "1:1", "direction": "inbound", "group": None, "rate": "10mbit",
                     "ceil": "20mbit", "burst": "64KiB", "bytes": 10, "packets": 1, "drops": 0, "overlimits": 0}
    assert device.query_view("vnet3", {"devices": {"vnet3": {"classes": []}}})["present"] is False


def test_run_present_returns_the_change_as_the_module_did(monkeypatch):
    seen = {}

    def apply(plan, caps, check_mode=False):
        seen.update(plan=plan, check_mode=check_mode)
        return SimpleNamespace(changed=True, actions=[SimpleNamespace(text=lambda: "add qdisc htb 1: dev vnet3 root")],
                               before={}, after={"vnet3": ["qdisc htb 1: dev vnet3 root default 1"]},
                               warnings=["replaces qdisc tbf"])
    monkeypatch.setattr(device.nvcaps, "get", lambda: CAPS)
    monkeypatch.setattr(device.tcapply, "apply", apply)
    result, warnings = device.run(params(netns="lab1", inbound={"average": "10mbit"}), check=True, diff=True)
    assert seen["check_mode"] is True and seen["plan"].netns == "lab1"
    assert warnings == ["replaces qdisc tbf"]
    assert result == {"changed": True, "device": "vnet3", "netns": "lab1",
                      "changes": ["add qdisc htb 1: dev vnet3 root"], "plan": seen["plan"].describe(),
                      "shaping": {"vnet3": ["qdisc htb 1: dev vnet3 root default 1"]},
                      "diff": {"before": "", "after": "qdisc htb 1: dev vnet3 root default 1\n",
                               "before_header": "device vnet3 (netns lab1) (live)",
                               "after_header": "device vnet3 (netns lab1) (planned)"}}
    assert "diff" not in device.run(params(inbound={"average": "10mbit"}))[0]


def test_run_query(monkeypatch):
    monkeypatch.setattr(device.nvcaps, "get", lambda: CAPS)
    monkeypatch.setattr(device.tcapply, "query", lambda dev, netns=None, caps=None: {
        "device": dev, "netns": netns, "devices": {dev: {"kind": "veth", "alias": None, "classes": []}}})
    result, warnings = device.run(params(state="query"), diff=True)
    assert warnings == [] and result == {"changed": False, "device": "vnet3", "netns": None, "present": False,
                                         "classes": [], "devices": {"vnet3": {"kind": "veth", "alias": None,
                                                                              "classes": []}}}


def test_shape_text_is_every_device_sorted():
    assert device.shape_text({"b": ["2"], "a": ["1", "1b"]}) == "1\n1b\n2\n" and device.shape_text({}) == ""
