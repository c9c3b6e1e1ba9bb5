# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The live side of shaping: our part of the kernel's tc state, as plan.Obj.

``Live`` reads the devices a plan touches (through kernel/netlink.py) and
normalises each qdisc, HTB class, u32 filter and ifb to the same Obj a plan
carries, so diff.py compares like with like. ``observe`` reads what one
plan touches; ``member_minors`` tells the members of a group ifb apart.

What is ours: on the tap, the root qdisc tree and the clsact/ingress qdisc;
ifb devices whose alias starts with ``netvirt ``; on group ifbs, the member
objects whose filter matches this port's MAC. An object we can remove but
not re-create (e.g. a tbf, a fw filter) is marked ``foreign``.
"""

from ..kernel import netlink
from . import plan as tcplan
from .plan import Obj

# filter parents of a clsact/ingress qdisc (the tap's redirects)
CLSACT_PARENTS = (tcplan.CLSACT_INGRESS, tcplan.CLSACT_EGRESS, tcplan.INGRESS_HANDLE)


def _mk(okind, odev, oid, oscope="port", **attrs):
    return Obj(okind, odev, oid, tuple(sorted(attrs.items())), oscope)


class Live:
    """Our part of the kernel state, normalised to plan.Obj."""

    def __init__(self, sock, tick_in_usec, devs=(), all_ifbs=True):
        self.sock = sock
        self.tick = tick_in_usec
        self.objs = {}           # key -> Obj
        self.index = {}          # dev -> ifindex
        self.names = {}          # ifindex -> name
        self.links = {}          # name -> (kind, alias)
        # every ifb is listed only when group ifbs must be found by alias (a
        # port's MAC may be a member of groups its plan no longer names);
        # otherwise devices are asked for by name: cost independent of the
        # number of devices in the namespace
        if all_ifbs:
            for link in netlink.ifb_links(sock):
                self._add(link)
        for name in devs:
            self.lookup(name)

    def _add(self, link):
        idx, name, kind, alias = link
        self.index[name] = idx
        self.names[idx] = name
        self.links[name] = (kind, alias)

    def lookup(self, name):
        """ifindex of any device ``name`` (also non-ifb), or None."""
        if name not in self.index:
            link = netlink.lookup(self.sock, name)
            if link is not None:
                self._add(link)
        return self.index.get(name)

    def name_of(self, index):
        """Name of ifindex ``index`` (asked once), or 'ifindex N' for a gone device."""
        if index not in self.names:
            link = netlink.lookup_index(self.sock, index)
            if link is None:
                return f"ifindex {index}"
            self._add(link)
        return self.names[index]

    def ours_ifb(self, name):
        kind, alias = self.links.get(name, (None, None))
        return kind == "ifb" and (alias or "").startswith(tcplan.ALIAS_PREFIX)

    def unfinished_ifb(self, name):
        """``name`` is an ifb that a killed run left without alias: ``add_ifb`` finishes it."""
        return name in self.links and netlink.unfinished_ifb(*self.links[name])

    def group_ifbs(self):
        return [n for n, (k, a) in self.links.items()
                if k == "ifb" and (a or "").startswith(f"{tcplan.ALIAS_PREFIX}group ")]

    def read_dev(self, dev, scope="port", ifb=False, dumped=None):
        """Read ``dev``'s objects; ``dumped``: its netlink.dump already made (not asked twice)."""
        idx = self.index.get(dev)
        if idx is None:
            return
        if ifb:
            self._put(_mk("ifb", dev, None, scope, alias=self.links[dev][1]))
        qdiscs, classes, filters = dumped or netlink.dump(self.sock, idx)
        for msg in qdiscs:
            self._qdisc(dev, msg, scope)
        for msg in classes:
            self._class(dev, msg, scope)
        for msg in filters:
            self._filter(dev, msg, scope)

    def _put(self, obj):
        self.objs[obj.key] = obj

    def _qdisc(self, dev, msg, scope):
        kind, handle, parent = msg.get_attr("TCA_KIND"), msg["handle"], msg["parent"]
        if parent == tcplan.ROOT and handle == 0:
            return                                   # the device's default qdisc: nobody's
        if kind in ("clsact", "ingress"):
            self._put(_mk("qdisc", dev, tcplan.CLSACT, scope, kind=kind, handle=handle))
            return
        if parent == 0 or (parent >> 16) == 0 and parent != tcplan.ROOT:
            return                                   # mq children and such
        opts = msg.get_attr("TCA_OPTIONS")
        attrs = {"kind": kind, "handle": handle}
        if kind == "htb" and opts is not None:
            init = opts.get_attr("TCA_HTB_INIT") or {}
            attrs.update(default=init.get("defcls"), r2q=init.get("rate2quantum"))
        elif kind == "pfifo" and opts is not None:
            attrs["limit"] = opts.get("limit")
        elif kind not in ("fq_codel", "sfq", "pfifo"):
            attrs["foreign"] = kind                  # e.g. tbf, netem: we can remove, not re-create it
        self._put(_mk("qdisc", dev, parent, scope, **attrs))

    def _class(self, dev, msg, scope):
        if msg.get_attr("TCA_KIND") != "htb":
            return
        opts = msg.get_attr("TCA_OPTIONS")
        parms = opts.get_attr("TCA_HTB_PARMS") if opts is not None else None
        if parms is None:
            return
        rate = opts.get_attr("TCA_HTB_RATE64") or parms["rate"]
        ceil = opts.get_attr("TCA_HTB_CEIL64") or parms["ceil"]
        # the kernel keeps bursts as psched ticks at the rate: back to bytes, as planned
        burst = round(parms["buffer"] / self.tick * rate / 1e6) if rate else 0
        cburst = round(parms["cbuffer"] / self.tick * ceil / 1e6) if ceil else 0
        parent = msg["parent"]
        if parent == tcplan.ROOT:                    # the kernel says root for a top class
            parent = msg["handle"] & 0xFFFF0000
        self._put(_mk("class", dev, msg["handle"], scope, parent=parent, rate=rate, ceil=ceil,
                      burst=burst, cburst=cburst, buffer=parms["buffer"], cbuffer=parms["cbuffer"],
                      quantum=parms["quantum"], prio=parms["prio"]))

    def _filter(self, dev, msg, scope):
        info, handle = msg["info"], msg["handle"]
        prio, proto = info >> 16, ((info & 0xFF) << 8) | ((info >> 8) & 0xFF)
        kind = msg.get_attr("TCA_KIND")
        oid = (msg["parent"], prio, handle)
        if msg["parent"] in CLSACT_PARENTS and ("filter", dev, (msg["parent"], prio, None)) not in self.objs:
            oid = (msg["parent"], prio, None)        # tap filters: found by side + prio (see plan.py)
        if kind != "u32":
            self._put(_mk("filter", dev, oid, scope, protocol=proto, foreign=kind, fh=handle))
            return
        if handle & 0xFFF == 0:
            return                                   # u32 hash table entry, not a rule
        opts = msg.get_attr("TCA_OPTIONS")
        keys = netlink.filter_keys(msg)
        attrs = {"protocol": proto, "fh": handle}
        redirect = _mirred_target(opts, self.name_of)
        if redirect is not None:
            attrs["redirect"] = redirect
        mac = netlink.keys_mac(keys)
        if mac is not None:
            attrs["mac"], attrs["mac_at"] = mac
            attrs["classid"] = opts.get_attr("TCA_U32_CLASSID")
        if redirect is None and mac is None:
            attrs["foreign"] = "u32"
        self._put(_mk("filter", dev, oid, scope, **attrs))

    def on(self, dev):
        return {k: o for k, o in self.objs.items() if o.dev == dev}


def _mirred_target(opts, name_of):
    acts = opts.get_attr("TCA_U32_ACT") if opts is not None else None
    if not acts:
        return None
    for _name, act in acts["attrs"]:
        if not hasattr(act, "get_attr") or act.get_attr("TCA_ACT_KIND") != "mirred":
            continue
        parms = act.get_attr("TCA_ACT_OPTIONS").get_attr("TCA_MIRRED_PARMS")
        return name_of(parms["ifindex"])
    return None


def member_minors(live, ifb):
    """{mac: minor} and the set of used minors on a group ifb."""
    members, used = {}, set()
    for (kind, dev, oid), obj in live.objs.items():
        if dev != ifb:
            continue
        if kind == "class":
            used.add(oid & 0xFFFF)
        elif kind == "filter" and obj.get("mac"):
            classid = obj.get("classid") or 0
            members[obj.get("mac")] = classid & 0xFFFF
            used.add(classid & 0xFFFF)
    return members, used


def observe(sock, plan, tick, groups=None):
    """Read what the plan touches; ``groups``: group ifbs already found this run (no second listing)."""
    names = {plan.dev, tcplan.port_ifb(plan.dev)} | set(plan.port_ifbs) | {o.dev for o in plan.objects if o.kind == "ifb"}
    live = Live(sock, tick, devs=sorted(names | set(groups or ())), all_ifbs=bool(plan.mac) and groups is None)
    live.read_dev(plan.dev)
    for name in set(plan.port_ifbs) | {tcplan.port_ifb(plan.dev)}:
        if live.ours_ifb(name):
            live.read_dev(name, ifb=True)
    for name in live.group_ifbs():
        live.read_dev(name, scope="group", ifb=True)
    return live
