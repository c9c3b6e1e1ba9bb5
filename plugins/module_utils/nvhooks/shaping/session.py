# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A batch of shaping changes in one namespace: one socket, one ifb deletion.

Deleting a net device costs the kernel an RCU grace period (about 20 ms),
whoever asks and however. Deleting many in one request pays it once
(``unregister_netdevice_many``), so an ifb that a plan removes is *parked*:
set down, renamed to ``nvx`` + 12 random hex digits, given the alias
``netvirt deleting`` and this batch's link group. When the batch ends, one
RTM_DELLINK for that group removes every parked ifb. Parking frees the ifb's
real name at once (a port started again right away creates a fresh one),
and a rollback in the same batch un-parks the device with its tc tree.

The group number is random in [2^30, 2^31) per batch (positive as iproute2
prints it); iproute2's named groups (/etc/iproute2/group) are small
numbers. If the process dies before the end of the batch, the parked ifbs
are found by their alias and removed by the orphan collection (shapegc).
"""

import contextlib
import os

from ..kernel import netlink

PARKED_PREFIX = "nvx"
PARKED_ALIAS = "netvirt deleting"


class Session:
    """``sock``: the pyroute2 socket; ifbs parked in this batch are deleted by ``flush``."""

    def __init__(self, sock):
        self.sock = sock
        self.group = 0x40000000 | int.from_bytes(os.urandom(4), "big") >> 2   # 30 random bits, as secrets.randbits(30)
        self.parked = {}                     # real name -> (ifindex, alias)

    def park(self, index, name, alias):
        """Take ifb ``name`` out of use now; the kernel deletes it at flush."""
        netlink.set_link(self.sock, index, state="down")       # the kernel renames only a device that is down
        try:
            netlink.set_link(self.sock, index, ifname=PARKED_PREFIX + os.urandom(6).hex(), ifalias=PARKED_ALIAS,
                             group=self.group)
        except Exception:
            netlink.set_link(self.sock, index, state="up")     # not parked: back in service as it was
            raise
        self.parked[name] = (index, alias)

    def unpark(self, name):
        """Give a parked ifb back its name, alias and state; its index, or None if not parked here."""
        entry = self.parked.pop(name, None)
        if entry is None:
            return None
        index, alias = entry
        netlink.set_link(self.sock, index, ifname=name, ifalias=alias, group=0)
        netlink.set_link(self.sock, index, state="up")
        return index

    def flush(self):
        """Delete every parked ifb: one request for the group, else one per device."""
        if not self.parked:
            return
        indexes = [index for index, _alias in self.parked.values()]
        self.parked = {}
        netlink.del_links(self.sock, self.group, indexes)


@contextlib.contextmanager
def session(netns=None):
    """A Session in ``netns`` (None: the current one) for a batch of tcapply.apply(..., batch=) calls.

    The parked ifbs are deleted when the block ends, also when it raises
    (they are out of use already).
    """
    with netlink.ipr(netns) as sock:
        batch = Session(sock)
        try:
            yield batch
        finally:
            batch.flush()
