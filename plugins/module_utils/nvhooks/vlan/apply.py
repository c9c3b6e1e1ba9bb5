# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bridge port VLANs: read the kernel's table, plan, diff, apply (pyroute2).

A VLAN table is a dict ``{vid: flags}`` where flags holds only PVID and
UNTAGGED (the bits that describe membership). Plans are pure functions of
the current table and the wish, so check mode predicts exactly what a real
run does. Works with pyroute2 0.7.x (Debian 12) and 0.9.x; pyroute2 is
imported lazily.
"""

import errno

from ..policy import vlanset
from ..errors import KernelError, PolicyError

AF_BRIDGE = 7
FLAG_MASTER, FLAG_PVID, FLAG_UNTAGGED = 0x1, 0x2, 0x4
FLAG_RANGE_BEGIN, FLAG_RANGE_END, FLAG_BRENTRY = 0x8, 0x10, 0x20
BRIDGE_FLAGS_SELF = 0x2
DEFAULT_VID = 1
NO_FILTERING = ("this kernel has no bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING is off): "
                "VLAN membership cannot be enforced")


# ------------------------------------------------------------------ netlink

def open_netlink(netns=None):
    """An IPRoute, inside ``netns`` when given (0.9: IPRoute(netns=); 0.7: NetNS)."""
    from pyroute2 import IPRoute
    if not netns:
        return IPRoute()
    try:
        return IPRoute(netns=netns)
    except TypeError:                  # pyroute2 0.7 has no netns= on IPRoute
        from pyroute2 import NetNS
        return NetNS(netns)


def _attr(msg, name, default=None):
    value = msg.get_attr(name)
    return default if value is None else value


class Link:
    """What we need to know about one interface."""

    def __init__(self, msg):
        self.index = msg["index"]
        self.name = _attr(msg, "IFLA_IFNAME")
        self.master = _attr(msg, "IFLA_MASTER")
        info = msg.get_attr("IFLA_LINKINFO")
        self.kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
        data = info.get_attr("IFLA_INFO_DATA") if info is not None else None
        self.is_bridge = self.kind == "bridge"
        self.vlan_filtering = bool(data.get_attr("IFLA_BR_VLAN_FILTERING")) if self.is_bridge and data else False
        # The kernel reports default_pvid (and vlan_protocol) only when built
        # with VLAN filtering: its absence is how we know without changing anything.
        self.default_pvid = data.get_attr("IFLA_BR_VLAN_DEFAULT_PVID") if self.is_bridge and data else None
        self.vlan_capable = self.default_pvid is not None


def links(ipr):
    """{name: Link} of every interface in the namespace."""
    out = {}
    for msg in ipr.get_links():
        link = Link(msg)
        out[link.name] = link
    return out


def _ns(netns):
    return f" (netns {netns})" if netns else ""


def find_port(all_links, port, bridge=None, netns=None):
    """The port's Link and its bridge's Link, or a clear error."""
    link = all_links.get(port)
    if link is None:
        raise KernelError(f"no such interface{_ns(netns)}", f"port {port}")
    by_index = {lk.index: lk for lk in all_links.values()}
    master = by_index.get(link.master) if link.master else None
    if bridge is not None and bridge not in all_links:
        raise KernelError(f"no such bridge{_ns(netns)}", f"bridge {bridge}")
    if master is None or not master.is_bridge:
        raise PolicyError(f"is not a port of any bridge{_ns(netns)}"
                          + (f" (expected bridge {bridge})" if bridge else ""), f"port {port}")
    if bridge is not None and master.name != bridge:
        raise PolicyError(f"is a port of bridge {master.name}, not of bridge {bridge}", f"port {port}")
    return link, master


def require_capable(bridge_link):
    if not bridge_link.vlan_capable:
        raise KernelError(NO_FILTERING, f"bridge {bridge_link.name}")


def require_filtering(bridge_link):
    require_capable(bridge_link)
    if not bridge_link.vlan_filtering:
        raise KernelError("vlan_filtering is off on this bridge: every port would reach every VLAN",
                          f"bridge {bridge_link.name}")


def read_tables(ipr):
    """{ifindex: table} for every bridge port and bridge (RTEXT_FILTER_BRVLAN dump).

    Range flags (compressed dumps) are expanded, so callers see single ids.
    """
    out = {}
    for msg in ipr.get_vlans():
        spec = msg.get_attr("IFLA_AF_SPEC")
        table = {}
        begin = None
        for name, info in (spec["attrs"] if spec is not None else ()):
            if name != "IFLA_BRIDGE_VLAN_INFO":
                continue
            vid, flags = info["vid"], info["flags"]
            keep = flags & (FLAG_PVID | FLAG_UNTAGGED)
            if flags & FLAG_RANGE_BEGIN:
                begin = vid
                continue
            first = begin if (flags & FLAG_RANGE_END and begin is not None) else vid
            begin = None
            for one in range(first, vid + 1):
                table[one] = keep
        out[msg["index"]] = table
    return out


def read_table(ipr, index):
    return read_tables(ipr).get(index, {})


# ------------------------------------------------------------------ tables

def describe(table):
    """The table as text for results and diffs."""
    pvid = next((vid for vid, flags in sorted(table.items()) if flags & FLAG_PVID), None)
    untagged = {vid for vid, flags in table.items() if flags & FLAG_UNTAGGED}
    return {"pvid": pvid, "vids": vlanset.format_vids(table),
            "untagged": vlanset.format_vids(untagged),
            "tagged": vlanset.format_vids(set(table) - untagged)}


def lines(table):
    """One line per run of ids with equal flags: ``100 pvid untagged``."""
    out = []
    for flags in sorted(set(table.values())):
        ids = [vid for vid, f in table.items() if f == flags]
        for low, high in vlanset.ranges(ids):
            words = (["pvid"] if flags & FLAG_PVID else []) + (["untagged"] if flags & FLAG_UNTAGGED else [])
            out.append(" ".join([str(low) if low == high else f"{low}-{high}"] + words))
    return sorted(out, key=lambda line: int(line.split()[0].split("-")[0]))


def wish(pvid=None, untagged=True, vids=frozenset()):
    """The table a switch-port style configuration asks for."""
    table = {vid: 0 for vid in vids}
    if pvid is not None:
        if pvid in table:
            raise PolicyError(f"VLAN {pvid} is both the pvid and in vids", "pvid")
        table[pvid] = FLAG_PVID | (FLAG_UNTAGGED if untagged else 0)
    return table


def policy_table(vlan):
    """Desired table of a policy.VlanPolicy."""
    return wish(vlan.pvid, vlan.untagged, vlan.tagged)


def plan(current, want, exclusive=True, remove=frozenset(), protect=frozenset()):
    """Actions turning ``current`` into ``want``; returns (actions, after).

    ``exclusive`` removes every id not wanted (except ``protect``); ``remove``
    removes the given ids. Actions are ``("del"|"add", vid, flags)``; deletes
    come first, so a port never holds old and new VLANs at once.
    """
    dels = {vid for vid in current if vid not in want and (vid in remove or exclusive) and vid not in protect}
    adds = {vid: flags for vid, flags in want.items() if current.get(vid) != flags}
    after = {vid: flags for vid, flags in current.items() if vid not in dels}
    if any(flags & FLAG_PVID for flags in adds.values()):
        # the kernel keeps one pvid per port: a new pvid clears the old one
        after = {vid: flags & ~FLAG_PVID for vid, flags in after.items()}
    after.update(adds)
    actions = [("del", vid, 0) for vid in sorted(dels)]
    actions += [("add", vid, flags) for vid, flags in sorted(adds.items())]
    return actions, after


def action_text(actions, device):
    """``bridge vlan`` lines saying what a plan does, for results and logs."""
    out = []
    for op in ("del", "add"):
        for flags in sorted({f for o, vid, f in actions if o == op}):
            ids = [vid for o, vid, f in actions if o == op and f == flags]
            words = ["pvid"] if flags & FLAG_PVID and op == "add" else []
            words += ["untagged"] if flags & FLAG_UNTAGGED and op == "add" else []
            for low, high in vlanset.ranges(ids):
                vid = str(low) if low == high else f"{low}-{high}"
                out.append(" ".join([op, "dev", device, "vid", vid] + words))
    return out


# ------------------------------------------------------------------ apply

def _send(ipr, op, index, entries, self_):
    attrs = [("IFLA_BRIDGE_FLAGS", BRIDGE_FLAGS_SELF)] if self_ else []
    attrs += [("IFLA_BRIDGE_VLAN_INFO", {"vid": vid, "flags": flags}) for vid, flags in entries]
    ipr.vlan_filter(op, index=index, af_spec={"attrs": attrs})


def apply(ipr, index, actions, name, self_=False):
    """Send a plan. Runs of ids with the same flags go as one range message.

    ``self_`` addresses the bridge device's own VLANs (``bridge vlan ... self``).
    """
    from pyroute2.netlink.exceptions import NetlinkError
    try:
        for op in ("del", "add"):
            items = [(vid, flags) for o, vid, flags in actions if o == op]
            for flags in sorted({f for vid, f in items}):
                ids = [vid for vid, f in items if f == flags]
                for low, high in vlanset.ranges(ids):
                    if low == high or flags & FLAG_PVID:
                        entries = [(vid, flags) for vid in range(low, high + 1)]
                        for entry in entries:
                            _send(ipr, op, index, [entry], self_)
                    else:
                        _send(ipr, op, index, [(low, flags | FLAG_RANGE_BEGIN),
                                               (high, flags | FLAG_RANGE_END)], self_)
    except NetlinkError as err:
        if err.code == errno.EOPNOTSUPP:
            raise KernelError(NO_FILTERING, name) from None
        raise KernelError(f"the kernel refused the VLAN change: {err}", name) from None


def set_port(ipr, port, want, exclusive=True, remove=frozenset(), protect=frozenset(),
             check=False, bridge=None, netns=None, need_filtering=False, all_links=None, tables=None):
    """Make one bridge port's VLANs follow ``want``; returns a result dict."""
    all_links = all_links if all_links is not None else links(ipr)
    link, master = find_port(all_links, port, bridge, netns)
    (require_filtering if need_filtering else require_capable)(master)
    tables = tables if tables is not None else read_tables(ipr)
    before = tables.get(link.index, {})
    actions, after = plan(before, want, exclusive, remove, protect)
    if actions and not check:
        apply(ipr, link.index, actions, f"port {port}")
        tables[link.index] = after
    return {"changed": bool(actions), "port": port, "bridge": master.name,
            "before": describe(before), "after": describe(after),
            "actions": action_text(actions, port), "vlan_filtering": master.vlan_filtering}


def set_self(ipr, bridge, want, exclusive=True, remove=frozenset(), protect=frozenset(),
             check=False, netns=None, all_links=None, tables=None):
    """The bridge device's own VLANs (what the host stack sees on the bridge)."""
    all_links = all_links if all_links is not None else links(ipr)
    link = all_links.get(bridge)
    if link is None or not link.is_bridge:
        raise KernelError(f"no such bridge{_ns(netns)}", f"bridge {bridge}")
    require_capable(link)
    tables = tables if tables is not None else read_tables(ipr)
    before = tables.get(link.index, {})
    actions, after = plan(before, want, exclusive, remove, protect)
    if actions and not check:
        apply(ipr, link.index, actions, f"bridge {bridge}", self_=True)
        tables[link.index] = after
    return {"changed": bool(actions), "bridge": bridge, "before": describe(before),
            "after": describe(after), "actions": action_text(actions, f"{bridge} self")}


def set_bridge(ipr, bridge, vlan_filtering=None, default_pvid=None, check=False, netns=None, all_links=None):
    """Bridge-level switches. ``default_pvid`` 0 means none (ports get no VLAN)."""
    from pyroute2.netlink.exceptions import NetlinkError
    all_links = all_links if all_links is not None else links(ipr)
    link = all_links.get(bridge)
    if link is None or not link.is_bridge:
        raise KernelError(f"no such bridge{_ns(netns)}", f"bridge {bridge}")
    require_capable(link)
    before = {"vlan_filtering": link.vlan_filtering, "default_pvid": link.default_pvid}
    target = link.vlan_filtering if vlan_filtering is None else bool(vlan_filtering)
    after = {"vlan_filtering": target, "default_pvid": link.default_pvid}
    steps = []
    if default_pvid is not None and default_pvid != link.default_pvid:
        # the kernel refuses a new default_pvid while filtering is on (EPERM)
        if link.vlan_filtering:
            steps.append({"br_vlan_filtering": 0})
        steps.append({"br_vlan_default_pvid": default_pvid})
        if target:
            steps.append({"br_vlan_filtering": 1})
        after["default_pvid"] = default_pvid
    elif target != link.vlan_filtering:
        steps.append({"br_vlan_filtering": int(target)})
    actions = [" ".join(f"{k[3:]} {v}" for k, v in step.items()) for step in steps]
    if steps and not check:
        try:
            for step in steps:
                ipr.link("set", index=link.index, kind="bridge", **step)
        except NetlinkError as err:
            if err.code == errno.EOPNOTSUPP:
                raise KernelError(NO_FILTERING, f"bridge {bridge}") from None
            raise KernelError(f"the kernel refused the change ({', '.join(actions)}): {err}",
                              f"bridge {bridge}") from None
    # also in check mode: later steps of the same run (guest ports) see the bridge as it will be
    link.vlan_filtering = after["vlan_filtering"]
    link.default_pvid = after["default_pvid"]
    return {"changed": bool(steps), "bridge": bridge, "before": before, "after": after, "actions": actions}


def query(ipr, port=None, bridge=None, netns=None):
    """The VLAN table of a port (or of a bridge and each of its ports)."""
    all_links = links(ipr)
    tables = read_tables(ipr)
    if port is not None:
        link, master = find_port(all_links, port, bridge, netns)
        require_capable(master)
        table = tables.get(link.index, {})
        return {"port": port, "bridge": master.name, "vlan_filtering": master.vlan_filtering,
                "table": describe(table), "lines": lines(table)}
    link = all_links.get(bridge)
    if link is None or not link.is_bridge:
        raise KernelError(f"no such bridge{_ns(netns)}", f"bridge {bridge}")
    require_capable(link)
    ports = {lk.name: describe(tables.get(lk.index, {})) for lk in all_links.values() if lk.master == link.index}
    return {"bridge": bridge, "vlan_filtering": link.vlan_filtering, "default_pvid": link.default_pvid,
            "table": describe(tables.get(link.index, {})), "lines": lines(tables.get(link.index, {})),
            "ports": ports}
