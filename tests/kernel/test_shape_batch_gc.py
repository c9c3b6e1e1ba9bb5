"""Batched ifb deletion (tcsession) and orphan collection (shapegc) on a real kernel."""
import json
import re

import pytest

from nvhooks import errors
from nvhooks.kernel import netlink
from nvhooks.shaping import gc as shapegc, apply as tcapply, plan as tcplan, session as tcsession

from test_shape_apply import (POLICY, check_members, classes, links, make_members, member_plan, nv_links,
                              snapshot)

pytestmark = pytest.mark.usefixtures("scratch_root")


def same_state(nsrun, ns, dev):
    """snapshot() without what is not configuration: the mirred action's index (a re-created
    filter gets a new one) and the flows fq_codel/sfq leaves list as classes (stray IPv6 packets)."""
    text = re.sub(r"index \d+ ref", "index N ref", json.dumps(snapshot(nsrun, ns, dev)))
    return json.loads(re.sub(r"class (fq_codel|sfq) [0-9a-f]+:[0-9a-f]+ parent [0-9a-f]+: (\\n)?", "", text))


def ifbs(nsrun, ns):
    """{name: alias} of every ifb in the namespace."""
    return {link["ifname"]: link.get("ifalias") for link in
            json.loads(nsrun(ns, "ip", "-j", "-d", "link", "show", "type", "ifb").stdout)}


def shaped_ports(netns, veth, nsrun, caps, count):
    ns = netns()
    taps = [veth(ns, peer_ns=ns).name for _port in range(count)]
    for tap in taps:
        tcapply.apply(tcplan.plan_device(tap, caps, netns=ns, **POLICY), caps)
    assert set(ifbs(nsrun, ns)) == {tcplan.port_ifb(t) for t in taps}
    return ns, taps


def test_batch_parks_then_deletes_every_ifb_at_its_end(netns, veth, nsrun, caps):
    ns, taps = shaped_ports(netns, veth, nsrun, caps, 3)
    with tcapply.session(ns) as batch:
        for tap in taps:
            assert tcapply.apply(tcplan.plan_absent(tap, netns=ns), caps, batch=batch).changed
        parked = ifbs(nsrun, ns)
        # out of use at once: renamed (the real names are free), marked, down, in the batch's group
        assert len(parked) == 3 and not set(parked) & {tcplan.port_ifb(t) for t in taps}
        assert all(n.startswith(tcsession.PARKED_PREFIX) and len(n) <= 15 for n in parked)
        assert set(parked.values()) == {tcsession.PARKED_ALIAS}
        for name in parked:
            link = json.loads(nsrun(ns, "ip", "-j", "-d", "link", "show", name).stdout)[0]
            assert link["group"] == str(batch.group) and "UP" not in link["flags"]
        # the port starts again inside the same batch: a fresh ifb under the real name
        tcapply.apply(tcplan.plan_device(taps[0], caps, netns=ns, **POLICY), caps, batch=batch)
    assert set(ifbs(nsrun, ns)) == {tcplan.port_ifb(taps[0])}
    assert classes(nsrun, ns, tcplan.port_ifb(taps[0])) == {"1:1": ("root", 5_000_000, 5_000_000)}
    assert not tcapply.apply(tcplan.plan_device(taps[0], caps, netns=ns, **POLICY), caps).changed


def test_rollback_unparks_with_the_tc_tree(netns, veth, nsrun, caps, monkeypatch):
    """The last member leaves: one group ifb is parked, parking the other fails; all comes back as it was."""
    ns, members = make_members(netns, veth, nsrun, n=1)
    tap, mac = members[0]
    tcapply.apply(member_plan(caps, ns, tap, mac, 0), caps)
    before = same_state(nsrun, ns, tap)
    real_park, calls = tcsession.Session.park, []

    def failing_park(self, index, name, alias):
        calls.append(name)
        if len(calls) == 2:
            raise OSError(5, "injected failure")
        return real_park(self, index, name, alias)

    monkeypatch.setattr(tcsession.Session, "park", failing_park)
    with pytest.raises(errors.KernelError, match="rolled back"):
        tcapply.apply(tcplan.plan_absent(tap, mac=mac, netns=ns), caps)
    assert len(calls) == 2
    assert same_state(nsrun, ns, tap) == before
    check_members(nsrun, ns, members, {0})


def test_a_rename_that_fails_leaves_the_ifb_in_service(netns, veth, nsrun, caps, monkeypatch):
    """Parking is down + rename: when the rename fails the device comes back up, and the run rolls back."""
    ns, members = make_members(netns, veth, nsrun, n=1)
    tap, mac = members[0]
    tcapply.apply(member_plan(caps, ns, tap, mac, 0), caps)
    before = same_state(nsrun, ns, tap)
    real_set, renames = netlink.set_link, []

    def failing_set(sock, index, **attrs):
        if attrs.get("ifname", "").startswith(tcsession.PARKED_PREFIX):
            renames.append(attrs["ifname"])
            if len(renames) == 2:
                raise OSError(16, "injected: device busy")
        return real_set(sock, index, **attrs)

    monkeypatch.setattr(netlink, "set_link", failing_set)
    with pytest.raises(errors.KernelError, match="rolled back"):
        tcapply.apply(tcplan.plan_absent(tap, mac=mac, netns=ns), caps)
    assert len(renames) == 2
    assert same_state(nsrun, ns, tap) == before
    for name in ifbs(nsrun, ns):
        assert "UP" in json.loads(nsrun(ns, "ip", "-j", "link", "show", name).stdout)[0]["flags"]


def test_gc_removes_port_ifbs_no_tap_uses(netns, veth, nsrun, caps):
    ns, taps = shaped_ports(netns, veth, nsrun, caps, 3)
    gone, unhooked, kept = taps
    nsrun(ns, "ip", "link", "del", gone)                        # guest stopped while our hook was absent
    nsrun(ns, "tc", "qdisc", "del", "dev", unhooked, "clsact")   # tap reused, no redirect to its ifb
    foreign = "nvtforeign"
    nsrun(ns, "ip", "link", "add", foreign, "type", "ifb")       # not ours: no netvirt alias
    mine = (kept, tcplan.port_ifb(kept))
    before_kept = {dev: same_state(nsrun, ns, kept)[dev] for dev in mine}

    found = shapegc.collect(caps, netns=ns, check_mode=True)
    assert sorted(f.split()[1] for f in found) == sorted(tcplan.port_ifb(t) for t in (gone, unhooked))
    assert f"no redirect on {gone} uses it" in " ".join(found)
    assert set(ifbs(nsrun, ns)) == {tcplan.port_ifb(t) for t in taps} | {foreign}   # check mode: no change

    assert len(shapegc.collect(caps, netns=ns)) == 2
    assert set(ifbs(nsrun, ns)) == {tcplan.port_ifb(kept), foreign}
    assert {dev: same_state(nsrun, ns, kept)[dev] for dev in mine} == before_kept
    assert shapegc.collect(caps, netns=ns) == []


def test_gc_removes_leftovers_of_a_batch_that_died(netns, nsrun, caps):
    ns = netns()
    nsrun(ns, "ip", "link", "add", "nvx0123456789ab", "type", "ifb")
    nsrun(ns, "ip", "link", "set", "nvx0123456789ab", "alias", tcsession.PARKED_ALIAS)
    assert shapegc.collect(caps, netns=ns) == [f"ifb nvx0123456789ab ({tcsession.PARKED_ALIAS}): "
                                               "parked by a batch that did not finish"]
    assert ifbs(nsrun, ns) == {}


def test_gc_group_members_no_guest_has(netns, veth, nsrun, caps):
    ns, members = make_members(netns, veth, nsrun)
    for i, (tap, mac) in enumerate(members):
        tcapply.apply(member_plan(caps, ns, tap, mac, i), caps)
    # without a way to tell running MACs, members are never judged
    assert shapegc.collect(caps, netns=ns) == []
    check_members(nsrun, ns, members, {0, 1, 2})

    # member 0's guest stopped while our hook was absent (its tap is reused, unshaped)
    nsrun(ns, "tc", "qdisc", "del", "dev", members[0][0], "clsact")
    running = {members[1][1], members[2][1]}

    found = shapegc.collect(caps, netns=ns, in_use=running.__contains__)
    assert found == [f"group web member {members[0][1]}: no running guest has this MAC (6 object(s))"]
    check_members(nsrun, ns, members, {1, 2})

    # a guest with that MAC starts between the listing and the locks: asked again under them, kept
    answers = iter([False, True])
    assert shapegc.collect(caps, netns=ns, in_use=lambda mac: mac == members[2][1] or next(answers)) == []
    check_members(nsrun, ns, members, {1, 2})

    # the last members go: their group ifbs with them
    assert len(shapegc.collect(caps, netns=ns, in_use=lambda mac: False)) == 2
    assert nv_links(nsrun, ns) == set()


def test_gc_removes_a_group_ifb_without_members(netns, nsrun, caps):
    ns = netns()
    name = tcplan.group_ifb("empty", "inbound")
    nsrun(ns, "ip", "link", "add", name, "type", "ifb")
    nsrun(ns, "ip", "link", "set", name, "alias", tcplan.group_ifb_alias("empty", "inbound"))
    assert shapegc.collect(caps, netns=ns) == [f"ifb {name} (netvirt group empty inbound): the group has no members"]
    assert name not in links(nsrun, ns)
