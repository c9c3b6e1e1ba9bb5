# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One snapshot of every running guest's shaped ports and groups, as plain data.

Nothing here reads tc or guests itself: running guests come from
guests/running.py (status XML), their policy from policy/resolve.py, the
configured values from the very plan the hook applies (shaping/plan.py) and
the counters from shaping/apply.query_many (kernel/netlink.py dumps). export.py
turns a snapshot into the Prometheus exposition; ``netvirt-hooks --json
metrics`` prints it as is.

Per port and direction (as the guest sees it: inbound = to the guest), the
HTB class that holds that traffic: class 1:1 on the tap (inbound) or on the
port's ifb (outbound) for a port shaped alone, the member's class on the
group's ifb for a group member. Per group and direction, the group's class
1:1 (the shared ceiling). Rates are bytes per second, as the kernel keeps them.
"""

from ..errors import NetvirtError

DIRECTIONS = ("inbound", "outbound")
COUNTERS = ("bytes", "packets", "drops", "overlimits")
GAUGES = ("backlog", "qlen")


def snapshot(host=None, log=None):
    """{"ports": [...], "groups": [...], "errors": [...]} for every running guest.

    ``host``: a loaded HostPolicy (None: the host policy file, read now). A
    guest, port or policy that cannot be read is named in ``errors``; the
    others are still reported.
    """
    out = {"ports": [], "groups": [], "errors": []}
    if host is None:
        from .. import paths
        from ..policy import model
        try:
            host = model.load_host_policy(paths.policy_file())
        except NetvirtError as err:
            out["errors"].append(f"host policy: {err}")
            return out
    work = _shaped_ports(host, out["errors"], log)
    if not work:
        return out
    from ..shaping import apply as tcapply, caps as capsmod, plan as tcplan
    kernel = capsmod.get(log)
    try:
        # every device once, with one socket: a group's ifb is shared by all its members
        live = tcapply.query_many(sorted({port.dev for port in work}), caps=kernel)
    except Exception as err:  # pylint: disable=broad-except  # netlink errors: no counters this time
        out["errors"].append(f"reading tc: {err}")
        return out
    groups = {}
    for port in work:
        if port.dev in live["missing"]:
            out["errors"].append(f"{port.label}: device {port.dev} does not exist")
            continue
        try:
            plan = tcplan.plan_port(port, kernel)
        except NetvirtError as err:
            out["errors"].append(f"{port.label}: {err}")
            continue
        for direction in DIRECTIONS:
            sample = port_sample(port, plan, live, direction)
            if sample is not None:
                out["ports"].append(sample)
        for member in plan.memberships:
            key = (member.group, member.direction)
            if key not in groups:
                groups[key] = group_sample(port, plan, live, member)
            groups[key]["members"] += 1
    out["groups"] = [groups[key] for key in sorted(groups)]
    return out


def _shaped_ports(host, errors, log):
    from ..guests import running
    from ..policy import resolve

    class _Log:        # running.domains logs an unreadable status XML: keep it as an error too
        @staticmethod
        def warning(fmt, *args):
            errors.append(fmt % args)
            if log is not None:
                log.warning(fmt, *args)

    work = []
    for domain in running.domains(_Log):
        try:
            ports = resolve.resolve(domain, host)
        except NetvirtError as err:
            errors.append(f"guest {domain.name}: {err}")
            continue
        work += [port for port in ports if port.shaped and port.dev and not port.ovs]
    return work


def _labels(port, direction):
    return {"guest": port.guest, "uuid": port.uuid or "", "dev": port.dev, "mac": port.mac or "",
            "index": port.index, "direction": direction,
            "group": port.group.name if port.group is not None and getattr(port.group, direction) else ""}


def _planned_class(plan, dev, scope, classid=None):
    for obj in plan.objects:
        if obj.kind == "class" and obj.dev == dev and obj.scope == scope and (classid is None or obj.id == classid):
            return obj
    return None


def _live_class(live, dev, classid):
    for item in live["devices"].get(dev, {}).get("classes", []):
        if item.get("id") == classid:
            return item
    return None


def _live_qdisc(live, dev, parent):
    for item in live["devices"].get(dev, {}).get("qdiscs", []):
        if item.get("id") == parent:
            return item
    return None


def _counters(item, queue=None):
    """Counters of a class; drops and the backlog from ``queue`` when given.

    An HTB class counts only the packets its leaf refused at enqueue; the
    leaf qdisc counts every drop (also fq_codel's at dequeue), and the root
    qdisc every drop and packet queued on its device (a group's total).
    """
    out = {name: (item or {}).get(name, 0) for name in COUNTERS + GAUGES}
    if queue is not None:
        out.update(drops=queue.get("drops", 0), backlog=queue.get("backlog", 0), qlen=queue.get("qlen", 0))
    return out


def port_sample(port, plan, live, direction):
    """The sample of one port direction, or None where that direction is not shaped."""
    from ..shaping import plan as tcplan
    member = next((m for m in plan.memberships if m.direction == direction), None)
    if member is not None:
        planned = _planned_class(plan, member.ifb, "member")
        classid = None
        for item in live["devices"].get(member.ifb, {}).get("filters", []):
            if item.get("mac") == plan.mac and item.get("mac_at") == member.mac_at:
                classid = item.get("classid")
        item = _live_class(live, member.ifb, classid) if classid else None
        # a member may use up to its ceil; its HTB rate is the guaranteed floor
        rate, floor, device = planned.get("ceil"), planned.get("rate"), member.ifb
    else:
        device = port.dev if direction == "inbound" else tcplan.port_ifb(port.dev)
        planned = _planned_class(plan, device, "port", tcplan.PORT_CLASS)
        if planned is None:
            return None
        item = _live_class(live, device, tcplan.PORT_CLASS)
        rate, floor = planned.get("rate"), None
    sample = dict(_labels(port, direction), device=device, rate=rate, ceil=planned.get("ceil"), floor=floor,
                  shaped=item is not None)
    leaf = _live_qdisc(live, device, item["id"]) if item is not None else None
    sample.update(_counters(item, leaf))
    return sample


def group_sample(port, plan, live, member):
    """The shared class of a group direction (its ceiling), counted once per group."""
    from ..shaping import plan as tcplan
    planned = _planned_class(plan, member.ifb, "group", tcplan.GROUP_CLASS)
    item = _live_class(live, member.ifb, tcplan.GROUP_CLASS)
    from ..policy import units
    side = getattr(port.group, member.direction)
    sample = {"group": member.group, "direction": member.direction, "device": member.ifb,
              "rate": planned.get("rate") if planned else None,
              # the group's default guaranteed rate per member
              "floor": units.rate_bytes(side.floor) if side.floor else None,
              "members": 0, "shaped": item is not None}
    sample.update(_counters(item, _live_qdisc(live, member.ifb, tcplan.ROOT) if item is not None else None))
    return sample
