# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Netlink link and tc notifications, for the agent's drift heal.

A plain rtnetlink socket bound to the link and tc multicast groups: only the
message type and the ifindex (and, for links, name and alias) are read, the
same on every pyroute2 version, so no pyroute2 internals are needed here.
Reading the objects themselves stays with netlink.py / live.py.
"""

import collections
import socket
import struct
import threading

RTMGRP_LINK = 0x1
RTMGRP_TC = 0x8
_TYPES = {16: ("link", "new"), 17: ("link", "del"), 36: ("qdisc", "new"), 37: ("qdisc", "del"),
          40: ("class", "new"), 41: ("class", "del"), 44: ("filter", "new"), 45: ("filter", "del")}
_IFLA_IFNAME, _IFLA_IFALIAS = 3, 20
_NLMSG_HDR = struct.Struct("=IHHII")
_IFINDEX = struct.Struct("=i")          # at offset 4 of ifinfomsg and of tcmsg
# netlink port ids of this process's sockets that asked the kernel for a qdisc
# by GET: the kernel also broadcasts each answer to the TC group (as if the
# qdisc were new), which a watcher must not take for a change. Bounded: a
# port id closed long ago may be reused by another process.
_OWN = collections.deque(maxlen=64)
_OWN_LOCK = threading.Lock()


def own_socket(sock):
    """Remember ``sock``'s port id: notifications it causes are not changes (see _OWN)."""
    try:
        port = sock.getsockname()[0]
    except (OSError, AttributeError, TypeError, IndexError):
        return
    if port:
        with _OWN_LOCK:
            if port not in _OWN:
                _OWN.append(port)


def is_own(port):
    with _OWN_LOCK:
        return port in _OWN


class Note:
    """One notification: what (link, qdisc, class, filter), new or del, on which device."""

    __slots__ = ("what", "action", "index", "name", "alias", "port")

    def __init__(self, what, action, index, name=None, alias=None, port=0):
        self.what, self.action, self.index, self.name, self.alias = what, action, index, name, alias
        self.port = port                # netlink port id of the socket that caused it (0: the kernel)

    def __repr__(self):
        return f"Note({self.what} {self.action} #{self.index} {self.name or ''} {self.alias or ''})"


class Monitor:
    """``fileno()`` for select; ``read()`` -> [Note] of one datagram."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)  # NETLINK_ROUTE
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((0, RTMGRP_LINK | RTMGRP_TC))

    def fileno(self):
        return self.sock.fileno()

    def close(self):
        self.sock.close()

    def read(self):
        try:
            data = self.sock.recv(1 << 16)
        except OSError as err:
            # ENOBUFS: notifications were lost; the caller re-checks everything
            return [Note("overrun", "lost", -1, alias=str(err))]
        # a GET answer broadcast to the group is our read, not a change: without
        # this, every converge's reads would wake the next converge, for ever
        return [note for note in parse(data) if not (note.action == "new" and is_own(note.port))]


def parse(data):
    """Notes from one netlink datagram (several messages)."""
    offset = 0
    while offset + _NLMSG_HDR.size <= len(data):
        length, mtype, _flags, _seq, port = _NLMSG_HDR.unpack_from(data, offset)
        if length < _NLMSG_HDR.size:
            break
        kind = _TYPES.get(mtype)
        body = offset + _NLMSG_HDR.size
        if kind is not None and length >= _NLMSG_HDR.size + 8:
            index = _IFINDEX.unpack_from(data, body + 4)[0]
            name = alias = None
            if kind[0] == "link":
                name, alias = _link_attrs(data, body + 16, offset + length)
            yield Note(kind[0], kind[1], index, name, alias, port)
        offset += (length + 3) & ~3


def _link_attrs(data, pos, end):
    name = alias = None
    while pos + 4 <= end:
        alen, atype = struct.unpack_from("=HH", data, pos)
        if alen < 4:
            break
        value = data[pos + 4:pos + alen].split(b"\0", 1)[0].decode("utf-8", "replace")
        atype &= 0x3fff
        if atype == _IFLA_IFNAME:
            name = value
        elif atype == _IFLA_IFALIAS:
            alias = value
        pos += (alen + 3) & ~3
    return name, alias
