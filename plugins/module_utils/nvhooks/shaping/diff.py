# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Diff a plan against the live state: the ordered Actions that take one to the other.

Pure (no kernel): ``diff(plan, live)`` gives member objects their member
number, decides what of ours goes (only ours: see live.py), replaces a
differing root-level qdisc with its whole tree, and orders the result so
the kernel accepts every step: replaced roots out first, then additions
parents before children, then deletions children before parents. execute.py
runs the list; undoing it re-adds trees in ``ORDER``.
"""

from typing import Optional

from ..errors import KernelError
from ..policy.record import Record, replace
from . import plan as tcplan
from .live import CLSACT_PARENTS, member_minors
from .plan import Obj

# the attributes that make two objects the same (the rest is derived or the kernel's)
COMPARE = {
    "ifb": ("alias",),
    "qdisc": ("kind", "handle", "default", "r2q", "limit"),
    "class": ("parent", "rate", "ceil", "buffer", "cbuffer", "quantum", "prio"),
    "filter": ("protocol", "redirect", "mac", "mac_at", "classid"),
}
ORDER = {"ifb": 0, "qdisc": 1, "class": 2, "filter": 3}


class Action(Record):
    """One change: op is add | change | delete."""
    op: str
    obj: Obj
    old: Optional[Obj] = None

    def text(self):
        return f"{self.op} {self.obj.text()}"


def _same(want, have):
    keys = COMPARE[want.kind]
    return all(want.get(k) == have.get(k) for k in keys)


def _concretize(plan, live):
    """Give member objects their member number: existing one, else lowest free."""
    out = []
    for obj in plan.objects:
        if obj.scope != "member":
            out.append(obj)
            continue
        members, used = member_minors(live, obj.dev)
        minor = members.get(plan.mac)
        if minor is None:
            free = [m for m in range(tcplan.MEMBER_MIN, tcplan.MEMBER_MAX + 1) if m not in used]
            if not free:
                raise KernelError("group has no free member class left", obj.dev)
            minor = free[0]
        classid = 0x10000 | minor
        if obj.kind == "class":
            out.append(replace(obj, id=classid))
        elif obj.kind == "qdisc":
            out.append(replace(obj, id=classid, attrs=tuple(sorted(dict(obj.attrs, handle=minor << 16).items()))))
        else:
            parent, prio = obj.id[0], obj.id[1]
            out.append(replace(obj, id=(parent, prio, 0x80000000 | minor),
                               attrs=tuple(sorted(dict(obj.attrs, classid=classid).items()))))
    return out


def _member_keys(live, mac, ifbs):
    """Keys of this MAC's member objects on group ifbs."""
    keys = set()
    for ifb in ifbs:
        members = member_minors(live, ifb)[0]
        minor = members.get(mac)
        if minor is None:
            continue
        classid = 0x10000 | minor
        for key, obj in live.on(ifb).items():
            if (obj.kind == "class" and obj.id == classid) or (obj.kind == "qdisc" and obj.id == classid) or \
                    (obj.kind == "filter" and obj.get("classid") == classid):
                keys.add(key)
    return keys


def diff(plan, live):
    """Ordered list of Actions taking the live state to the plan."""
    desired = _concretize(plan, live) if plan.present else []
    want = {o.key: o for o in desired}

    # what is ours, i.e. may be deleted when not wanted
    ours = set(live.on(plan.dev))
    if not plan.present:
        ours = {k for k in ours if _ours_on_tap(live, k, plan.dev)}
    for name in set(plan.port_ifbs) | {tcplan.port_ifb(plan.dev)}:
        if live.ours_ifb(name):
            ours |= set(live.on(name))
    group_ifbs = live.group_ifbs()
    if plan.mac:
        ours |= _member_keys(live, plan.mac, group_ifbs)
    wanted_groups = {o.dev for o in desired if o.scope == "group"}
    for ifb in wanted_groups:
        ours |= {k for k, o in live.on(ifb).items() if k[0] != "filter" and not _is_member_obj(live, ifb, o)}

    adds, deletes, replaced, redo = [], [], set(), set()
    # a root-level qdisc (root or clsact/ingress) that differs is replaced with its whole tree
    for key, obj in want.items():
        have = live.objs.get(key)
        if have is not None and obj.kind == "qdisc" and obj.id in (tcplan.ROOT, tcplan.CLSACT) \
                and not _same(obj, have):
            replaced.add((obj.dev, obj.id))
            deletes.append(have)
    for key, obj in want.items():
        have = live.objs.get(key)
        if have is None or any(obj.dev == dev and under(obj, root) for dev, root in replaced):
            adds.append(Action("add", obj))
        elif not _same(obj, have):
            if obj.kind == "class" and obj.get("parent") == have.get("parent"):
                adds.append(Action("change", obj, have))
            else:
                deletes.append(have)
                redo.add(have.key)
                adds.append(Action("add", obj))
    for key in ours:
        if key not in want:
            deletes.append(live.objs[key])
    # a group ifb goes away with its last member
    for ifb in group_ifbs:
        members = member_minors(live, ifb)[0]
        if ifb not in wanted_groups and plan.mac in members and len(members) == 1:
            deletes.append(live.objs[("ifb", ifb, None)])

    # prune deletions the kernel does anyway (inside a deleted device or root tree)
    gone_devs = {o.dev for o in deletes if o.kind == "ifb"}
    gone_roots = {(o.dev, o.id) for o in deletes if o.kind == "qdisc" and o.id in (tcplan.ROOT, tcplan.CLSACT)}
    final, seen = [], set()
    for obj in deletes:
        if obj.key in seen:
            continue
        seen.add(obj.key)
        if obj.kind != "ifb" and obj.dev in gone_devs:
            continue
        if any(obj.dev == dev and obj.key != ("qdisc", dev, root) and under(obj, root) for dev, root in gone_roots):
            continue
        final.append(Action("delete", obj))
    adds.sort(key=lambda a: (_add_rank(a.obj), a.obj.dev == plan.dev, sort_id(a.obj.key)))
    # replaced roots go first (then re-added); plain deletions last: filters, leaves, classes, roots, ifbs
    first = [a for a in final if ((a.obj.dev, a.obj.id) in replaced and a.obj.kind == "qdisc")
             or a.obj.key in redo]
    first.sort(key=lambda a: _delete_rank(a.obj))
    last = [a for a in final if a not in first]
    last.sort(key=lambda a: (a.obj.dev != plan.dev, _delete_rank(a.obj), sort_id(a.obj.key)))
    return first + adds + last


def _add_rank(obj):
    """Parents before children: devices, root qdiscs, classes (by depth), leaves, filters."""
    if obj.kind == "ifb":
        return 0
    if obj.kind == "qdisc":
        return 1 if obj.id in (tcplan.ROOT, tcplan.CLSACT) else 4
    if obj.kind == "class":
        return 2 if obj.get("parent") == tcplan.HTB_ROOT else 3
    return 5


def _delete_rank(obj):
    if obj.kind == "filter":
        return 0
    if obj.kind == "qdisc":
        return 3 if obj.id in (tcplan.ROOT, tcplan.CLSACT) else 1
    return 2 if obj.kind == "class" else 4


def sort_id(key):
    """A sort key for an object's id (an int, a (parent, prio, handle) tuple or None)."""
    oid = key[2]
    if isinstance(oid, tuple):
        return (1,) + tuple(x if x is not None else -1 for x in oid)
    return (0, oid if oid is not None else -1)


def _is_member_obj(live, ifb, obj):
    members = member_minors(live, ifb)[0]
    minors = set(members.values())
    if obj.kind in ("class", "qdisc") and obj.id != tcplan.ROOT:
        return (obj.id & 0xFFFF) in minors
    return obj.kind == "filter"


def _ours_on_tap(live, key, dev):
    """At teardown: the tap's root HTB 1: tree and a clsact/ingress carrying only our redirects."""
    kind, _dev, oid = key
    obj = live.objs[key]
    if kind == "qdisc" and oid == tcplan.CLSACT:
        return all(str(o.get("redirect", "")).startswith("nv") for o in live.on(dev).values()
                   if o.kind == "filter" and under(o, tcplan.CLSACT))
    if kind == "filter" and under(obj, tcplan.CLSACT):
        return str(obj.get("redirect", "")).startswith("nv")
    root = live.objs.get(("qdisc", dev, tcplan.ROOT))
    return root is not None and root.get("kind") == "htb" and root.get("handle") == tcplan.HTB_ROOT


def under(obj, root):
    """Is obj part of the tree of the root-level qdisc at ``root`` (ROOT or CLSACT)?"""
    if obj.kind == "ifb":
        return False
    if obj.kind == "qdisc":
        return obj.id == root or (root == tcplan.ROOT and obj.id != tcplan.CLSACT)
    if obj.kind == "class":
        return root == tcplan.ROOT
    return (obj.id[0] in CLSACT_PARENTS) == (root == tcplan.CLSACT)
