"""Proves the kernel lane: netns + veth + bridge + HTB via tc, read back."""
import json


def test_htb_on_veth_in_netns(netns, veth, bridge, nsrun, kprobe):
    a, b = netns(), netns()
    v = veth(a, peer_ns=b)
    nsrun(a, "tc", "qdisc", "add", "dev", v.name, "root", "handle", "1:", "htb", "default", "10")
    nsrun(a, "tc", "class", "add", "dev", v.name, "parent", "1:", "classid", "1:10",
          "htb", "rate", "10mbit")
    qd = json.loads(nsrun(a, "tc", "-j", "qdisc", "show", "dev", v.name).stdout)
    assert [q["kind"] for q in qd if q.get("root")] == ["htb"]
    # iproute2 6.1 prints htb classes as text even with -j
    assert "class htb 1:10 " in nsrun(a, "tc", "class", "show", "dev", v.name).stdout
    br = bridge(ns=b)
    nsrun(b, "ip", "link", "set", v.peer, "master", br)
    assert f"master {br}" in nsrun(b, "ip", "link", "show", v.peer).stdout
    assert kprobe.qdisc("htb") and kprobe.qdisc("tbf", "rate", "1mbit", "burst", "10k", "latency", "50ms")
