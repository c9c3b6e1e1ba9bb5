# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Links: the one model of an interface (Link), lookups, and ifb/link changes over a pyroute2 socket."""

import errno

from . import compat
from ..errors import KernelError


class Link:
    """What the core needs to know about one interface (shaping and VLANs alike).

    Iterating gives ``(index, name, kind, alias)``, the view the shaping code
    unpacks. ``vlan_filtering`` and ``default_pvid`` may be updated by the
    VLAN code, so later steps of a run see a bridge as it will be.
    """

    __slots__ = ("index", "name", "kind", "alias", "master", "vlan_filtering", "default_pvid", "vlan_capable",
                 "isolated")

    def __init__(self, index, name, kind=None, alias=None, master=None, vlan_filtering=False, default_pvid=None,
                 isolated=None):
        self.index, self.name, self.kind, self.alias, self.master = index, name, kind, alias, master
        self.isolated = isolated        # a bridge port's isolated flag (IFLA_BRPORT_ISOLATED); None: not a port
        self.vlan_filtering = vlan_filtering
        self.default_pvid = default_pvid
        # the kernel reports default_pvid (and vlan_protocol) only when built with
        # VLAN filtering: its absence tells us without changing anything
        self.vlan_capable = default_pvid is not None

    @classmethod
    def from_msg(cls, msg):
        """The Link of an RTM_NEWLINK message."""
        info = msg.get_attr("IFLA_LINKINFO")
        kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
        filtering, pvid, isolated = False, None, None
        if kind == "bridge":
            data = info.get_attr("IFLA_INFO_DATA")
            if data:
                filtering = bool(data.get_attr("IFLA_BR_VLAN_FILTERING"))
                pvid = data.get_attr("IFLA_BR_VLAN_DEFAULT_PVID")
        if info is not None and info.get_attr("IFLA_INFO_SLAVE_KIND") == "bridge":
            port = info.get_attr("IFLA_INFO_SLAVE_DATA")
            isolated = bool(port.get_attr("IFLA_BRPORT_ISOLATED")) if port else False
        return cls(msg["index"], msg.get_attr("IFLA_IFNAME"), kind, msg.get_attr("IFLA_IFALIAS"),
                   msg.get_attr("IFLA_MASTER"), filtering, pvid, isolated)

    @property
    def is_bridge(self):
        return self.kind == "bridge"

    def __iter__(self):
        return iter((self.index, self.name, self.kind, self.alias))

    def __repr__(self):
        return f"Link({self.index}, {self.name!r}, kind={self.kind!r}, alias={self.alias!r}, master={self.master})"


# ------------------------------------------------------------------ reading

def by_name(sock):
    """{name: Link} of every interface in the namespace (one dump)."""
    out = {}
    for msg in compat.dump(sock.get_links):
        link = Link.from_msg(msg)
        out[link.name] = link
    return out


def ifb_links(sock):
    """[Link] of the ifb devices: the kernel filters the dump by kind (cheap with many taps)."""
    try:
        return [Link.from_msg(msg) for msg in compat.dump(sock.link, "dump", kind="ifb")]
    except Exception:  # pylint: disable=broad-except  # an old kernel without kind-filtered dumps
        return [link for link in map(Link.from_msg, compat.dump(sock.get_links)) if link.kind == "ifb"]


def lookup(sock, name):
    """Link of ``name`` (one targeted request: pyroute2 0.9's link_lookup dumps every link) or None."""
    return _get(sock, ifname=name)


def lookup_index(sock, index):
    """Link of ifindex ``index`` (one targeted request) or None."""
    return _get(sock, index=index)


def link_index(sock, name):
    """ifindex of ``name`` or None."""
    found = _get(sock, ifname=name)
    return found.index if found else None


def _get(sock, **key):
    try:
        msgs = sock.link("get", **key)
    except Exception:  # pylint: disable=broad-except  # NetlinkError ENODEV
        return None
    for msg in msgs:
        return Link.from_msg(msg)
    return None


# ------------------------------------------------------------------ changing

def add_ifb(sock, name, alias):
    """Create ifb ``name`` with ``alias`` and bring it up; return its index.

    An ifb of that name without any alias is taken over: only a run killed
    between `link add` and setting the alias leaves one (the kernel takes no
    alias in the creating request), and refusing it would block the port for good.
    """
    try:
        sock.link("add", ifname=name, kind="ifb")
    except Exception as err:  # pyroute2 NetlinkError; EOPNOTSUPP without the ifb driver
        code = getattr(err, "code", None)
        if code in (errno.EOPNOTSUPP, errno.ENOENT):
            raise KernelError("cannot create an ifb device: the kernel lacks CONFIG_IFB (module ifb)", name) \
                from None
        if code != errno.EEXIST:
            raise
        found = lookup(sock, name)
        if found is None or not unfinished_ifb(found.kind, found.alias):
            raise KernelError("device already exists and is not ours (its alias does not say netvirt)",
                              name) from None
    index = link_index(sock, name)
    sock.link("set", index=index, ifalias=alias, txqlen=1000)
    sock.link("set", index=index, state="up")
    return index


def unfinished_ifb(kind, alias):
    """An ifb without alias: ours, left by a run killed before it set the alias (``add_ifb``)."""
    return kind == "ifb" and not alias


def set_link(sock, index, **attrs):
    """One RTM_NEWLINK on ``index`` (state, ifname, ifalias, group, ...)."""
    sock.link("set", index=index, **attrs)


def del_links(sock, group, indexes):
    """Delete the devices ``indexes``, all in link group ``group`` and only them, in one request if possible.

    RTM_DELLINK with only IFLA_GROUP removes the whole group with one RCU
    grace period; a kernel that refuses it gets one request per device.
    """
    try:
        sock.link("del", index=0, group=group)
        return
    except Exception:  # pylint: disable=broad-except  # NetlinkError (EOPNOTSUPP/EINVAL on an old kernel)
        pass
    for index in indexes:
        try:
            sock.link("del", index=index)
        except Exception as err:  # pylint: disable=broad-except
            if getattr(err, "code", None) != errno.ENODEV:
                raise
