"""The pure shaping planner: names, exact kernel values, groups, precedence effects."""
import pytest

from nvhooks.policy import model as policy, resolve
from nvhooks.shaping import plan as tcplan
from nvhooks.shaping.caps import Caps
from nvhooks.errors import KernelError, PolicyError
from nvhooks.policy.model import Rate

CAPS = Caps(leaf="fq_codel", tick_in_usec=15.625)
BARE = Caps(leaf="pfifo", tick_in_usec=15.625)
MBIT = 1_000_000


def by_key(plan):
    return {o.key: o for o in plan.objects}


def test_ifb_names_are_short_deterministic_and_distinct():
    names = {tcplan.port_ifb(f"vnet{i}") for i in range(200)}
    assert len(names) == 200
    assert all(len(n) <= 15 and n.startswith("nvo") for n in names)
    assert tcplan.port_ifb("vnet0") == tcplan.port_ifb("vnet0")
    gi, go = tcplan.group_ifb("web", "inbound"), tcplan.group_ifb("web", "outbound")
    assert gi.startswith("nvgi") and go.startswith("nvgo") and gi[4:] == go[4:] and len(gi) <= 15
    assert tcplan.group_ifb("db", "inbound") != gi


@pytest.mark.parametrize("rate_bytes, quantum", [(1000, 1600), (1_250_000, 125_000), (125_000_000, 200_000)])
def test_quantum_stays_in_the_range_the_kernel_accepts_silently(rate_bytes, quantum):
    assert tcplan.quantum(rate_bytes) == quantum


def test_default_burst_grows_with_rate():
    assert tcplan.default_burst(1_250_000) == 16 * 1024             # 10 Mbit/s
    assert tcplan.default_burst(125_000_000) == 625_000             # 1 Gbit/s: 5 ms


def test_buffer_ticks_computed_like_tc():
    # seen on the kernel: tc/pyroute2 give buffer 204796 for 16 KiB at 10 Mbit/s
    assert tcplan.xmit_ticks(1_250_000, 16384, 15.625) == 204796


def test_inbound_only_is_htb_on_the_tap():
    plan = tcplan.plan_device("vnet0", CAPS, inbound=Rate(average=10 * MBIT, peak=20 * MBIT, burst=32768))
    objs = by_key(plan)
    root = objs[("qdisc", "vnet0", tcplan.ROOT)]
    assert root.get("kind") == "htb" and root.get("handle") == tcplan.HTB_ROOT and root.get("default") == 1
    cls = objs[("class", "vnet0", tcplan.PORT_CLASS)]
    assert (cls.get("rate"), cls.get("ceil"), cls.get("burst"), cls.get("quantum")) == (1_250_000, 2_500_000,
                                                                                        32768, 125_000)
    assert cls.get("cburst") == 32768
    assert objs[("qdisc", "vnet0", tcplan.PORT_CLASS)].get("kind") == "fq_codel"
    assert not plan.port_ifbs and not any(o.kind == "ifb" for o in plan.objects)


def test_outbound_goes_through_the_ports_ifb():
    plan = tcplan.plan_device("vnet0", BARE, outbound=Rate(average=5 * MBIT))
    ifb = tcplan.port_ifb("vnet0")
    objs = by_key(plan)
    assert objs[("ifb", ifb, None)].get("alias") == "netvirt port vnet0 outbound"
    assert objs[("qdisc", "vnet0", tcplan.CLSACT)].get("kind") == "clsact"
    redirect = objs[("filter", "vnet0", (tcplan.CLSACT_INGRESS, tcplan.FILTER_PRIO, None))]
    assert redirect.get("redirect") == ifb
    assert objs[("class", ifb, tcplan.PORT_CLASS)].get("rate") == 625_000
    leaf = objs[("qdisc", ifb, tcplan.PORT_CLASS)]
    assert leaf.get("kind") == "pfifo" and leaf.get("limit") == 1000
    assert plan.port_ifbs == (ifb,)


def test_old_kernel_without_clsact_uses_ingress():
    plan = tcplan.plan_device("vnet0", Caps(clsact=False), outbound=Rate(average=MBIT))
    objs = by_key(plan)
    assert objs[("qdisc", "vnet0", tcplan.CLSACT)].get("kind") == "ingress"
    assert ("filter", "vnet0", (tcplan.INGRESS_HANDLE, 1, None)) in objs


def test_missing_kernel_features_name_the_option():
    with pytest.raises(KernelError, match="CONFIG_NET_SCH_HTB"):
        tcplan.plan_device("vnet0", Caps(htb=False), inbound=Rate(average=MBIT))
    with pytest.raises(KernelError, match="CONFIG_IFB"):
        tcplan.plan_device("vnet0", Caps(ifb=False), outbound=Rate(average=MBIT))
    assert tcplan.plan_device("vnet0", Caps(ifb=False), inbound=Rate(average=MBIT)).objects


def test_burst_beyond_htb_buffer_is_refused_naming_the_port():
    with pytest.raises(PolicyError, match=r"web1 port 0.*burst 4194303KiB|web1 port 0.*burst"):
        tcplan.plan_device("vnet0", CAPS, label="web1 port 0 (vnet0)",
                           inbound=Rate(average=8000, burst=4 * 1024 ** 3 - 1024))


def test_rate_beyond_htb_is_refused():
    with pytest.raises(PolicyError, match="beyond what HTB can express"):
        tcplan.plan_device("vnet0", CAPS, inbound=Rate(average=40 * 10 ** 9))


def test_nothing_to_shape_is_an_error():
    with pytest.raises(PolicyError, match="nothing to shape"):
        tcplan.plan_device("vnet0", CAPS)


GROUP = policy.parse_group("web", {"inbound": {"ceiling": "100mbit", "floor": "10mbit"},
                                   "outbound": {"ceiling": "50mbit"}}, "groups.web")


def test_group_member_floor_ceiling_and_shared_objects():
    plan = tcplan.plan_device("vnet0", CAPS, inbound=Rate(average=30 * MBIT, peak=200 * MBIT, floor=20 * MBIT),
                              group=GROUP, mac="52:54:00:AA:BB:CC")
    assert plan.mac == "52:54:00:aa:bb:cc" and plan.groups == ("web",)
    gi, go = tcplan.group_ifb("web", "inbound"), tcplan.group_ifb("web", "outbound")
    members = {(o.dev, o.kind): o for o in plan.objects if o.scope == "member"}
    cls_in = members[(gi, "class")]
    assert cls_in.id is None                                        # diff.py allocates the member number
    assert (cls_in.get("rate"), cls_in.get("ceil")) == (20 * MBIT // 8, 100 * MBIT // 8)   # peak capped
    cls_out = members[(go, "class")]
    assert (cls_out.get("rate"), cls_out.get("ceil")) == (500_000 // 8, 50 * MBIT // 8)  # 1% default floor
    flt_in, flt_out = members[(gi, "filter")], members[(go, "filter")]
    assert (flt_in.get("mac"), flt_in.get("mac_at")) == ("52:54:00:aa:bb:cc", -14)
    assert flt_out.get("mac_at") == -8
    assert tcplan.group_of(tcplan.group_ifb_alias("web", "inbound")) == "web"
    assert tcplan.group_of(tcplan.group_ifb_alias("a b", "outbound")) == "a b"   # names may hold spaces
    shared = {o.key: o for o in plan.objects if o.scope == "group"}
    assert shared[("class", gi, tcplan.GROUP_CLASS)].get("rate") == 100 * MBIT // 8
    catch_all = shared[("class", gi, tcplan.GROUP_DEFAULT)]
    assert catch_all.get("parent") == tcplan.GROUP_CLASS and catch_all.get("ceil") == 100 * MBIT // 8
    assert shared[("qdisc", gi, tcplan.ROOT)].get("default") == 2
    taps = {o.id[0]: o.get("redirect") for o in plan.objects if o.kind == "filter" and o.dev == "vnet0"}
    assert taps == {tcplan.CLSACT_EGRESS: gi, tcplan.CLSACT_INGRESS: go}
    assert not any(o.kind == "qdisc" and o.dev == "vnet0" and o.id == tcplan.ROOT for o in plan.objects)


def test_group_member_defaults_to_group_floor():
    plan = tcplan.plan_device("vnet0", CAPS, group=GROUP, mac="52:54:00:00:00:01")
    gi = tcplan.group_ifb("web", "inbound")
    cls = next(o for o in plan.objects if o.scope == "member" and o.kind == "class" and o.dev == gi)
    assert (cls.get("rate"), cls.get("ceil")) == (10 * MBIT // 8, 100 * MBIT // 8)


def test_group_needs_mac_and_clsact_and_sane_floor():
    with pytest.raises(PolicyError, match="MAC"):
        tcplan.plan_device("vnet0", CAPS, group=GROUP)
    with pytest.raises(KernelError, match="clsact"):
        tcplan.plan_device("vnet0", Caps(clsact=False), group=GROUP, mac="52:54:00:00:00:01")
    with pytest.raises(PolicyError, match="guaranteed rate"):
        tcplan.plan_device("vnet0", CAPS, inbound=Rate(average=5 * MBIT), group=GROUP, mac="52:54:00:00:00:01")


def test_group_direction_without_group_side_stays_per_port():
    inbound_only = policy.parse_group("in", {"inbound": {"ceiling": "10mbit"}}, "groups.in")
    plan = tcplan.plan_device("vnet0", CAPS, outbound=Rate(average=MBIT), group=inbound_only, mac="52:54:00:00:00:01")
    assert plan.port_ifbs == (tcplan.port_ifb("vnet0"),)
    assert [m.direction for m in plan.memberships] == ["inbound"]


def port(**kw):
    base = dict(guest="web1", uuid="u", index=0, mac="52:54:00:00:00:01", dev="vnet0", type="ethernet",
                bridge=None, ovs=False, native=False)
    base.update(kw)
    return resolve.PortPolicy(**base)


def test_plan_port_precedence_effects():
    assert tcplan.plan_port(port(), CAPS) is None                                   # no policy: untouched
    assert tcplan.plan_port(port(ovs=True, inbound=Rate(average=MBIT)), CAPS) is None   # OVS: never tc
    assert tcplan.plan_port(port(dev=None, inbound=Rate(average=MBIT)), CAPS) is None
    native = tcplan.plan_port(port(native=True, inbound=Rate(average=MBIT)), CAPS)   # takeover
    assert native.dev == "vnet0" and native.label.startswith("web1 port 0")
    absent = tcplan.plan_port_absent(port())
    assert not absent.present and absent.port_ifbs == (tcplan.port_ifb("vnet0"),) and absent.mac


def test_plan_is_plain_data():
    plan = tcplan.plan_device("vnet0", CAPS, inbound=Rate(average=10 * MBIT), outbound=Rate(average=MBIT))
    data = plan.as_dict()
    assert data["dev"] == "vnet0" and data["present"]
    assert any(o["object"] == "class" and o["text"].startswith("class htb 1:1 dev vnet0") for o in data["objects"])
    assert "rate 10mbit" in " ".join(plan.describe())


class Ev:
    def __init__(self, driver, op, subop, guest="web1"):
        self.driver, self.op, self.subop, self.guest = driver, op, subop, guest


def test_hook_wants_is_cheap_and_selective():
    from nvhooks.shaping import hook as shapehook
    empty = policy.HostPolicy()
    with_rules = policy.parse_host_policy({"rules": [{"match": {"guest": "*"}, "inbound": {"average": 100}}]})
    xml = b"<domain><devices><interface type='bridge'><bandwidth><inbound average='100'/></bandwidth>"
    assert shapehook.wants(Ev("qemu", "started", "begin"), xml, empty)
    assert shapehook.wants(Ev("qemu", "release", "end"), b"<domain/>", with_rules)
    assert shapehook.wants(Ev("lxc", "reconnect", "begin"), b"<domain/>", with_rules)
    assert not shapehook.wants(Ev("qemu", "started", "begin"), b"<domain/>", empty)
    assert not shapehook.wants(Ev("qemu", "prepare", "begin"), xml, with_rules)
    assert not shapehook.wants(Ev("network", "started", "begin"), xml, with_rules)
    assert not shapehook.wants(Ev("qemu", "stopped", "begin"), xml, with_rules)
    db_only = policy.parse_host_policy({"rules": [{"match": {"guest": "db*"}, "inbound": {"average": 100}}]})
    assert not shapehook.wants(Ev("qemu", "started", "begin"), b"<domain/>", db_only)   # no rule for web1
    assert shapehook.wants(Ev("qemu", "started", "begin", "db1"), b"<domain/>", db_only)
    assert shapehook.wants(Ev("qemu", "release", "end"), b"<domain/>", db_only)        # teardown always looks
