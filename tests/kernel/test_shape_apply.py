"""Shaping core on a real kernel: plan -> apply via pyroute2 -> read back with tc.

Runs on this machine's kernel and in the real-kernel lane (expectations such
as the leaf qdisc come from probes, never from assumptions).
"""
import json
import random
import re
import threading

import pytest

from nvhooks import errors
from nvhooks.policy import model as policy
from nvhooks.shaping import apply as tcapply, execute as tcexecute, plan as tcplan
from nvhooks.policy.model import Rate

pytestmark = pytest.mark.usefixtures("scratch_root")


def tc_json(nsrun, ns, *args):
    return json.loads(nsrun(ns, "tc", "-j", *args).stdout or "[]")


def qdiscs(nsrun, ns, dev):
    return {(q["kind"], q["handle"], q.get("parent", "root" if q.get("root") else "")) for q in
            tc_json(nsrun, ns, "qdisc", "show", "dev", dev) if q["kind"] not in ("noqueue", "pfifo_fast", "mq")}


def classes(nsrun, ns, dev):
    """{classid: (parent, rate bit/s, ceil bit/s)} from tc's text (iproute2 6.1 prints htb text even with -j)."""
    out = {}
    for line in nsrun(ns, "tc", "-d", "-raw", "class", "show", "dev", dev).stdout.splitlines():
        m = re.match(r"class htb (\S+) (?:root|parent (\S+)) .*?rate (\S+) ceil (\S+)", line)
        if m:
            out[m.group(1)] = (m.group(2) or "root", _bits(m.group(3)), _bits(m.group(4)))
    return out


def _bits(word):
    m = re.match(r"^(\d+(?:\.\d+)?)([KMG]?)bit$", word)
    return int(float(m.group(1)) * {"": 1, "K": 1e3, "M": 1e6, "G": 1e9}[m.group(2)])


def links(nsrun, ns):
    return {link["ifname"] for link in json.loads(nsrun(ns, "ip", "-j", "link", "show").stdout)}


def nv_links(nsrun, ns):
    return {n for n in links(nsrun, ns) if n.startswith("nv") and not n.startswith("nvt")}


def mac_of(nsrun, ns, dev):
    return json.loads(nsrun(ns, "ip", "-j", "link", "show", dev).stdout)[0]["address"]


def snapshot(nsrun, ns, dev):
    """Everything tc-related in the namespace, to prove 'exactly as before'."""
    state = {"links": sorted(links(nsrun, ns))}
    for name in state["links"]:
        state[name] = (re.sub(r"direct_packets_stat \d+ ", "", nsrun(ns, "tc", "qdisc", "show", "dev", name).stdout),
                       nsrun(ns, "tc", "class", "show", "dev", name).stdout,
                       nsrun(ns, "tc", "filter", "show", "dev", name, "ingress").stdout if name == dev else "")
    return state


def expected_leaf(kprobe):
    for kind in ("fq_codel", "sfq"):
        if kprobe.qdisc(kind):
            return kind
    return "pfifo"


POLICY = dict(inbound=Rate(average=10_000_000, peak=20_000_000, burst=32 * 1024),
              outbound=Rate(average=5_000_000))


def test_probe_matches_kernel(caps, kprobe):
    assert caps.htb and caps.ifb and caps.clsact
    assert caps.leaf == expected_leaf(kprobe)


def test_apply_reads_back_as_planned(netns, veth, nsrun, caps):
    ns = netns()
    tap = veth(ns, peer_ns=ns).name
    plan = tcplan.plan_device(tap, caps, netns=ns, **POLICY)
    result = tcapply.apply(plan, caps)
    assert result.changed
    ifb = tcplan.port_ifb(tap)
    assert len(ifb) <= 15 and ifb in links(nsrun, ns)
    alias = json.loads(nsrun(ns, "ip", "-j", "link", "show", ifb).stdout)[0].get("ifalias")
    assert alias == f"netvirt port {tap} outbound"
    leaf = caps.leaf
    assert qdiscs(nsrun, ns, tap) == {("htb", "1:", "root"), (leaf, "10:", "1:1"), ("clsact", "ffff:", "ffff:fff1")}
    assert classes(nsrun, ns, tap) == {"1:1": ("root", 10_000_000, 20_000_000)}
    assert classes(nsrun, ns, ifb) == {"1:1": ("root", 5_000_000, 5_000_000)}
    assert "Egress Redirect to device " + ifb in nsrun(ns, "tc", "filter", "show", "dev", tap, "ingress").stdout
    # burst as planned: tc prints the burst back from the kernel's buffer ticks
    assert "burst 32Kb" in nsrun(ns, "tc", "class", "show", "dev", tap).stdout
    # quantum chosen so the kernel never warns
    assert re.search(r"quantum 125000\b", nsrun(ns, "tc", "-d", "class", "show", "dev", tap).stdout)


def test_check_real_check_and_idempotence(netns, veth, nsrun, caps):
    ns = netns()
    tap = veth(ns, peer_ns=ns).name
    plan = tcplan.plan_device(tap, caps, netns=ns, **POLICY)
    before = snapshot(nsrun, ns, tap)
    check = tcapply.apply(plan, caps, check_mode=True)
    assert check.changed and snapshot(nsrun, ns, tap) == before          # check mode touched nothing
    real = tcapply.apply(plan, caps)
    assert real.changed
    assert [a.text() for a in real.actions] == [a.text() for a in check.actions]   # predicted exactly
    assert real.after == check.after
    again = tcapply.apply(plan, caps, check_mode=True)
    assert not again.changed and not again.actions
    assert not tcapply.apply(plan, caps).changed
    # a changed policy changes only the difference (one class), no teardown
    faster = tcplan.plan_device(tap, caps, netns=ns, inbound=Rate(average=12_000_000, peak=20_000_000,
                                                                  burst=32 * 1024), outbound=POLICY["outbound"])
    diff = tcapply.apply(faster, caps)
    assert [a.op for a in diff.actions] == ["change"]
    assert classes(nsrun, ns, tap)["1:1"] == ("root", 12_000_000, 20_000_000)
    assert any("rate 12mbit" in line for line in diff.after[tap])


def test_absent_leaves_nothing(netns, veth, nsrun, caps):
    ns = netns()
    tap = veth(ns, peer_ns=ns).name
    before = snapshot(nsrun, ns, tap)
    tcapply.apply(tcplan.plan_device(tap, caps, netns=ns, **POLICY), caps)
    gone = tcapply.apply(tcplan.plan_absent(tap, netns=ns), caps)
    assert gone.changed
    assert snapshot(nsrun, ns, tap) == before
    assert not tcapply.apply(tcplan.plan_absent(tap, netns=ns), caps).changed


def test_takeover_replaces_native_tree(netns, veth, nsrun, caps):
    """libvirt's native <bandwidth> layout (htb 1: default 2 + 1:1/1:2) is replaced, not doubled."""
    ns = netns()
    tap = veth(ns, peer_ns=ns).name
    nsrun(ns, "tc", "qdisc", "add", "dev", tap, "root", "handle", "1:", "htb", "default", "2")
    nsrun(ns, "tc", "class", "add", "dev", tap, "parent", "1:", "classid", "1:1", "htb", "rate", "3mbit")
    nsrun(ns, "tc", "class", "add", "dev", tap, "parent", "1:1", "classid", "1:2", "htb", "rate", "3mbit")
    nsrun(ns, "tc", "qdisc", "add", "dev", tap, "ingress")
    tcapply.apply(tcplan.plan_device(tap, caps, netns=ns, **POLICY), caps)
    assert classes(nsrun, ns, tap) == {"1:1": ("root", 10_000_000, 20_000_000)}
    kinds = {q[0] for q in qdiscs(nsrun, ns, tap)}
    assert "ingress" not in kinds and "clsact" in kinds


def test_rollback_on_ifb_name_collision(netns, veth, nsrun, caps):
    ns = netns()
    tap = veth(ns, peer_ns=ns).name
    nsrun(ns, "tc", "qdisc", "add", "dev", tap, "root", "handle", "1:", "htb", "default", "2")
    # someone else's device already has our ifb name
    nsrun(ns, "ip", "link", "add", tcplan.port_ifb(tap), "type", "veth", "peer", "name", "nvtcoll")
    before = snapshot(nsrun, ns, tap)
    with pytest.raises(errors.KernelError, match=tcplan.port_ifb(tap)):
        tcapply.apply(tcplan.plan_device(tap, caps, netns=ns, **POLICY), caps)
    assert snapshot(nsrun, ns, tap) == before


def test_alias_less_ifb_of_our_name_is_finished(netns, veth, nsrun, caps):
    """A run killed between `link add` and the alias leaves a bare ifb: the next apply takes it over."""
    ns = netns()
    tap = veth(ns, peer_ns=ns).name
    ifb = tcplan.port_ifb(tap)
    nsrun(ns, "ip", "link", "add", ifb, "type", "ifb")
    plan = tcplan.plan_device(tap, caps, netns=ns, **POLICY)
    assert tcapply.apply(plan, caps).changed
    assert json.loads(nsrun(ns, "ip", "-j", "link", "show", ifb).stdout)[0].get("ifalias") == \
        f"netvirt port {tap} outbound"
    assert classes(nsrun, ns, ifb) == {"1:1": ("root", 5_000_000, 5_000_000)}
    assert not tcapply.apply(plan, caps).changed


def test_ifb_of_our_name_with_a_foreign_alias_is_refused(netns, veth, nsrun, caps):
    ns = netns()
    tap = veth(ns, peer_ns=ns).name
    ifb = tcplan.port_ifb(tap)
    nsrun(ns, "ip", "link", "add", ifb, "type", "ifb")
    nsrun(ns, "ip", "link", "set", ifb, "alias", "someone else's")
    with pytest.raises(errors.KernelError, match="not ours"):
        tcapply.apply(tcplan.plan_device(tap, caps, netns=ns, **POLICY), caps)
    assert json.loads(nsrun(ns, "ip", "-j", "link", "show", ifb).stdout)[0].get("ifalias") == "someone else's"


def test_rollback_midway(netns, veth, nsrun, caps, monkeypatch):
    """A failure after the root tree was replaced and the ifb created undoes it all."""
    ns = netns()
    tap = veth(ns, peer_ns=ns).name
    nsrun(ns, "tc", "qdisc", "add", "dev", tap, "root", "handle", "1:", "htb", "default", "2")
    nsrun(ns, "tc", "class", "add", "dev", tap, "parent", "1:", "classid", "1:2", "htb", "rate", "3mbit",
          "burst", "16k", "quantum", "3000")
    before = snapshot(nsrun, ns, tap)
    real_add = tcexecute._Exec.add

    def failing_add(self, obj):
        if obj.kind == "filter":          # the last step: redirect on the tap
            nsrun(ns, "ip", "link", "del", tcplan.port_ifb(tap))   # the ifb vanishes under us
        return real_add(self, obj)

    monkeypatch.setattr(tcexecute._Exec, "add", failing_add)
    with pytest.raises(errors.KernelError, match="rolled back"):
        tcapply.apply(tcplan.plan_device(tap, caps, netns=ns, **POLICY), caps)
    assert snapshot(nsrun, ns, tap) == before


def test_missing_device_is_a_clear_error(netns, caps):
    ns = netns()
    with pytest.raises(errors.KernelError, match="nvtnosuch.*does not exist"):
        tcapply.apply(tcplan.plan_device("nvtnosuch", caps, netns=ns, label="web1 port 0 (nvtnosuch)",
                                         **POLICY), caps)


# ------------------------------------------------------------------ groups

GROUP = policy.parse_group("web", {"inbound": {"ceiling": "30mbit", "floor": "5mbit"},
                                   "outbound": {"ceiling": "20mbit"}}, "groups.web")


def member_plan(caps, ns, tap, mac, i):
    inbound = Rate(average=10_000_000 * (i + 1), floor=2_000_000 * (i + 1)) if i < 2 else None
    return tcplan.plan_device(tap, caps, inbound=inbound, group=GROUP, mac=mac, netns=ns)


def group_state(nsrun, ns):
    gi, go = tcplan.group_ifb("web", "inbound"), tcplan.group_ifb("web", "outbound")
    present = links(nsrun, ns)
    out = {}
    for ifb in (gi, go):
        if ifb in present:
            macs = re.findall(r"match (\w{8})/ffffffff at (-14|-8)\s+match (\w{4})0000/ffff0000",
                              nsrun(ns, "tc", "filter", "show", "dev", ifb, "parent", "1:").stdout)
            out[ifb] = (classes(nsrun, ns, ifb), sorted(m[0] + m[2] for m in macs))
    return out


def _hexmac(mac):
    return mac.replace(":", "")


def make_members(netns, veth, nsrun, n=3):
    ns = netns()
    members = []
    for _member in range(n):
        v = veth(ns, peer_ns=ns)
        members.append((v.name, mac_of(nsrun, ns, v.peer)))
    return ns, members


def check_members(nsrun, ns, members, present):
    state = group_state(nsrun, ns)
    gi, go = tcplan.group_ifb("web", "inbound"), tcplan.group_ifb("web", "outbound")
    if not present:
        assert state == {}
        return
    want_macs = sorted(_hexmac(members[i][1]) for i in present)
    cls_in, macs_in = state[gi]
    cls_out, macs_out = state[go]
    assert macs_in == want_macs and macs_out == want_macs
    assert cls_in["1:1"] == ("root", 30_000_000, 30_000_000)
    assert cls_out["1:1"] == ("root", 20_000_000, 20_000_000)
    assert cls_in["1:2"][0] == "1:1" and cls_in["1:2"][2] == 30_000_000       # catch-all under the ceiling
    member_classes = sorted(v for k, v in cls_in.items() if k not in ("1:1", "1:2"))
    want = sorted(("1:1", 2_000_000 * (i + 1), 10_000_000 * (i + 1)) if i < 2 else ("1:1", 5_000_000, 30_000_000)
                  for i in present)
    assert member_classes == want
    for i, (tap, _mac) in enumerate(members):
        egress = nsrun(ns, "tc", "filter", "show", "dev", tap, "egress").stdout
        assert (("Redirect to device " + gi) in egress) == (i in present)


def test_group_members_shuffled(netns, veth, nsrun, caps):
    ns, members = make_members(netns, veth, nsrun)
    order = list(range(3))
    random.shuffle(order)
    present = set()
    for i in order:
        tap, mac = members[i]
        assert tcapply.apply(member_plan(caps, ns, tap, mac, i), caps).changed
        present.add(i)
        check_members(nsrun, ns, members, present)
        assert not tcapply.apply(member_plan(caps, ns, tap, mac, i), caps).changed
    random.shuffle(order)
    for i in order:
        tap, mac = members[i]
        assert tcapply.apply(tcplan.plan_absent(tap, mac=mac, netns=ns), caps).changed
        present.discard(i)
        check_members(nsrun, ns, members, present)
    assert nv_links(nsrun, ns) == set()


def test_group_members_concurrent(netns, veth, nsrun, caps):
    ns, members = make_members(netns, veth, nsrun)
    errors_seen = []

    def run(plan):
        try:
            tcapply.apply(plan, caps)
        except Exception as err:  # pylint: disable=broad-except
            errors_seen.append(err)

    for phase in ("start", "stop"):
        plans = [member_plan(caps, ns, tap, mac, i) if phase == "start" else
                 tcplan.plan_absent(tap, mac=mac, netns=ns) for i, (tap, mac) in enumerate(members)]
        threads = [threading.Thread(target=run, args=(p,)) for p in plans]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors_seen
        check_members(nsrun, ns, members, set(range(3)) if phase == "start" else set())
    assert nv_links(nsrun, ns) == set()


def test_group_spoofed_mac_stays_under_ceiling(netns, veth, nsrun, caps):
    """Frames no member filter claims land in the catch-all under the group parent."""
    ns, members = make_members(netns, veth, nsrun, n=1)
    tap, mac = members[0]
    tcapply.apply(member_plan(caps, ns, tap, mac, 0), caps)
    go = tcplan.group_ifb("web", "outbound")
    assert "default 0x2" in nsrun(ns, "tc", "qdisc", "show", "dev", go).stdout
    assert classes(nsrun, ns, go)["1:2"][0] == "1:1"
