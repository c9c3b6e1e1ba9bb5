# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sockets (also in a named netns), tc reads and u32 filters with raw keys; link calls re-exported.

Works with pyroute2 0.7.2 (Debian 12) and 0.9.x; what differs between them
(and every use of pyroute2 internals) is behind compat.py. Links, bridge
VLANs and tc changes have their own files (links.py, bridge.py, tc.py).

* u32 keys at negative offsets (MAC addresses, relative to the network
  header): pyroute2's key parser cannot express them in either version, so
  member filters are sent with our own selector encoding.
* HTB rates above 2^32-1 bytes/s need rate64, which 0.7 cannot send: the
  planner refuses such rates with a clear error.

pyroute2 is imported inside functions only.
"""

import errno
import importlib.util
import os
import struct

from . import compat, watch
# the shaping code calls these as netlink.*: they live in links.py
from .links import add_ifb, del_links, ifb_links, link_index, lookup, lookup_index, set_link, unfinished_ifb  # noqa: F401  pylint: disable=unused-import
from ..errors import NetvirtError


def require():
    """Import pyroute2 or raise a clear error."""
    if importlib.util.find_spec("pyroute2") is None:
        raise NetvirtError("the Python library pyroute2 is required for shaping and VLANs (Debian: python3-pyroute2)")
    compat.light()


def ipr(netns=None):
    """An IPRoute bound to ``netns`` (a name under /run/netns) or to the current namespace.

    The socket is its own context manager (``with ipr(ns) as sock``: closed
    at the end); a caller that keeps it closes it.
    """
    require()
    if not netns:
        from pyroute2 import IPRoute
        return IPRoute()
    if not os.path.exists(f"/run/netns/{netns}"):
        raise NetvirtError("no such network namespace", f"netns {netns}")
    return compat.open_in_netns(netns)


# ------------------------------------------------------------------ tc dumps

def _tc_get(sock, msg_type, index, parent=0, handle=0, dump=False):
    """tc messages answering one request built here (pyroute2's own helpers cannot say what we need).

    A qdisc GET is answered only with NLM_F_ECHO; the kernel broadcasts the
    answer to the TC group as well, as RTM_NEWQDISC from this socket, so the
    socket is registered with watch.py (the agent's drift watch then knows the
    notification is our read, not a change). ENOENT/EINVAL mean "none there".
    """
    from pyroute2.netlink import NLM_F_ACK, NLM_F_DUMP, NLM_F_ECHO, NLM_F_REQUEST
    from pyroute2.netlink.rtnl.tcmsg import tcmsg
    msg = tcmsg()
    msg["family"] = 0
    msg["index"] = index
    msg["parent"] = parent
    msg["handle"] = handle
    flags = NLM_F_REQUEST | (NLM_F_DUMP if dump else NLM_F_ACK | NLM_F_ECHO)
    if not dump:
        watch.own_socket(sock)          # before the request: the broadcast may be read first
    try:
        out = compat.dump(compat.request, sock, msg, msg_type, flags) if dump else compat.request(sock, msg, msg_type, flags)
    except Exception as err:  # pylint: disable=broad-except
        if getattr(err, "code", None) in (errno.ENOENT, errno.EINVAL):
            return []
        raise
    return [m for m in out if m["header"]["type"] in (msg_type - 2, msg_type)]  # RTM_NEW* answers


# qdisc roots whose whole tree the targeted reads below cover; any other root
# (e.g. a foreign tbf with children) is read from the namespace-wide dump
_TARGETED_ROOTS = ("htb", "pfifo_fast", "noqueue", "noop", "mq", "pfifo", "bfifo", "fq_codel", "sfq")


def dev_tc(sock, index):
    """(qdiscs, classes) of one device, asked per device instead of dumping the namespace.

    The kernel's qdisc dump ignores tcm_ifindex (cost grows with every device
    of the namespace), its class dump does not. So: the root and the
    ingress/clsact qdisc by GET, the class dump, and each class's leaf qdisc
    (tcm_info) by GET at that class. Same messages as the dump, minus
    builtin and invisible (default) qdiscs, which the dump leaves out too.
    """
    from pyroute2.netlink.rtnl import RTM_GETQDISC, RTM_GETTCLASS
    # the class dump first: it binds a fresh socket (a port id for _tc_get to register)
    # without a broadcast, so even the first GET's broadcast is known as ours
    classes = [m for m in _tc_get(sock, RTM_GETTCLASS, index, dump=True) if m["index"] == index]
    roots = _tc_get(sock, RTM_GETQDISC, index, parent=0xFFFFFFFF)
    if any(m["handle"] and m.get_attr("TCA_KIND") not in _TARGETED_ROOTS for m in roots):
        return ([m for m in compat.dump(sock.get_qdiscs) if m["index"] == index],
                compat.dump(sock.get_classes, index))
    qdiscs = [m for m in roots if m["index"] == index]
    qdiscs += _tc_get(sock, RTM_GETQDISC, index, parent=0xFFFFFFF1)
    for cls in classes:
        if cls["info"]:
            qdiscs += [m for m in _tc_get(sock, RTM_GETQDISC, index, parent=cls["handle"])
                       if m["handle"] == cls["info"]]
    return [m for m in qdiscs if m.get_attr("TCA_KIND") != "noop"], classes


def dump(sock, index):
    """(qdiscs, classes, filters) netlink messages of one device."""
    qdiscs, classes = dev_tc(sock, index)
    filters = []
    # filters live on root-level qdiscs: the root (HTB 1:) and clsact/ingress
    parents = {m["handle"] for m in qdiscs if m["parent"] == 0xFFFFFFFF and m["handle"]}
    for m in qdiscs:
        kind = m.get_attr("TCA_KIND")
        if kind == "clsact":
            parents |= {0xFFFFFFF2, 0xFFFFFFF3}
        elif kind == "ingress":
            parents.add(0xFFFF0000)
    for parent in sorted(parents):
        try:
            filters += [m for m in compat.dump(sock.get_filters, index, parent=parent) if m.get_attr("TCA_KIND")]
        except NetvirtError:      # compat.dump() gave up on an interrupted dump: never "no filters"
            raise
        except Exception:  # pylint: disable=broad-except  # no filters at that parent
            continue
    return qdiscs, classes, filters


def stats(msg):
    """Counters of a qdisc/class message: bytes, packets, drops, overlimits; backlog (bytes) and qlen (packets)."""
    out = {"bytes": 0, "packets": 0, "drops": 0, "overlimits": 0, "backlog": 0, "qlen": 0}
    basic = msg.get_attr("TCA_STATS2")
    if basic is not None:
        b = basic.get_attr("TCA_STATS_BASIC") or {}
        q = basic.get_attr("TCA_STATS_QUEUE") or {}
        out.update(bytes=b.get("bytes", 0), packets=b.get("packets", 0), drops=q.get("drops", 0),
                   overlimits=q.get("overlimits", 0), backlog=q.get("backlog", 0), qlen=q.get("qlen", 0))
    else:
        s = msg.get_attr("TCA_STATS") or {}
        out.update({k: s.get(k, 0) for k in out})
    return out


# ------------------------------------------------------------------ u32 with raw keys

_U32_CLASSES = {}


def _u32_classes():
    """A tcmsg subclass whose u32 selector takes raw (value, mask, offset) keys."""
    if _U32_CLASSES:
        return _U32_CLASSES["msg"]
    from pyroute2.netlink import nla
    from pyroute2.netlink.rtnl.tcmsg import cls_u32, tcmsg

    class raw_sel(cls_u32.options.u32_sel):  # pylint: disable=invalid-name
        def encode(self):
            keys = self["raw_keys"]
            self["nkeys"] = len(keys)
            self["flags"] = 1                  # TC_U32_TERMINAL
            nla.encode(self)
            offset = self.offset + 20
            for value, mask, off in keys:
                if len(self.data) < offset + 16:
                    self.data.extend(bytes(offset + 16 - len(self.data)))
                struct.pack_into(">II", self.data, offset, mask, value)
                struct.pack_into("ii", self.data, offset + 8, off, 0)
                offset += 16
            self.length = offset - self.offset
            struct.pack_into("H", self.data, self.offset, offset - self.offset)

    class raw_options(cls_u32.options):  # pylint: disable=invalid-name
        nla_map = tuple(cls_u32.options.nla_map)   # recompiled here, so it resolves our u32_sel
        u32_sel = raw_sel

    def options_of(*_argv, **_kwarg):
        return raw_options

    class raw_tcmsg(tcmsg):  # pylint: disable=invalid-name
        nla_map = tuple(tcmsg.nla_map)
        # a plain function (not a method): pyroute2 calls it to get the NLA class
        get_options = staticmethod(options_of)

    # pyroute2 caches a compiled NLA map per class and a subclass inherits the
    # parent's: ours must be compiled afresh to resolve our u32_sel
    for klass in (raw_options, raw_tcmsg):
        compat.fresh_nla_class(klass)
    _U32_CLASSES["msg"] = raw_tcmsg
    return raw_tcmsg


def mac_keys(mac, at):
    """u32 keys matching a MAC at offset ``at`` (-14 dst, -8 src) from the network header."""
    raw = bytes(int(x, 16) for x in mac.split(":"))
    if len(raw) != 6:
        raise NetvirtError(f"{mac!r} is not a MAC address", "mac")
    return [(struct.unpack(">I", raw[:4])[0], 0xFFFFFFFF, at),
            (struct.unpack(">H", raw[4:])[0] << 16, 0xFFFF0000, at + 4)]


def keys_mac(keys):
    """Inverse of mac_keys for a decoded selector: (mac, at) or None."""
    if len(keys) != 2:
        return None
    (m1, v1, o1), (m2, v2, o2) = keys
    if m1 != 0xFFFFFFFF or m2 != 0xFFFF0000 or o2 != o1 + 4 or o1 not in (-14, -8):
        return None
    raw = struct.pack(">I", v1) + struct.pack(">I", v2)[:2]
    return ":".join(f"{b:02x}" for b in raw), o1


def add_u32_raw(sock, index, parent, prio, handle, classid, keys, protocol=0x0003):
    """Add a u32 filter with raw keys and a target class (no action)."""
    from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST
    from pyroute2.netlink.rtnl import RTM_NEWTFILTER
    msg = _u32_classes()()
    msg["family"] = 0
    msg["index"] = index
    msg["handle"] = handle
    msg["parent"] = parent
    msg["info"] = ((prio << 16) & 0xFFFF0000) | struct.unpack("<H", struct.pack(">H", protocol))[0]
    msg["attrs"] = [["TCA_KIND", "u32"],
                    ["TCA_OPTIONS", {"attrs": [["TCA_U32_CLASSID", classid],
                                               ["TCA_U32_SEL", {"raw_keys": keys, "keys": []}]]}]]
    compat.request(sock, msg, RTM_NEWTFILTER, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)


def filter_keys(msg):
    """[(mask, value, off)] of a u32 filter message, or [].

    Read from the raw selector: pyroute2 (0.7 and 0.9) decodes the keys four
    bytes too early (it skips 16 bytes of a 20-byte header).
    """
    opts = msg.get_attr("TCA_OPTIONS")
    sel = opts.get_attr("TCA_U32_SEL") if opts else None
    if not sel:
        return []
    keys = []
    base = sel.offset + 4 + 16                       # NLA header + tc_u32_sel
    for i in range(sel["nkeys"]):
        mask, value = struct.unpack_from(">II", sel.data, base + 16 * i)
        (off,) = struct.unpack_from("i", sel.data, base + 16 * i + 8)
        keys.append((mask, value, off))
    return keys
