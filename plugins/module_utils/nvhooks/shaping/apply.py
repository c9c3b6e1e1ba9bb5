# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Apply a shaping plan: the entry points ``apply``, ``query`` and ``session``.

``apply(plan, caps)`` is the one entry for present and absent plans, real
and check mode: under the port's and groups' locks it reads the kernel
(live.py), computes the Actions (diff.py) and, unless in check mode, runs
them with rollback (execute.py). A failure midway undoes what this run did,
newest first, so the port is left as it was (see docs/shaping.md for the
one exception: a foreign object we cannot re-create, logged).
``query(dev)`` reports a device's live shaping with counters;
``session(netns)`` opens a batch (session.py) that many apply calls share.

Taking a port over replaces libvirt's native shaping: one port is never
shaped twice.
"""

import logging
from typing import List, Optional

from .. import locks
from ..errors import KernelError, NetvirtError
from ..kernel import netlink
from ..policy.record import Factory, Record
from . import plan as tcplan, session as tcsession
from .diff import Action, diff
from .execute import execute
from .live import Live, member_minors, observe

_LOG = logging.getLogger("netvirt.shaping")


class Result(Record, mutable=True):
    """What apply did (or, in check mode, would do)."""
    changed: bool
    actions: List[Action]
    before: dict
    after: dict
    plan: Optional[tcplan.Plan] = None
    check_mode: bool = False
    warnings: List[str] = Factory(list)

    def as_dict(self):
        return {"changed": self.changed, "check_mode": self.check_mode,
                "actions": [a.text() for a in self.actions],
                "before": self.before, "after": self.after, "warnings": list(self.warnings)}


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


# a batch for many apply(..., batch=) calls: one socket, one ifb deletion
session = tcsession.session


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


def _apply(batch, plan, caps, check_mode, log, lock_timeout, unless):
    sock = batch.sock
    with locks.group_locks([f"port-{plan.netns or ''}-{plan.dev}"], timeout=lock_timeout):
        # under the port's lock our own memberships cannot change: find the
        # groups we are in, then lock those and the plan's (sorted: no deadlock)
        group_names, group_ifbs = set(plan.groups), None
        if plan.mac:
            first = observe(sock, plan, caps.tick_in_usec)
            # a group ifb appearing after this listing cannot hold our MAC
            # (that takes our port lock) and a plan's own groups are looked
            # up by name: the second reading needs no second listing
            group_ifbs = first.group_ifbs()
            for ifb in group_ifbs:
                if plan.mac in member_minors(first, ifb)[0]:
                    group_names.add(tcplan.group_of(first.links[ifb][1]))
        with locks.group_locks(sorted(group_names), timeout=lock_timeout):
            live = observe(sock, plan, caps.tick_in_usec, group_ifbs)
            if plan.present and live.index.get(plan.dev) is None:
                raise KernelError("device does not exist", f"{plan.label}: device {plan.dev}")
            for obj in plan.objects:
                if obj.kind == "ifb" and obj.dev in live.links and not live.ours_ifb(obj.dev) \
                        and not live.unfinished_ifb(obj.dev):
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
            execute(batch, live, plan, actions, log)
            return result


def query(dev, netns=None, caps=None):
    """Live shaping of ``dev`` (and the ifbs it redirects to), with counters."""
    out = query_many([dev], netns, caps)
    if out["missing"]:
        raise KernelError("device does not exist", dev)
    return dict(out, device=dev)


def query_many(devs, netns=None, caps=None):
    """query() of many devices with one socket: each device and ifb they redirect to read once.

    ``devices``: name -> its qdiscs, classes, filters with counters;
    ``missing``: the names in ``devs`` that do not exist.
    """
    tick = caps.tick_in_usec if caps else 15.625
    with netlink.ipr(netns) as sock:
        live = Live(sock, tick, devs=list(devs))
        out = {"netns": netns, "devices": {}, "missing": [d for d in devs if d not in live.index]}
        todo, seen = list(devs), set()
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
    live.read_dev(dev, ifb=live.links[dev][0] == "ifb", dumped=(qdiscs, classes, filters))
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
