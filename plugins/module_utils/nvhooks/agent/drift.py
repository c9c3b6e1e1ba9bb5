# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Netlink notifications -> which guest to converge (drift heal).

Only devices we know are looked at: the taps of running guests (as last
converged) and ifbs carrying our alias (``netvirt port <tap> ...``,
``netvirt group <name>``). Anything else on the host is not ours and is
ignored, so it is never touched. Our own changes notify too; the converge
that follows finds nothing to do, so there is no loop.
"""

import socket
import threading

_PREFIX = "netvirt "


def _alias(name):
    try:
        with open(f"/sys/class/net/{name}/ifalias", "r", encoding="utf-8") as handle:
            return handle.read(200).strip()
    except OSError:
        return ""


class Watch:
    """Reads the monitor in a thread; ``enqueue(kind, guest, why)`` gets what to do."""

    def __init__(self, enqueue, log):
        from ..kernel import watch
        self.monitor = watch.Monitor()
        self.enqueue, self.log = enqueue, log
        self.taps = {}                 # tap -> guest, replaced by the agent after each converge
        threading.Thread(target=self._loop, name="netlink", daemon=True).start()

    def _loop(self):
        while True:
            for note in self.monitor.read():
                try:
                    self.route(note)
                except Exception as err:  # pylint: disable=broad-except
                    self.log.error("netlink notification %r: internal error: %r", note, err)

    def _guest_of_ifb(self, alias):
        """(kind, guest) for one of our ifbs' aliases, or None."""
        rest = alias[len(_PREFIX):]
        if rest.startswith("port "):
            tap = rest[len("port "):].rsplit(" ", 1)[0]
            guest = self.taps.get(tap)
            return ("guest", guest) if guest else None
        if rest.startswith("group "):
            return ("all", None)
        return None

    def route(self, note):
        if note.what == "overrun":
            self.enqueue("all", None, "netlink notifications lost")
            return
        if note.what == "link":
            alias = note.alias or ""
            if note.action == "del" and alias.startswith(_PREFIX):
                target = self._guest_of_ifb(alias)
                if target:
                    self.enqueue(target[0], target[1], f"ifb {note.name} removed")
            elif note.action == "del" and note.name in self.taps:
                self.enqueue("gc", None, f"tap {note.name} removed")
            return
        try:
            name = socket.if_indextoname(note.index)
        except OSError:
            return                       # the device is gone already
        guest = self.taps.get(name)
        if guest:
            self.enqueue("drift", guest, f"{note.what} {note.action} on {name}")
            return
        alias = _alias(name)
        if alias.startswith(_PREFIX):
            target = self._guest_of_ifb(alias)
            if target:
                kind = "drift" if target[0] == "guest" else "all"
                self.enqueue(kind, target[1], f"{note.what} {note.action} on ifb {name}")
