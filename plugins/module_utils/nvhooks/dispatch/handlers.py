# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The built-in handlers the dispatcher runs, in run order: an explicit registry.

A handler (docs/dev/architecture.md "Built-in handlers") is a feature's hook
module seen through four callables:

* ``acts_on(event)``: stdin-free and cheap; could it act on this event at all?
  (decides whether a step is planned, and what ``netvirt-hooks status`` shows);
* ``wants(event, raw_xml, host)``: cheap; no XML parser, no pyroute2; ``host`` loads
  the host policy only when an attribute is read;
* ``handle(event, domain, host, log)``: qemu/lxc events; raises NetvirtError
  after trying every port;
* ``daemon(host, log)``: daemon ``start`` and ``reload``.

The feature modules import nothing heavy at module level, so importing this
registry stays cheap for events that need no handler.
"""

from ..shaping import hook as shaping_hook
from ..vlan import hook as vlan_hook
from . import loggc


class Handler:
    """One built-in handler. ``name`` is what logs and status show."""

    __slots__ = ("name", "acts_on", "wants", "handle", "daemon", "daemon_name")

    def __init__(self, name, module, daemon, daemon_name):
        self.name = name
        self.acts_on = module.acts_on
        self.wants = module.wants
        self.handle = module.handle
        self.daemon = daemon
        self.daemon_name = daemon_name

    def step_name(self, function):
        return self.name if function == "handle" else f"{self.name}.{self.daemon_name}"


# Order matters: VLANs first (a port must not reach the wrong network while
# it is being shaped), then shaping.
REGISTRY = (
    Handler("vlanhook", vlan_hook, vlan_hook.bridge_init, "bridge_init"),
    Handler("shapehook", shaping_hook, shaping_hook.reconcile_all, "reconcile_all"),
)


def names():
    """Every step name a built-in handler logs under (dispatch.loggc tells them from guests)."""
    return [h.name for h in REGISTRY] + [LOGGC.name]


# Daemon start only, after the others: per-script logs of guests gone (dispatch.loggc).
LOGGC = Handler("loggc", loggc, lambda _host, log: loggc.daemon_start(log, names()), "collect")


def for_event(event):
    """(handler, function) pairs for ``event``, in run order; function is handle or daemon."""
    if event.guest is not None:
        return [(h, "handle") for h in REGISTRY if h.acts_on(event)]
    if event.driver == "daemon" and event.op in ("start", "reload"):
        return [(h, "daemon") for h in REGISTRY] + ([(LOGGC, "daemon")] if event.op == "start" else [])
    return []
