# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bridge VLAN requests: read the ports' VLAN tables, add/delete VLAN entries, bridge VLAN switches.

A VLAN table is a dict ``{vid: flags}`` where flags holds only PVID and
UNTAGGED (the bits that describe membership). A refused request becomes a
KernelError naming ``where``; EOPNOTSUPP means the kernel has no bridge
VLAN filtering. pyroute2 is imported inside functions only.
"""

import errno

from . import compat
from ..errors import KernelError

# struct bridge_vlan_info flags (include/uapi/linux/if_bridge.h)
FLAG_PVID, FLAG_UNTAGGED, FLAG_RANGE_BEGIN, FLAG_RANGE_END = 0x2, 0x4, 0x8, 0x10
BRIDGE_FLAGS_SELF = 0x2
NO_FILTERING = ("this kernel has no bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING is off): "
                "VLAN membership cannot be enforced")


def read_tables(sock):
    """{ifindex: table} for every bridge port and bridge (RTEXT_FILTER_BRVLAN dump).

    Range flags (compressed dumps) are expanded, so callers see single ids.
    """
    out = {}
    for msg in compat.dump(sock.get_vlans):
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


def send(sock, op, index, entries, self_=False):
    """One RTM_SETLINK ("add") or RTM_DELLINK ("del") carrying ``entries`` [(vid, flags)].

    ``self_`` addresses the bridge device's own VLANs (``bridge vlan ... self``).
    """
    attrs = [("IFLA_BRIDGE_FLAGS", BRIDGE_FLAGS_SELF)] if self_ else []
    attrs += [("IFLA_BRIDGE_VLAN_INFO", {"vid": vid, "flags": flags}) for vid, flags in entries]
    sock.vlan_filter(op, index=index, af_spec={"attrs": attrs})


def send_all(sock, index, requests, where, self_=False):
    """send() each of ``requests`` [(op, entries)] in order; a refusal is a KernelError for ``where``."""
    from pyroute2.netlink.exceptions import NetlinkError
    try:
        for op, entries in requests:
            send(sock, op, index, entries, self_)
    except NetlinkError as err:
        if err.code == errno.EOPNOTSUPP:
            raise KernelError(NO_FILTERING, where) from None
        raise KernelError(f"the kernel refused the VLAN change: {err}", where) from None


def set_options(sock, index, steps, where, what):
    """Bridge-level VLAN switches: each of ``steps`` (e.g. ``{"br_vlan_filtering": 1}``) is one request.

    ``what`` says the steps in words, for the error if the kernel refuses one.
    """
    from pyroute2.netlink.exceptions import NetlinkError
    try:
        for step in steps:
            sock.link("set", index=index, kind="bridge", **step)
    except NetlinkError as err:
        if err.code == errno.EOPNOTSUPP:
            raise KernelError(NO_FILTERING, where) from None
        raise KernelError(f"the kernel refused the change ({what}): {err}", where) from None


def set_isolated(sock, index, on, where):
    """A bridge port's isolated flag (IFLA_BRPORT_ISOLATED, ``bridge link set dev X isolated on``).

    Isolated ports forward only to non-isolated ports; it needs no VLAN filtering.
    """
    from pyroute2.netlink.exceptions import NetlinkError
    try:
        sock.brport("set", index=index, isolated=int(bool(on)))
    except NetlinkError as err:
        raise KernelError(f"the kernel refused to set isolated {'on' if on else 'off'}: {err}", where) from None
