"""kernel/'s pyroute2 seams against a real kernel, under whichever pyroute2 runs the lane.

The kernel lane runs this file with pyroute2 0.7.2 (Debian python) and 0.9
(venv): a socket in a named netns, raw requests built here, the NLA class
cache (u32 raw keys), the one link model and the bridge VLAN reader.
"""
import os
import threading

import pytest

from nvhooks.errors import NetvirtError
from nvhooks.kernel import bridge as kbridge, compat, links as klinks, netlink


def _own_netns():
    return os.stat(f"/proc/self/task/{threading.get_native_id()}/ns/net").st_ino


def test_socket_in_a_named_netns(netns, veth):
    ns = netns()
    v = veth(ns, ns)
    before = _own_netns()
    with netlink.ipr(ns) as sock:
        names = set(klinks.by_name(sock))
    assert {"lo", v.name, v.peer} == names
    assert _own_netns() == before                     # the thread is back in its own namespace
    with netlink.ipr() as sock:
        assert v.name not in klinks.by_name(sock)


def test_socket_kept_by_its_caller(netns):
    sock = netlink.ipr(netns())
    try:
        assert klinks.link_index(sock, "lo") == 1
    finally:
        sock.close()


def test_missing_netns_is_named_and_not_created():
    with pytest.raises(NetvirtError, match="netns nvtnosuch: no such network namespace"):
        netlink.ipr("nvtnosuch")
    assert not os.path.exists("/run/netns/nvtnosuch")


def test_raw_requests_read_one_device(netns, veth, nsrun):
    """compat.request: GETs built here (root, ingress, leaf qdiscs, class dump) and "none there"."""
    ns = netns()
    v = veth(ns, ns)
    nsrun(ns, "tc", "qdisc", "add", "dev", v.name, "root", "handle", "1:", "htb", "default", "10")
    nsrun(ns, "tc", "class", "add", "dev", v.name, "parent", "1:", "classid", "1:10", "htb", "rate", "10mbit")
    nsrun(ns, "tc", "qdisc", "add", "dev", v.name, "parent", "1:10", "handle", "10:", "pfifo")
    with netlink.ipr(ns) as sock:
        index = klinks.link_index(sock, v.name)
        qdiscs, classes = netlink.dev_tc(sock, index)
        assert sorted((m.get_attr("TCA_KIND"), m["handle"]) for m in qdiscs) == [("htb", 0x10000), ("pfifo", 0x100000)]
        assert [(m["handle"], m["info"]) for m in classes] == [(0x10010, 0x100000)]
        from pyroute2.netlink.rtnl import RTM_GETQDISC
        assert netlink._tc_get(sock, RTM_GETQDISC, index, parent=0xFFFFFFF1) == []   # pylint: disable=protected-access
        from pyroute2.netlink.exceptions import NetlinkError
        from pyroute2.netlink import NLM_F_ACK, NLM_F_REQUEST
        from pyroute2.netlink.rtnl.tcmsg import tcmsg
        msg = tcmsg()
        msg["index"], msg["parent"] = 0x7FFFFFF0, 0xFFFFFFFF       # no such device
        with pytest.raises(NetlinkError) as err:
            compat.request(sock, msg, RTM_GETQDISC, NLM_F_REQUEST | NLM_F_ACK)
        assert err.value.code == 19                                  # ENODEV


def test_u32_raw_keys_reach_the_kernel(netns, veth, nsrun):
    """The NLA class cache seam: a member filter with MAC keys at negative offsets, as tc shows it."""
    ns = netns()
    v = veth(ns, ns)
    nsrun(ns, "tc", "qdisc", "add", "dev", v.name, "root", "handle", "1:", "htb", "default", "10")
    nsrun(ns, "tc", "class", "add", "dev", v.name, "parent", "1:", "classid", "1:10", "htb", "rate", "10mbit")
    keys = netlink.mac_keys("52:54:00:ab:cd:ef", -8)
    with netlink.ipr(ns) as sock:
        index = klinks.link_index(sock, v.name)
        netlink.add_u32_raw(sock, index, 0x10000, 10, 0x80000800, 0x10010, keys)
        _q, _c, filters = netlink.dump(sock, index)
        (ours,) = [m for m in filters if netlink.filter_keys(m)]
        assert netlink.keys_mac(netlink.filter_keys(ours)) == ("52:54:00:ab:cd:ef", -8)
    shown = nsrun(ns, "tc", "filter", "show", "dev", v.name).stdout
    assert "match 525400ab/ffffffff at -8" in shown and "match cdef0000/ffff0000 at -4" in shown, shown
    assert "flowid 1:10" in shown


def test_link_model_and_vlan_reader(netns, veth, bridge, nsrun, kprobe):
    ns = netns()
    capable = kprobe.bridge_vlan_filtering()
    br = bridge(ns=ns, **({"vlan_filtering": "1"} if capable else {}))
    port = veth(ns, ns)
    nsrun(ns, "ip", "link", "set", port.name, "master", br)
    nsrun(ns, "ip", "link", "set", port.name, "alias", "nvt alias")
    with netlink.ipr(ns) as sock:
        found = klinks.by_name(sock)
        link = klinks.lookup(sock, port.name)
        assert tuple(link) == (found[port.name].index, port.name, "veth", "nvt alias")
        assert link.master == found[br].index and found[br].is_bridge
        assert found[br].vlan_capable is capable and found[br].vlan_filtering is capable
        assert klinks.lookup_index(sock, link.index).name == port.name
        tables = kbridge.read_tables(sock)
    if capable:
        assert tables[link.index] == {1: kbridge.FLAG_PVID | kbridge.FLAG_UNTAGGED}
    else:
        assert tables.get(link.index, {}) == {}


def test_ifb_links_and_changes(netns):
    ns = netns()
    with netlink.ipr(ns) as sock:
        try:
            index = klinks.add_ifb(sock, "nvti0", "netvirt test")
        except NetvirtError as err:
            pytest.skip(str(err))
        assert [tuple(x) for x in klinks.ifb_links(sock)] == [(index, "nvti0", "ifb", "netvirt test")]
        klinks.set_link(sock, index, group=0x40000001)
        klinks.del_links(sock, 0x40000001, [index])
        assert klinks.ifb_links(sock) == []
