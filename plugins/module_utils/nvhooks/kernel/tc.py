# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tc change requests (qdiscs, HTB classes, u32 filters) over a pyroute2 socket.

Each function sends one request through ``sock.tc`` with plain values
(ifindexes, kernel u32 handles, rates in bytes/s, HTB bursts in bytes) and
lets pyroute2's NetlinkError through: callers decide what an errno means.
Reading tc state and u32 filters with raw keys are in netlink.py.
Nothing is imported here: the socket comes from netlink.ipr.
"""

# the classid of a match-all redirect filter: pyroute2's u32 wants a target,
# the mirred action decides where the frame goes
_REDIRECT_TARGET = 0x10001


def add_htb(sock, index, handle, default, r2q=None):
    """Root HTB qdisc ``handle`` with default class minor ``default``; r2q None: the kernel's."""
    opts = {"default": default}
    if r2q is not None:
        opts["r2q"] = r2q
    sock.tc("add", "htb", index, handle, **opts)


def add_clsact(sock, index):
    sock.tc("add", "clsact", index)


def add_ingress(sock, index, handle):
    sock.tc("add", "ingress", index, handle)


def add_qdisc(sock, kind, index, handle, parent, limit=None):
    """A leaf qdisc (fq_codel, sfq, pfifo, ...) at class ``parent``; ``limit`` in packets, for pfifo."""
    if limit is not None:
        sock.tc("add", kind, index, handle, parent=parent, limit=limit)
    else:
        sock.tc("add", kind, index, handle, parent=parent)


def add_class(sock, index, classid, parent, rate, ceil, burst, cburst, quantum, prio=None):
    """HTB class ``classid`` under ``parent``; rates in bytes/s, bursts in bytes; prio None: the kernel's."""
    _htb_class(sock, "add-class", index, classid, parent, rate, ceil, burst, cburst, quantum, prio)


def change_class(sock, index, classid, parent, rate, ceil, burst, cburst, quantum, prio=None):
    """Change an HTB class in place (its leaf qdisc and filters stay)."""
    _htb_class(sock, "change-class", index, classid, parent, rate, ceil, burst, cburst, quantum, prio)


def _htb_class(sock, command, index, classid, parent, rate, ceil, burst, cburst, quantum, prio):
    opts = {"parent": parent, "rate": rate, "ceil": ceil, "burst": burst, "cburst": cburst, "quantum": quantum}
    if prio is not None:
        opts["prio"] = prio
    sock.tc(command, "htb", index, classid, **opts)


def add_redirect(sock, index, parent, prio, protocol, target_index):
    """u32 match-all filter at ``parent`` with a mirred egress redirect to ifindex ``target_index``."""
    sock.tc("add-filter", "u32", index, 0, parent=parent, prio=prio, protocol=protocol,
            target=_REDIRECT_TARGET, keys=["0x0/0x0+0"],
            action={"kind": "mirred", "direction": "egress", "action": "redirect", "ifindex": target_index})


def delete_qdisc(sock, kind, index, handle, parent):
    sock.tc("del", kind, index, handle, parent=parent)


def delete_class(sock, index, classid, parent):
    # no kind: pyroute2 0.9 would build (and choke on) HTB rate tables for a delete
    sock.tc("del-class", index=index, handle=classid, parent=parent)


def delete_filter(sock, index, parent, prio, protocol, handle):
    """Delete the filter ``handle`` at ``parent``/``prio`` of any kind (also foreign fw/police filters)."""
    # no kind (it may not be u32): prio and protocol go in tcm_info, protocol in network byte order
    info = (prio << 16) | ((protocol & 0xFF) << 8) | ((protocol >> 8) & 0xFF)
    sock.tc("del-filter", index=index, handle=handle, parent=parent, info=info)
