"""Shaping on Debian's kernel: fq_codel leaves, and taking over libvirt's native <bandwidth>.

Only in the real-kernel lane: this machine's kernel lacks fq_codel, sfq,
act_police and cls_fw, which libvirt's native shaping uses.
"""
import json

import pytest

from nvhooks.shaping import caps as capsmod
from nvhooks.shaping import apply as tcapply, plan as tcplan
from nvhooks.policy.model import Rate


@pytest.fixture(autouse=True)
def _scratch_root(tmp_path, monkeypatch):
    monkeypatch.setenv("NETVIRT_HOOKS_ROOT", str(tmp_path))


def kinds(nsrun, ns, dev):
    return {(q["kind"], q["handle"]) for q in json.loads(nsrun(ns, "tc", "-j", "qdisc", "show", "dev", dev).stdout)}


def test_best_leaf_is_chosen_and_used(netns, veth, nsrun, kprobe):
    caps = capsmod.probe()
    assert kprobe.qdisc("fq_codel")                   # Debian's kernel has it
    assert caps.leaf == "fq_codel"
    ns = netns()
    tap = veth(ns, peer_ns=ns).name
    plan = tcplan.plan_device(tap, caps, netns=ns, inbound=Rate(average=10_000_000),
                              outbound=Rate(average=10_000_000))
    tcapply.apply(plan, caps)
    assert ("fq_codel", "10:") in kinds(nsrun, ns, tap)
    assert ("fq_codel", "10:") in kinds(nsrun, ns, tcplan.port_ifb(tap))
    assert not tcapply.apply(plan, caps).changed      # fq_codel defaults read back as planned


def libvirt_native(nsrun, ns, tap):
    """What libvirt 9's virNetDevBandwidthSet does for <bandwidth> (inbound + outbound)."""
    nsrun(ns, "tc", "qdisc", "add", "dev", tap, "root", "handle", "1:", "htb", "default", "1")
    nsrun(ns, "tc", "class", "add", "dev", tap, "parent", "1:", "classid", "1:1", "htb", "rate", "1000kbps",
          "ceil", "2000kbps", "burst", "256kb", "quantum", "21333")
    nsrun(ns, "tc", "qdisc", "add", "dev", tap, "parent", "1:1", "handle", "2:", "sfq", "perturb", "10")
    nsrun(ns, "tc", "filter", "add", "dev", tap, "parent", "1:0", "protocol", "all", "prio", "1", "handle", "1",
          "fw", "flowid", "1")
    nsrun(ns, "tc", "qdisc", "add", "dev", tap, "ingress")
    nsrun(ns, "tc", "filter", "add", "dev", tap, "parent", "ffff:", "protocol", "all", "u32", "match", "u32",
          "0", "0", "police", "rate", "1000kbps", "burst", "256kb", "mtu", "64kb", "drop", "flowid", ":1")


def test_takeover_replaces_libvirt_police_and_fw(netns, veth, nsrun):
    caps = capsmod.probe()
    ns = netns()
    tap = veth(ns, peer_ns=ns).name
    libvirt_native(nsrun, ns, tap)
    plan = tcplan.plan_device(tap, caps, netns=ns, inbound=Rate(average=8_000_000),
                              outbound=Rate(average=8_000_000))
    result = tcapply.apply(plan, caps)
    assert result.changed
    shown = nsrun(ns, "tc", "filter", "show", "dev", tap).stdout + \
        nsrun(ns, "tc", "filter", "show", "dev", tap, "ingress").stdout
    assert "police" not in shown and " fw " not in shown
    assert "ingress" not in {k[0] for k in kinds(nsrun, ns, tap)}
    assert ("sfq", "2:") not in kinds(nsrun, ns, tap)
    assert "rate 8Mbit" in nsrun(ns, "tc", "class", "show", "dev", tap).stdout
    assert not tcapply.apply(plan, caps).changed
    tcapply.apply(tcplan.plan_absent(tap, netns=ns), caps)
    assert {k[0] for k in kinds(nsrun, ns, tap)} <= {"noqueue", "pfifo_fast", "fq_codel", "mq"}
