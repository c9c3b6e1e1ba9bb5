"""vlan/port.py, the bridge_vlan module's call, against a fake netlink socket (no root, no kernel)."""
import pytest

from nvhooks.change import Failed
from nvhooks.vlan import port as vlanport

PVID, UNTAGGED, RANGE_BEGIN, RANGE_END = 0x2, 0x4, 0x8, 0x10
PU = PVID | UNTAGGED


class _Attrs:
    def __init__(self, **attrs):
        self.attrs = attrs

    def get_attr(self, name):
        return self.attrs.get(name)

    def __getitem__(self, key):
        return self.attrs[key]


class FakeNetlink:
    """The part of an IPRoute the VLAN core uses: links, VLAN tables, vlan_filter, bridge link set."""

    def __init__(self, filtering=True, capable=True):
        self.links = {1: dict(name="br0", kind="bridge", filtering=filtering, default_pvid=1 if capable else None),
                      2: dict(name="p0", master=1), 3: dict(name="p1", master=1),
                      4: dict(name="br1", kind="bridge", filtering=filtering, default_pvid=1 if capable else None),
                      5: dict(name="lone")}
        self.tables = {1: {1: PU}, 2: {1: PU}, 3: {1: PU}, 4: {1: PU}}
        self.sent, self.closed = [], False

    def get_links(self):
        out = []
        for index, link in sorted(self.links.items()):
            data = None
            if link.get("kind") == "bridge":
                data = _Attrs(IFLA_BR_VLAN_FILTERING=int(link["filtering"]),
                              IFLA_BR_VLAN_DEFAULT_PVID=link["default_pvid"])
            info = _Attrs(IFLA_INFO_KIND=link.get("kind", "veth"), IFLA_INFO_DATA=data)
            out.append(_Attrs(index=index, IFLA_IFNAME=link["name"], IFLA_MASTER=link.get("master"),
                              IFLA_LINKINFO=info))
        return out

    def get_vlans(self):
        out = []
        for index, table in sorted(self.tables.items()):
            infos = [("IFLA_BRIDGE_VLAN_INFO", {"vid": vid, "flags": flags}) for vid, flags in sorted(table.items())]
            out.append(_Attrs(index=index, IFLA_AF_SPEC={"attrs": infos}))
        return out

    def vlan_filter(self, op, index, af_spec):
        entries = [info for name, info in af_spec["attrs"] if name == "IFLA_BRIDGE_VLAN_INFO"]
        self.sent.append((op, index, [(e["vid"], e["flags"]) for e in entries]))
        if entries[0]["flags"] & RANGE_BEGIN:
            vids = range(entries[0]["vid"], entries[1]["vid"] + 1)
        else:
            vids = [entries[0]["vid"]]
        flags = entries[-1]["flags"] & PU
        table = self.tables.setdefault(index, {})
        for vid in vids:
            if op == "del":
                table.pop(vid, None)
                continue
            if flags & PVID:
                for other in table:
                    table[other] &= ~PVID
            table[vid] = flags

    def link(self, command, index, kind=None, **attrs):
        assert command == "set" and kind == "bridge"
        self.sent.append(("link", index, attrs))
        if "br_vlan_filtering" in attrs:
            self.links[index]["filtering"] = bool(attrs["br_vlan_filtering"])
        if "br_vlan_default_pvid" in attrs:
            self.links[index]["default_pvid"] = attrs["br_vlan_default_pvid"]

    def close(self):
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def params(**given):
    out = dict(port=None, bridge=None, netns=None, pvid=None, untagged=True, vids=[], exclusive=False,
               state="present", vlan_filtering=None, default_pvid=None)
    out.update(given)
    return out


@pytest.fixture
def nl(monkeypatch):
    fake = FakeNetlink()
    monkeypatch.setattr(vlanport, "socket", lambda netns: fake)
    return fake


def test_access_port_exclusive_check_then_real_then_idempotent(nl):
    p = params(port="p0", bridge="br0", pvid=100, vids=["200-210"], exclusive=True)
    check, warnings = vlanport.run(p, check=True, diff=True)
    assert warnings == [] and nl.sent == [] and nl.closed
    assert check == {
        "changed": True, "port": "p0", "bridge": "br0",
        "before": {"pvid": 1, "vids": "1", "untagged": "1", "tagged": ""},
        "after": {"pvid": 100, "vids": "100,200-210", "untagged": "100", "tagged": "200-210"},
        "actions": ["del dev p0 vid 1", "add dev p0 vid 200-210", "add dev p0 vid 100 pvid untagged"],
        "vlan_filtering": True,
        "diff": {"before": "pvid: 1\nuntagged: 1\ntagged: none\n",
                 "after": "pvid: 100\nuntagged: 100\ntagged: 200-210\n",
                 "before_header": "p0", "after_header": "p0"}}
    real = vlanport.run(p)[0]
    assert real["changed"] and real["after"] == check["after"] and "diff" not in real
    assert nl.tables[2] == {100: PU, **{vid: 0 for vid in range(200, 211)}}
    again = vlanport.run(p, diff=True)[0]
    assert not again["changed"] and again["actions"] == [] and "diff" not in again   # no diff when unchanged


def test_absent_without_ids_removes_everything_and_listed_ids_only_those(nl):
    vlanport.run(params(port="p0", pvid=100, vids=[5, 6]))
    some = vlanport.run(params(port="p0", vids=[6], state="absent"))[0]
    assert some["actions"] == ["del dev p0 vid 6"] and some["after"]["vids"] == "1,5,100"
    every = vlanport.run(params(port="p0", state="absent"))[0]
    assert every["after"] == {"pvid": None, "vids": "", "untagged": "", "tagged": ""} and nl.tables[2] == {}


def test_port_on_a_bridge_without_filtering_warns(monkeypatch):
    fake = FakeNetlink(filtering=False)
    monkeypatch.setattr(vlanport, "socket", lambda netns: fake)
    result, warnings = vlanport.run(params(port="p1", vids=[7]))
    assert result["changed"] and result["vlan_filtering"] is False
    assert warnings == ["bridge br0 does not filter VLANs (vlan_filtering off): the kernel keeps the port's "
                        "VLANs but does not enforce them"]


def test_bridge_switches_and_own_vlans_are_one_change(nl):
    result = vlanport.run(params(bridge="br0", vlan_filtering=True, default_pvid=0, vids=[50]), diff=True)[0]
    assert result == {
        "changed": True, "bridge": "br0",
        "before": {"vlan_filtering": True, "default_pvid": 1, "pvid": 1, "vids": "1", "untagged": "1", "tagged": ""},
        "after": {"vlan_filtering": True, "default_pvid": 0, "pvid": 1, "vids": "1,50", "untagged": "1",
                  "tagged": "50"},
        "actions": ["vlan_filtering 0", "vlan_default_pvid 0", "vlan_filtering 1", "add dev br0 self vid 50"],
        "diff": {"before": "vlan_filtering: True\ndefault_pvid: 1\npvid: 1\nuntagged: 1\ntagged: none\n",
                 "after": "vlan_filtering: True\ndefault_pvid: 0\npvid: 1\nuntagged: 1\ntagged: 50\n",
                 "before_header": "br0", "after_header": "br0"}}
    assert nl.links[1]["default_pvid"] == 0 and nl.tables[1] == {1: PU, 50: 0}
    assert not vlanport.run(params(bridge="br0", vlan_filtering=True, default_pvid=0, vids=[50]))[0]["changed"]


def test_bridge_absent_self_vlans_only(nl):
    result = vlanport.run(params(bridge="br0", state="absent"), check=True)[0]
    assert result["actions"] == ["del dev br0 self vid 1"]
    assert set(result) == {"changed", "bridge", "before", "after", "actions"}


def test_query_port_and_bridge(nl):
    vlanport.run(params(port="p0", pvid=100, vids=["200-201"], exclusive=True))
    port = vlanport.run(params(port="p0", state="query"))[0]
    assert port == {"port": "p0", "bridge": "br0", "vlan_filtering": True, "changed": False,
                    "table": {"pvid": 100, "vids": "100,200-201", "untagged": "100", "tagged": "200-201"},
                    "lines": ["100 pvid untagged", "200-201"]}
    bridge = vlanport.run(params(bridge="br0", state="query"))[0]
    assert bridge["ports"]["p0"]["vids"] == "100,200-201" and bridge["default_pvid"] == 1 and not bridge["changed"]


@pytest.mark.parametrize("given, message", [
    (dict(port="p0"), "port p0: state=present needs pvid or vids"),
    (dict(port="p0", pvid=100, vids=[100]), "pvid: VLAN 100 is both the pvid and in vids"),
    (dict(port="p0", vids=["5000"]), "vids: VLAN id 5000 is outside 1-4094"),
    (dict(port="p0", bridge="br1", pvid=3), "port p0: is a port of bridge br0, not of bridge br1"),
    (dict(port="lone", pvid=3), "port lone: is not a port of any bridge"),
    (dict(port="nope", pvid=3), "port nope: no such interface"),
    (dict(bridge="br0"), "bridge br0: nothing to do: give vlan_filtering, default_pvid, pvid or vids"),
    (dict(bridge="nope", vids=[3]), "bridge nope: no such bridge"),
])
def test_errors_are_failed_with_the_core_text_and_change_nothing(nl, given, message):
    with pytest.raises(Failed) as caught:
        vlanport.run(params(**given))
    assert str(caught.value) == message and caught.value.fields == {}
    assert nl.sent == []


def test_kernel_without_vlan_filtering_fails_closed(monkeypatch):
    fake = FakeNetlink(capable=False)
    monkeypatch.setattr(vlanport, "socket", lambda netns: fake)
    with pytest.raises(Failed, match="bridge br0: this kernel has no bridge VLAN filtering"):
        vlanport.run(params(port="p0", pvid=3))
    assert fake.closed


def test_diff_text_names_empty_sets_none():
    text = vlanport.diff_text({"pvid": None, "tagged": "", "untagged": "5"})
    assert text == "pvid: none\nuntagged: 5\ntagged: none\n"
