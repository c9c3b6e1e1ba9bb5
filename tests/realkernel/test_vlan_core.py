"""VLAN core on a kernel with bridge VLAN filtering (real-kernel lane only).

Every assertion compares with what `bridge -j vlan show` reports, so the
core's own reader is checked against iproute2 too.
"""
import importlib.util
import json
import os

import pytest

from nvhooks.kernel import bridge as kbridge, links as klinks, netlink
from nvhooks.vlan import apply as vlanapply
from nvhooks.errors import KernelError, PolicyError

_spec = importlib.util.spec_from_file_location(
    "nvt_kernel_fixtures", os.path.join(os.path.dirname(__file__), "..", "kernel", "conftest.py"))
_fx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fx)
nsrun = _fx.nsrun


@pytest.fixture
def lan(netns, veth, bridge, kprobe):
    if not kprobe.bridge_vlan_filtering():
        pytest.fail("this kernel lacks bridge VLAN filtering: run tests/realkernel under virtme-ng "
                    "(make test-realkernel)", pytrace=False)
    ns = netns()
    br = bridge(ns=ns, name="nvtb0", vlan_filtering="1")
    for i in range(3):
        veth(ns, ns, name=f"nvtp{i}", peer=f"nvtq{i}")
    for i in range(2):
        nsrun(ns, "ip", "link", "set", f"nvtp{i}", "master", br)
    with netlink.ipr(ns) as nl:
        yield ns, br, nl


def kernel_table(ns, dev):
    """{vid: flags} as iproute2 sees it (independent of our reader)."""
    data = json.loads(nsrun(ns, "bridge", "-j", "vlan", "show", "dev", dev).stdout or "[]")
    table = {}
    for entry in (data[0]["vlans"] if data else []):
        flags = entry.get("flags", [])
        bits = (vlanapply.FLAG_PVID if "PVID" in flags else 0) | (
            vlanapply.FLAG_UNTAGGED if "Egress Untagged" in flags else 0)
        for vid in range(entry["vlan"], entry.get("vlanEnd", entry["vlan"]) + 1):
            table[vid] = bits
    return table


def test_reader_matches_iproute2(lan):
    ns, br, nl = lan
    nsrun(ns, "bridge", "vlan", "add", "dev", "nvtp0", "vid", "300-305")
    nsrun(ns, "bridge", "vlan", "add", "dev", "nvtp0", "vid", "7", "pvid", "untagged")
    index = klinks.by_name(nl)["nvtp0"].index
    assert kbridge.read_tables(nl).get(index, {}) == kernel_table(ns, "nvtp0")
    assert kernel_table(ns, "nvtp0")[7] == vlanapply.FLAG_PVID | vlanapply.FLAG_UNTAGGED


def test_check_real_check(lan):
    ns, br, nl = lan
    assert kernel_table(ns, "nvtp0") == {1: 6}          # the bridge's default pvid
    want = vlanapply.wish(100, True, {200, 201, 202, 210})
    predicted = vlanapply.set_port(nl, "nvtp0", want, check=True, bridge=br)
    assert predicted["changed"]
    assert kernel_table(ns, "nvtp0") == {1: 6}          # check mode changed nothing
    real = vlanapply.set_port(nl, "nvtp0", want, bridge=br)
    assert real == predicted
    assert kernel_table(ns, "nvtp0") == want
    assert real["after"] == {"pvid": 100, "vids": "100,200-202,210", "untagged": "100", "tagged": "200-202,210"}
    assert real["actions"] == ["del dev nvtp0 vid 1", "add dev nvtp0 vid 200-202", "add dev nvtp0 vid 210",
                               "add dev nvtp0 vid 100 pvid untagged"]
    again = vlanapply.set_port(nl, "nvtp0", want, check=True, bridge=br)
    assert not again["changed"] and again["actions"] == []


def test_big_range_one_message(lan):
    ns, br, nl = lan
    want = vlanapply.wish(vids=set(range(2, 4095)))
    result = vlanapply.set_port(nl, "nvtp0", want)
    assert result["actions"] == ["del dev nvtp0 vid 1", "add dev nvtp0 vid 2-4094"]
    assert kernel_table(ns, "nvtp0") == want


def test_non_exclusive_and_remove(lan):
    ns, br, nl = lan
    vlanapply.set_port(nl, "nvtp0", vlanapply.wish(100, True, {200}))
    add = vlanapply.set_port(nl, "nvtp0", vlanapply.wish(vids={300, 301}), exclusive=False)
    assert add["actions"] == ["add dev nvtp0 vid 300-301"]
    assert kernel_table(ns, "nvtp0") == {100: 6, 200: 0, 300: 0, 301: 0}
    removed = vlanapply.set_port(nl, "nvtp0", {}, exclusive=False, remove={200, 300, 999})
    assert removed["actions"] == ["del dev nvtp0 vid 200", "del dev nvtp0 vid 300"]
    assert kernel_table(ns, "nvtp0") == {100: 6, 301: 0}


def test_pvid_moves_and_tagged_pvid(lan):
    ns, br, nl = lan
    vlanapply.set_port(nl, "nvtp0", vlanapply.wish(100, True, {200}))
    moved = vlanapply.set_port(nl, "nvtp0", vlanapply.wish(200, False), exclusive=False, check=True)
    vlanapply.set_port(nl, "nvtp0", vlanapply.wish(200, False), exclusive=False)
    assert kernel_table(ns, "nvtp0") == {100: 4, 200: 2}     # old pvid keeps only untagged
    assert kbridge.read_tables(nl).get(klinks.by_name(nl)["nvtp0"].index) == {100: 4, 200: 2}
    assert moved["after"]["pvid"] == 200


def test_keep_default(lan):
    ns, br, nl = lan
    vlanapply.set_port(nl, "nvtp0", vlanapply.wish(100), protect={1})
    assert kernel_table(ns, "nvtp0") == {1: 4, 100: 6}


def test_bridge_switches(lan):
    ns, br, nl = lan
    same = vlanapply.set_bridge(nl, br, vlan_filtering=True, default_pvid=1)
    assert not same["changed"]
    # default_pvid while filtering is on: needs filtering off for a moment
    changed = vlanapply.set_bridge(nl, br, vlan_filtering=True, default_pvid=10)
    assert changed["actions"] == ["vlan_filtering 0", "vlan_default_pvid 10", "vlan_filtering 1"]
    link = klinks.by_name(nl)[br]
    assert (link.vlan_filtering, link.default_pvid) == (True, 10)
    assert kernel_table(ns, "nvtp1") == {10: 6}
    off = vlanapply.set_bridge(nl, br, vlan_filtering=False)
    assert off["after"]["vlan_filtering"] is False and klinks.by_name(nl)[br].vlan_filtering is False
    with pytest.raises(KernelError, match="bridge nvtb0: vlan_filtering is off"):
        vlanapply.set_port(nl, "nvtp0", vlanapply.wish(100), need_filtering=True)


def test_bridge_self_vlans(lan):
    ns, br, nl = lan
    result = vlanapply.set_self(nl, br, vlanapply.wish(vids={50, 51}), protect={1})
    assert result["actions"] == ["add dev nvtb0 self vid 50-51"]
    assert kernel_table(ns, br) == {1: 6, 50: 0, 51: 0}
    assert not vlanapply.set_self(nl, br, vlanapply.wish(vids={50, 51}), protect={1})["changed"]
    query = vlanapply.query(nl, bridge=br)
    assert query["table"]["tagged"] == "50-51" and "nvtp0" in query["ports"]


def test_errors(lan):
    ns, br, nl = lan
    with pytest.raises(PolicyError, match="port nvtp2: is not a port of any bridge"):
        vlanapply.set_port(nl, "nvtp2", vlanapply.wish(100))
    with pytest.raises(KernelError, match="port nvtx: no such interface"):
        vlanapply.set_port(nl, "nvtx", vlanapply.wish(100))
    with pytest.raises(PolicyError, match="both the pvid and in vids"):
        vlanapply.wish(100, True, {100})
