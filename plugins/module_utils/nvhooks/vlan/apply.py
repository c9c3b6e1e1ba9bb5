# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bridge port VLANs: plan, diff and apply a port's or a bridge's VLAN table.

A VLAN table is a dict ``{vid: flags}`` where flags holds only PVID and
UNTAGGED (the bits that describe membership). Plans are pure functions of
the current table and the wish, so check mode predicts exactly what a real
run does. Every netlink request is kernel/'s (bridge.py, links.py).
"""

from ..kernel import bridge as kbridge, links as klinks
from ..kernel.bridge import FLAG_PVID, FLAG_RANGE_BEGIN, FLAG_RANGE_END, FLAG_UNTAGGED, NO_FILTERING
from ..policy import vlanset
from ..errors import KernelError, PolicyError

DEFAULT_VID = 1


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

def requests(actions):
    """The (op, entries) requests sending a plan: runs of ids with the same flags go as one range.

    A pvid, and a run of one id, go one id a request.
    """
    out = []
    for op in ("del", "add"):
        items = [(vid, flags) for o, vid, flags in actions if o == op]
        for flags in sorted({f for vid, f in items}):
            ids = [vid for vid, f in items if f == flags]
            for low, high in vlanset.ranges(ids):
                if low == high or flags & FLAG_PVID:
                    out += [(op, [(vid, flags)]) for vid in range(low, high + 1)]
                else:
                    out.append((op, [(low, flags | FLAG_RANGE_BEGIN), (high, flags | FLAG_RANGE_END)]))
    return out


def apply(ipr, index, actions, name, self_=False):
    """Send a plan (see requests); ``self_`` addresses the bridge device's own VLANs."""
    kbridge.send_all(ipr, index, requests(actions), name, self_)


def set_port(ipr, port, want, exclusive=True, remove=frozenset(), protect=frozenset(),
             check=False, bridge=None, netns=None, need_filtering=False, all_links=None, tables=None):
    """Make one bridge port's VLANs follow ``want``; returns a result dict."""
    all_links = all_links if all_links is not None else klinks.by_name(ipr)
    link, master = find_port(all_links, port, bridge, netns)
    (require_filtering if need_filtering else require_capable)(master)
    tables = tables if tables is not None else kbridge.read_tables(ipr)
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
    all_links = all_links if all_links is not None else klinks.by_name(ipr)
    link = all_links.get(bridge)
    if link is None or not link.is_bridge:
        raise KernelError(f"no such bridge{_ns(netns)}", f"bridge {bridge}")
    require_capable(link)
    tables = tables if tables is not None else kbridge.read_tables(ipr)
    before = tables.get(link.index, {})
    actions, after = plan(before, want, exclusive, remove, protect)
    if actions and not check:
        apply(ipr, link.index, actions, f"bridge {bridge}", self_=True)
        tables[link.index] = after
    return {"changed": bool(actions), "bridge": bridge, "before": describe(before),
            "after": describe(after), "actions": action_text(actions, f"{bridge} self")}


def set_bridge(ipr, bridge, vlan_filtering=None, default_pvid=None, check=False, netns=None, all_links=None):
    """Bridge-level switches. ``default_pvid`` 0 means none (ports get no VLAN)."""
    all_links = all_links if all_links is not None else klinks.by_name(ipr)
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
        kbridge.set_options(ipr, link.index, steps, f"bridge {bridge}", ", ".join(actions))
    # also in check mode: later steps of the same run (guest ports) see the bridge as it will be
    link.vlan_filtering = after["vlan_filtering"]
    link.default_pvid = after["default_pvid"]
    return {"changed": bool(steps), "bridge": bridge, "before": before, "after": after, "actions": actions}


def query(ipr, port=None, bridge=None, netns=None):
    """The VLAN table of a port (or of a bridge and each of its ports)."""
    all_links = klinks.by_name(ipr)
    tables = kbridge.read_tables(ipr)
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
