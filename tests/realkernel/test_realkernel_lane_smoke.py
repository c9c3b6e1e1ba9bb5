"""Proves the real-kernel lane: features the host kernel lacks are really there."""


def test_vlan_filtering_bridge(netns, veth, bridge, nsrun, kprobe):
    assert kprobe.bridge_vlan_filtering()
    ns = netns()
    br = bridge(ns=ns, vlan_filtering=1)
    v = veth(ns)
    nsrun(ns, "ip", "link", "set", v.name, "master", br)
    nsrun(ns, "bridge", "vlan", "add", "dev", v.name, "vid", "100", "pvid", "untagged")
    assert "100" in nsrun(ns, "bridge", "vlan", "show", "dev", v.name).stdout


def test_qdiscs_and_police(kprobe):
    assert kprobe.qdisc("sfq") and kprobe.qdisc("fq_codel")
    assert kprobe.tc("filter", "add", "dev", "d0", "parent", "ffff:", "u32", "match", "u32", "0", "0",
                     "action", "police", "rate", "1mbit", "burst", "10k", "drop",
                     setup=[("qdisc", "add", "dev", "d0", "ingress")])


def test_ovs_bridge(ovs):
    ovs("add-br", "nvtovs0")
    try:
        assert "nvtovs0" in ovs("list-br").split()
    finally:
        ovs("--if-exists", "del-br", "nvtovs0")
