# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Execute a diff against the kernel, undoing this run's changes if a step fails.

``execute`` runs diff.py's Actions in order through kernel/tc.py (tc
objects) and kernel/netlink.py (ifbs, u32 filters with raw keys). A failure
midway undoes what this run did, newest first, so the port is left as it
was; a foreign object this run deleted cannot be re-created and is reported.
An ifb this run removes is parked in the batch (session.py), so undoing its
deletion gives it back with its tc tree.
"""

import errno

from ..errors import KernelError, NetvirtError
from ..kernel import netlink, tc
from . import plan as tcplan
from .diff import ORDER, sort_id, under


class _Exec:
    """Runs and undoes single Actions on the batch's socket."""

    def __init__(self, batch, live):
        self.batch, self.sock, self.live = batch, batch.sock, live
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
                tc.add_htb(self.sock, idx, a["handle"], a["default"], a["r2q"])
            elif kind == "clsact":
                tc.add_clsact(self.sock, idx)
            elif kind == "ingress":
                tc.add_ingress(self.sock, idx, tcplan.INGRESS_HANDLE)
            else:
                tc.add_qdisc(self.sock, kind, idx, a["handle"], obj.id,
                             limit=a["limit"] if kind == "pfifo" else None)
        elif obj.kind == "class":
            tc.add_class(self.sock, idx, obj.id, **_class_values(a))
        elif obj.kind == "filter":
            parent, prio, handle = obj.id
            if a.get("redirect"):
                tc.add_redirect(self.sock, idx, parent, prio, a["protocol"], self.idx(a["redirect"]))
            else:
                netlink.add_u32_raw(self.sock, idx, parent, prio, handle, a["classid"],
                                    netlink.mac_keys(a["mac"], a["mac_at"]), a["protocol"])

    def change(self, obj):
        tc.change_class(self.sock, self.idx(obj.dev), obj.id, **_class_values(dict(obj.attrs)))

    def delete(self, obj):
        # by the ifindex read (a device gone since answers ENODEV: its tc state went with it)
        idx = self._index.pop(obj.dev, None) if obj.kind == "ifb" else self._index.get(obj.dev)
        idx = idx or self._lookup(obj.dev)
        if idx is None:
            return                                   # device gone: its tc state went with it
        a = dict(obj.attrs)
        try:
            if obj.kind == "ifb":
                self.batch.park(idx, obj.dev, obj.get("alias"))   # deleted with the batch (session.py)
                return
            if obj.kind == "qdisc":
                if obj.id == tcplan.CLSACT:
                    handle = a["handle"] if a["kind"] == "ingress" else 0xFFFF0000
                    tc.delete_qdisc(self.sock, a["kind"], idx, handle, tcplan.CLSACT)
                else:
                    tc.delete_qdisc(self.sock, a["kind"], idx, a["handle"], obj.id)
            elif obj.kind == "class":
                tc.delete_class(self.sock, idx, obj.id, a["parent"])
            else:
                parent, prio, handle = obj.id
                tc.delete_filter(self.sock, idx, parent, prio, a.get("protocol", 3),
                                 handle if handle is not None else a["fh"])
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
            # a root qdisc or an ifb went with its whole tree: put the tree back as it was read
            if (obj.kind == "qdisc" and obj.id in (tcplan.ROOT, tcplan.CLSACT)) or obj.kind == "ifb":
                for child in sorted(live.on(obj.dev).values(), key=lambda o: (ORDER[o.kind], sort_id(o.key))):
                    if child.key != obj.key and child.kind != "ifb" and (obj.kind == "ifb" or under(child, obj.id)):
                        self.add(child)


def _class_values(a):
    return {"parent": a["parent"], "rate": a["rate"], "ceil": a["ceil"], "burst": a["burst"],
            "cburst": a["cburst"], "quantum": a["quantum"], "prio": a["prio"]}


def execute(batch, live, plan, actions, log):
    """Run ``actions`` in order; on a failure undo the done ones and raise KernelError."""
    ex = _Exec(batch, live)
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
