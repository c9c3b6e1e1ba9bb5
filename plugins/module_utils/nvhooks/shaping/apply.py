# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Apply a shaping plan: read the kernel, diff, change only the difference.

``apply(plan, caps)`` is the one entry for present and absent plans, real
and check mode: check mode computes the same action list and stops before
the kernel. A failure midway undoes what this run did, newest first, so the
port is left as it was (see docs/shaping.md for the one exception: a
foreign object we cannot re-create, logged).

What is ours: on the tap, the root qdisc tree and the clsact/ingress qdisc
(taking a port over replaces libvirt's native shaping: one port is never
shaped twice); ifb devices whose alias starts with ``netvirt ``; on group
ifbs, the member objects whose filter matches this port's MAC.
"""

import errno
import logging
from dataclasses import dataclass, field, replace
from typing import List, Optional

from .. import locks
from ..kernel import netlink
from . import plan as tcplan, session as tcsession
from ..errors import KernelError, NetvirtError
from .plan import Obj

COMPARE = {
    "ifb": ("alias",),
    "qdisc": ("kind", "handle", "default", "r2q", "limit"),
    "class": ("parent", "rate", "ceil", "buffer", "cbuffer", "quantum", "prio"),
    "filter": ("protocol", "redirect", "mac", "mac_at", "classid"),
}
ORDER = {"ifb": 0, "qdisc": 1, "class": 2, "filter": 3}
_LOG = logging.getLogger("netvirt.shaping")


@dataclass(frozen=True)
class Action:
    """One change: op is add | change | delete."""
    op: str
    obj: Obj
    old: Optional[Obj] = None

    def text(self):
        return f"{self.op} {self.obj.text()}"


@dataclass
class Result:
    """What apply did (or, in check mode, would do)."""
    changed: bool
    actions: List[Action]
    before: dict
    after: dict
    plan: Optional[tcplan.Plan] = None
    check_mode: bool = False
    warnings: List[str] = field(default_factory=list)

    def as_dict(self):
        return {"changed": self.changed, "check_mode": self.check_mode,
                "actions": [a.text() for a in self.actions],
                "before": self.before, "after": self.after, "warnings": list(self.warnings)}


# ------------------------------------------------------------------ reading the kernel

def _same(want, have):
    keys = COMPARE[want.kind]
    return all(want.get(k) == have.get(k) for k in keys)


def _mk(okind, odev, oid, oscope="port", **attrs):
    return Obj(okind, odev, oid, tuple(sorted(attrs.items())), oscope)


class Live:
    """Our part of the kernel state, normalised to tcplan.Obj."""

    def __init__(self, sock, tick_in_usec, devs=(), all_ifbs=True):
        self.sock = sock
        self.tick = tick_in_usec
        self.objs = {}           # key -> Obj
        self.foreign = {}        # dev -> [text] of objects we cannot re-create
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

    def group_ifbs(self):
        return [n for n, (k, a) in self.links.items()
                if k == "ifb" and (a or "").startswith(f"{tcplan.ALIAS_PREFIX}group ")]

    def read_dev(self, dev, scope="port", ifb=False):
        idx = self.index.get(dev)
        if idx is None:
            return
        if ifb:
            self._put(_mk("ifb", dev, None, scope, alias=self.links[dev][1]))
        qdiscs, classes, filters = netlink.dump(self.sock, idx)
        for msg in qdiscs:
            self._qdisc(dev, msg, scope)
        for msg in classes:
            self._class(dev, msg, scope)
        for msg in filters:
            self._filter(dev, msg, scope)

    def _put(self, obj):
        self.objs[obj.key] = obj

    def _foreign(self, dev, text):
        self.foreign.setdefault(dev, []).append(text)

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
            self._foreign(dev, f"qdisc {kind} {tcplan.handle_text(handle)}")
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
            oid = (msg["parent"], prio, None)        # tap filters: found by side + prio (see tcplan)
        if kind != "u32":
            self._foreign(dev, f"filter {kind} prio {prio}")
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
            self._foreign(dev, f"filter u32 prio {prio} {tcplan.handle_text(handle)}")
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


# ------------------------------------------------------------------ planning the changes

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


def _observe(sock, plan, tick, groups=None):
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
        if have is None or any(obj.dev == dev and _under(obj, root) for dev, root in replaced):
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
        if any(obj.dev == dev and obj.key != ("qdisc", dev, root) and _under(obj, root) for dev, root in gone_roots):
            continue
        final.append(Action("delete", obj))
    adds.sort(key=lambda a: (_add_rank(a.obj), a.obj.dev == plan.dev, _sort_id(a.obj.key)))
    # replaced roots go first (then re-added); plain deletions last: filters, leaves, classes, roots, ifbs
    first = [a for a in final if ((a.obj.dev, a.obj.id) in replaced and a.obj.kind == "qdisc")
             or a.obj.key in redo]
    first.sort(key=lambda a: _delete_rank(a.obj))
    last = [a for a in final if a not in first]
    last.sort(key=lambda a: (a.obj.dev != plan.dev, _delete_rank(a.obj), _sort_id(a.obj.key)))
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


def _sort_id(key):
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
                   if o.kind == "filter" and _under(o, tcplan.CLSACT))
    if kind == "filter" and _under(obj, tcplan.CLSACT):
        return str(obj.get("redirect", "")).startswith("nv")
    root = live.objs.get(("qdisc", dev, tcplan.ROOT))
    return root is not None and root.get("kind") == "htb" and root.get("handle") == tcplan.HTB_ROOT


CLSACT_PARENTS = (tcplan.CLSACT_INGRESS, tcplan.CLSACT_EGRESS, tcplan.INGRESS_HANDLE)


def _under(obj, root):
    """Is obj part of the tree of the root-level qdisc at ``root`` (ROOT or CLSACT)?"""
    if obj.kind == "ifb":
        return False
    if obj.kind == "qdisc":
        return obj.id == root or (root == tcplan.ROOT and obj.id != tcplan.CLSACT)
    if obj.kind == "class":
        return root == tcplan.ROOT
    return (obj.id[0] in CLSACT_PARENTS) == (root == tcplan.CLSACT)


# ------------------------------------------------------------------ executing

class _Exec:
    def __init__(self, batch, live, caps):
        self.batch, self.sock, self.live, self.caps = batch, batch.sock, live, caps
        # ifindexes read by the observation (and of ifbs this run creates):
        # ifindexes are not reused soon, so a device gone under us makes the
        # change fail with ENODEV (and roll back) instead of hitting another
        self._index = {dev: i for dev, i in live.index.items() if i is not None}

    def _lookup(self, dev):
        return netlink.link_index(self.sock, dev)

    def idx(self, dev):
        found = self._index.get(dev) or self._lookup(dev)
        if found is None:
            raise KernelError("device does not exist", dev)
        return found

    def add(self, obj):
        a = dict(obj.attrs)
        if obj.kind == "ifb":
            self._index[obj.dev] = netlink.add_ifb(self.sock, obj.dev, a["alias"])
            return
        idx = self.idx(obj.dev)
        if obj.kind == "qdisc":
            kind = a["kind"]
            if kind == "htb":
                self.sock.tc("add", "htb", idx, a["handle"], default=a["default"], r2q=a["r2q"])
            elif kind in ("clsact", "ingress"):
                if kind == "clsact":
                    self.sock.tc("add", "clsact", idx)
                else:
                    self.sock.tc("add", "ingress", idx, tcplan.INGRESS_HANDLE)
            elif kind == "pfifo":
                self.sock.tc("add", "pfifo", idx, a["handle"], parent=obj.id, limit=a["limit"])
            else:
                self.sock.tc("add", kind, idx, a["handle"], parent=obj.id)
        elif obj.kind == "class":
            self._class("add-class", idx, obj)
        elif obj.kind == "filter":
            parent, prio, handle = obj.id
            if a.get("redirect"):
                self.sock.tc("add-filter", "u32", idx, 0, parent=parent, prio=prio, protocol=a["protocol"],
                             target=0x10001, keys=["0x0/0x0+0"],
                             action={"kind": "mirred", "direction": "egress", "action": "redirect",
                                     "ifindex": self.idx(a["redirect"])})
            else:
                netlink.add_u32_raw(self.sock, idx, parent, prio, handle, a["classid"],
                                    netlink.mac_keys(a["mac"], a["mac_at"]), a["protocol"])

    def _class(self, command, idx, obj):
        a = dict(obj.attrs)
        self.sock.tc(command, "htb", idx, obj.id, parent=a["parent"], rate=a["rate"], ceil=a["ceil"],
                     burst=a["burst"], cburst=a["cburst"], quantum=a["quantum"], prio=a["prio"])

    def change(self, obj):
        self._class("change-class", self.idx(obj.dev), obj)

    def delete(self, obj):
        # by the ifindex read (a device gone since answers ENODEV: its tc state went with it)
        idx = self._index.pop(obj.dev, None) if obj.kind == "ifb" else self._index.get(obj.dev)
        idx = idx or self._lookup(obj.dev)
        if idx is None:
            return                                   # device gone: its tc state went with it
        a = dict(obj.attrs)
        try:
            if obj.kind == "ifb":
                self.batch.park(idx, obj.dev, obj.get("alias"))   # deleted with the batch (tcsession)
                return
            if obj.kind == "qdisc":
                if obj.id == tcplan.CLSACT:
                    self.sock.tc("del", a["kind"], idx, a["handle"] if a["kind"] == "ingress" else 0xFFFF0000,
                                 parent=tcplan.CLSACT)
                else:
                    self.sock.tc("del", a["kind"], idx, a["handle"], parent=obj.id)
            elif obj.kind == "class":
                # no kind: pyroute2 0.9 would build (and choke on) HTB rate tables for a delete
                self.sock.tc("del-class", index=idx, handle=obj.id, parent=a["parent"])
            else:
                parent, prio, handle = obj.id
                # no kind (it may be a foreign fw/police filter): prio and protocol go in tcm_info
                proto = a.get("protocol", 3)
                info = (prio << 16) | ((proto & 0xFF) << 8) | ((proto >> 8) & 0xFF)
                self.sock.tc("del-filter", index=idx, handle=handle if handle is not None else a["fh"],
                             parent=parent, info=info)
        except Exception as err:  # pylint: disable=broad-except
            if getattr(err, "code", None) in (errno.ENOENT, errno.ENODEV):
                return                               # already gone with its parent
            raise

    def run(self, action):
        getattr(self, action.op)(action.obj)

    def undo(self, action, live):
        if action.op == "add":
            self.delete(action.obj)
        elif action.op == "change":
            self.change(action.old)
        elif action.obj.kind == "ifb" and action.obj.dev in self.batch.parked:
            self._index[action.obj.dev] = self.batch.unpark(action.obj.dev)    # with its tc tree intact
        elif action.obj.get("foreign"):
            raise NetvirtError(f"cannot re-create {action.obj.text()}")
        else:
            self.add(action.obj)
            obj = action.obj
            if (obj.kind == "qdisc" and obj.id in (tcplan.ROOT, tcplan.CLSACT)) or obj.kind == "ifb":
                for child in sorted(live.on(obj.dev).values(), key=lambda o: (ORDER[o.kind], _sort_id(o.key))):
                    if child.key != obj.key and child.kind != "ifb" and (obj.kind == "ifb" or _under(child, obj.id)):
                        self.add(child)


def _readable(live, plan, actions):
    """before/after: per device, the text of our objects."""
    devs = {plan.dev} | {a.obj.dev for a in actions} | {o.dev for o in plan.objects}
    before = {}
    for dev in sorted(devs):
        lines = sorted(o.text() for o in live.on(dev).values() if o.kind != "filter" or not o.get("foreign"))
        if lines:
            before[dev] = lines
    state = {k: o for k, o in live.objs.items() if k[1] in devs}
    for act in actions:
        if act.op == "delete":
            state.pop(act.obj.key, None)
            if act.obj.kind == "ifb":
                state = {k: o for k, o in state.items() if k[1] != act.obj.dev}
        else:
            state[act.obj.key] = act.obj
    after = {}
    for dev in sorted(devs):
        lines = sorted(o.text() for o in state.values() if o.dev == dev)
        if lines:
            after[dev] = lines
    return before, after


def apply(plan, caps, check_mode=False, log=None, lock_timeout=30.0, batch=None, unless=None):
    """Make the kernel match ``plan``; returns a Result (raises NetvirtError, after rolling back).

    ``batch``: an open session(plan.netns), shared by a caller applying many
    plans: one socket (with pyroute2 0.9, one netns helper process) and one
    kernel request deleting every ifb the batch removes, when the session
    ends. None: a session of its own for this call. ``unless``: a callable
    asked under the plan's locks, after reading the kernel; a true answer
    (a reason) cancels the change (the orphan collection's last check).
    """
    try:
        if batch is None:
            with session(plan.netns) as own:
                return _apply(own, plan, caps, check_mode, log or _LOG, lock_timeout, unless)
        return _apply(batch, plan, caps, check_mode, log or _LOG, lock_timeout, unless)
    except NetvirtError:
        raise
    except Exception as err:  # pylint: disable=broad-except  # netlink/OS errors while reading
        raise KernelError(f"netlink: {err}", plan.label) from None


session = tcsession.session


def _apply(batch, plan, caps, check_mode, log, lock_timeout, unless):
    sock = batch.sock
    with locks.group_locks([f"port-{plan.netns or ''}-{plan.dev}"], timeout=lock_timeout):
        # under the port's lock our own memberships cannot change: find the
        # groups we are in, then lock those and the plan's (sorted: no deadlock)
        group_names, group_ifbs = set(plan.groups), None
        if plan.mac:
            first = _observe(sock, plan, caps.tick_in_usec)
            # a group ifb appearing after this listing cannot hold our MAC
            # (that takes our port lock) and a plan's own groups are looked
            # up by name: the second reading needs no second listing
            group_ifbs = first.group_ifbs()
            for ifb in group_ifbs:
                if plan.mac in member_minors(first, ifb)[0]:
                    group_names.add(group_of(first.links[ifb][1]))
        with locks.group_locks(sorted(group_names), timeout=lock_timeout):
            live = _observe(sock, plan, caps.tick_in_usec, group_ifbs)
            if plan.present and live.index.get(plan.dev) is None:
                raise KernelError("device does not exist", f"{plan.label}: device {plan.dev}")
            for obj in plan.objects:
                if obj.kind == "ifb" and obj.dev in live.links and not live.ours_ifb(obj.dev):
                    raise KernelError(f"cannot create ifb {obj.dev}: a device of that name exists and is not ours",
                                      plan.label)
            actions = diff(plan, live)
            if actions and unless is not None and unless():
                actions = []
            before, after = _readable(live, plan, actions)
            result = Result(changed=bool(actions), actions=actions, before=before, after=after, plan=plan,
                            check_mode=check_mode)
            result.warnings = [f"replaces {a.obj.text()}" for a in actions
                               if a.op == "delete" and a.obj.get("foreign")]
            if check_mode or not actions:
                return result
            _execute(batch, live, caps, plan, actions, result, log)
            return result


def group_of(alias):
    """'netvirt group <name> <direction>' -> name."""
    return alias[len(tcplan.ALIAS_PREFIX) + len("group "):].rsplit(" ", 1)[0]


def _execute(batch, live, caps, plan, actions, result, log):
    ex = _Exec(batch, live, caps)
    done = []
    for action in actions:
        try:
            ex.run(action)
        except Exception as err:  # pylint: disable=broad-except
            problems = _rollback(ex, live, done, log)
            reason = getattr(err, "message", None) or str(err)
            extra = f"; rollback incomplete: {'; '.join(problems)}" if problems else "; rolled back"
            raise KernelError(f"{action.text()} failed: {reason}{extra}", plan.label) from None
        done.append(action)
    for action in actions:
        log.info("%s: %s", plan.label, action.text())


def _rollback(ex, live, done, log):
    problems = []
    fresh = {a.obj.dev for a in done if a.op == "add" and a.obj.kind == "ifb"}
    for action in reversed(done):
        if action.obj.dev in fresh and action.obj.kind != "ifb":
            continue                                 # goes with the ifb this run created
        try:
            ex.undo(action, live)
        except Exception as err:  # pylint: disable=broad-except
            problems.append(f"undo {action.text()}: {err}")
            log.error("rollback: undo %s failed: %s", action.text(), err)
    return problems


def remove(plan, caps, check_mode=False, log=None, batch=None):
    """Teardown: apply an absent plan (tcplan.plan_absent)."""
    return apply(plan, caps, check_mode=check_mode, log=log, batch=batch)


def query(dev, netns=None, caps=None):
    """Live shaping of ``dev`` (and the ifbs it redirects to), with counters."""
    tick = caps.tick_in_usec if caps else 15.625
    with netlink.ipr(netns) as sock:
        live = Live(sock, tick, devs=[dev])
        if dev not in live.index:
            raise KernelError("device does not exist", dev)
        out = {"device": dev, "netns": netns, "devices": {}}
        todo, seen = [dev], set()
        while todo:
            name = todo.pop(0)
            if name in seen or name not in live.index:
                continue
            seen.add(name)
            out["devices"][name] = _query_dev(sock, live, name)
            todo += [f["redirect"] for f in out["devices"][name]["filters"] if f.get("redirect")]
        return out


def _query_dev(sock, live, dev):
    idx = live.index[dev]
    qdiscs, classes, filters = netlink.dump(sock, idx)
    live.read_dev(dev, ifb=live.links[dev][0] == "ifb")
    counters = {}
    for msg in qdiscs:
        counters[("qdisc", msg["handle"])] = netlink.stats(msg)
    for msg in classes:
        counters[("class", msg["handle"])] = netlink.stats(msg)
    out = {"kind": live.links[dev][0], "alias": live.links[dev][1], "qdiscs": [], "classes": [], "filters": []}
    for obj in live.on(dev).values():
        item = obj.as_dict()
        if obj.kind == "qdisc":
            item.update(counters.get(("qdisc", obj.get("handle")), {}))
            out["qdiscs"].append(item)
        elif obj.kind == "class":
            item.update(counters.get(("class", obj.id), {}))
            out["classes"].append(item)
        elif obj.kind == "filter":
            out["filters"].append(item)
    return out
