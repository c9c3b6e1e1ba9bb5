"""Metrics without a kernel: the exposition of a snapshot, and a port's sample from plan + query.

The seams: collect.snapshot's plain dict (what export renders) and
shaping.apply.query's dict (what collect reads counters from). The kernel
lane and the libvirt lane read the same from real tc state.
"""
import os

from nvhooks.metrics import collect, export
from nvhooks.policy import model as policy
from nvhooks.policy.resolve import PortPolicy
from nvhooks.shaping import plan as tcplan
from nvhooks.shaping.caps import Caps

CAPS = Caps(leaf="fq_codel", tick_in_usec=15.625)
MAC = "52:54:00:aa:bb:cc"
GROUP = policy.parse_group("web", {"inbound": {"ceiling": "100mbit", "floor": "10mbit"}}, "groups.web")


def _port(**kw):
    base = dict(guest="web1", uuid="6f1e3c6a-8d1e-4b7a-9c8e-0a5b2d1f0001", index=0, mac=MAC, dev="vnet7",
                type="bridge", bridge="br0", ovs=False, native=False)
    base.update(kw)
    return PortPolicy(**base)


def _parse(data):
    from prometheus_client.parser import text_string_to_metric_families
    out = {}
    for family in text_string_to_metric_families(data.decode("utf-8")):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def test_exposition_of_a_snapshot_names_every_label_and_value():
    snap = {"ports": [dict(guest="web1", uuid="u-1", dev="vnet7", mac=MAC, index=0, direction="inbound", group="",
                           device="vnet7", rate=1_250_000, ceil=2_500_000, floor=None, shaped=True, bytes=1000,
                           packets=10, drops=2, overlimits=3, backlog=1514, qlen=1)],
            "groups": [dict(group="web", direction="outbound", device="nvgoabc", rate=6_250_000, floor=None,
                            members=2, shaped=False, bytes=0, packets=0, drops=0, overlimits=0, backlog=0, qlen=0)],
            "errors": ["guest x: bad"]}
    got = _parse(export.exposition(snap))
    labels = {"guest": "web1", "uuid": "u-1", "dev": "vnet7", "mac": MAC, "index": "0", "direction": "inbound",
              "group": ""}
    assert got["netvirt_port_bytes_total"] == [(labels, 1000.0)]
    assert got["netvirt_port_drops_total"] == [(labels, 2.0)]
    assert got["netvirt_port_overlimits_total"] == [(labels, 3.0)]
    assert got["netvirt_port_backlog_bytes"] == [(labels, 1514.0)]
    assert got["netvirt_port_rate_bytes_per_second"] == [(labels, 1_250_000.0)]
    assert got["netvirt_port_ceil_bytes_per_second"] == [(labels, 2_500_000.0)]
    assert "netvirt_port_floor_bytes_per_second" not in got       # a port shaped alone has no floor
    assert got["netvirt_group_members"] == [({"group": "web", "direction": "outbound"}, 2.0)]
    assert got["netvirt_group_shaped"] == [({"group": "web", "direction": "outbound"}, 0.0)]
    assert got["netvirt_metrics_errors"] == [({}, 1.0)]


def test_member_sample_takes_the_class_its_mac_filter_names():
    port = _port(inbound=policy.Rate(average=20_000_000), group=GROUP)
    plan = tcplan.plan_port(port, CAPS)
    gi = tcplan.group_ifb("web", "inbound")
    query = {"devices": {"vnet7": {"classes": [], "filters": [{"redirect": gi}]},
                         gi: {"classes": [{"id": 0x10001, "bytes": 900}, {"id": 0x10011, "bytes": 500, "drops": 4},
                                          {"id": 0x10012, "bytes": 7}],
                              # the leaf counts every drop (fq_codel's at dequeue too), the root all of them
                              "qdiscs": [{"id": 0x10011, "drops": 9, "backlog": 3000, "qlen": 2},
                                         {"id": tcplan.ROOT, "drops": 12, "backlog": 4500, "qlen": 3}],
                              "filters": [{"mac": "52:54:00:00:00:01", "mac_at": -14, "classid": 0x10012},
                                          {"mac": MAC, "mac_at": -14, "classid": 0x10011}]}}}
    sample = collect.port_sample(port, plan, query, "inbound")
    assert sample["group"] == "web" and sample["device"] == gi and sample["shaped"]
    assert (sample["bytes"], sample["drops"], sample["backlog"], sample["qlen"]) == (500, 9, 3000, 2)
    assert sample["rate"] == 2_500_000 and sample["floor"] == 1_250_000     # may use 20 Mbit/s, 10 guaranteed
    assert collect.port_sample(port, plan, query, "outbound") is None     # outbound not shaped
    group = collect.group_sample(port, plan, query, plan.memberships[0])
    assert (group["rate"], group["floor"], group["bytes"], group["drops"]) == (12_500_000, 1_250_000, 900, 12)


def test_a_missing_class_is_reported_not_shaped():
    port = _port(inbound=policy.Rate(average=8_000_000), outbound=policy.Rate(average=4_000_000))
    plan = tcplan.plan_port(port, CAPS)
    sample = collect.port_sample(port, plan, {"devices": {"vnet7": {"classes": [], "filters": []}}}, "outbound")
    assert sample["device"] == tcplan.port_ifb("vnet7") and not sample["shaped"] and sample["bytes"] == 0
    assert sample["rate"] == 500_000


def test_write_textfile_is_atomic_and_world_readable(tmp_path):
    path = tmp_path / "netvirt.prom"
    old = os.umask(0o077)
    try:
        export.write_textfile(str(path), lambda: {"ports": [], "groups": [], "errors": []})
    finally:
        os.umask(old)
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert "netvirt_metrics_errors 0.0" in path.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["netvirt.prom"]     # no temp file left


def test_grafana_dashboard_queries_only_metrics_we_export():
    import json
    import re
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    with open(os.path.join(repo, "docs", "grafana", "netvirt-shaping.json"), encoding="utf-8") as handle:
        dashboard = json.load(handle)
    exported = {name for family in export.families({"ports": [], "groups": [], "errors": []})
                for name in (family.name, f"{family.name}_total")}
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["query"]["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    used = {name for expr in exprs for name in re.findall(r"netvirt_[a-z_]+", expr)}
    assert used and used <= exported, used - exported
    assert {p["title"] for p in dashboard["panels"]} >= {"Rate vs configured rate, per guest",
                                                         "Drops per second, per guest", "Group sharing"}
