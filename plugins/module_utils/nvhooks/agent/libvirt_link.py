# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The agent's libvirt connection (python3-libvirt): domain events in, live XML out.

A daemon may call libvirt (a hook must not). The connection is read-only:
events and XML need nothing more. libvirt's client library picks the socket
(monolithic libvirtd, or virtqemud of the modular daemons) from the URI.
When the daemon goes away, the close callback fires; ``ensure()`` reopens,
and the caller converges every guest, because events missed while the
connection was down are lost.
"""

import threading

NS_EVENTS = ("lifecycle", "device-added", "device-removed", "metadata", "tunable")


class Link:
    """``notify(kind, guest, detail)`` is called from libvirt's event thread; keep it cheap."""

    def __init__(self, uri, notify, log):
        import libvirt  # python3-libvirt: only the agent needs it
        self.lv, self.uri, self.notify, self.log = libvirt, uri, notify, log
        self.conn, self.lost, self._lock = None, True, threading.Lock()
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)   # errors are raised, not printed
        libvirt.virEventRegisterDefaultImpl()
        threading.Thread(target=self._loop, name="libvirt-events", daemon=True).start()

    def _loop(self):
        while True:
            self.lv.virEventRunDefaultImpl()

    def ensure(self):
        """Open the connection if it is down; True when it has just been (re)opened."""
        with self._lock:
            if self.conn is not None and not self.lost:
                return False
            self._drop()
            try:
                conn = self.lv.openReadOnly(self.uri)
            except self.lv.libvirtError:
                return False
            try:
                self._register(conn)
            except self.lv.libvirtError as err:
                self.log.error("libvirt %s: cannot subscribe to events: %s", self.uri, err)
                conn.close()
                return False
            self.conn, self.lost = conn, False
            return True

    def _drop(self):
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.close()
            except self.lv.libvirtError:
                pass

    def _register(self, conn):
        lv = self.lv
        conn.registerCloseCallback(self._closed, None)
        conn.setKeepAlive(5, 3)
        cbs = (
            (lv.VIR_DOMAIN_EVENT_ID_LIFECYCLE,
             lambda _c, dom, event, detail, _o: self.notify("lifecycle", dom.name(), (event, detail))),
            (lv.VIR_DOMAIN_EVENT_ID_DEVICE_ADDED,
             lambda _c, dom, alias, _o: self.notify("device-added", dom.name(), alias)),
            (lv.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED,
             lambda _c, dom, alias, _o: self.notify("device-removed", dom.name(), alias)),
            (lv.VIR_DOMAIN_EVENT_ID_METADATA_CHANGE,
             lambda _c, dom, mtype, nsuri, _o: self.notify("metadata", dom.name(), (mtype, nsuri))),
            (lv.VIR_DOMAIN_EVENT_ID_TUNABLE,
             lambda _c, dom, params, _o: self.notify("tunable", dom.name(), params)),
        )
        for event_id, callback in cbs:
            conn.domainEventRegisterAny(None, event_id, callback, None)

    def _closed(self, _conn, reason, _opaque):
        self.lost = True
        self.notify("disconnected", None, reason)

    @property
    def up(self):
        return self.conn is not None and not self.lost

    def xml(self, guest):
        """The running guest's live XML, or None (not running, or no connection)."""
        conn = self.conn
        if conn is None or self.lost:
            return None
        try:
            dom = conn.lookupByName(guest)
            if not dom.isActive():
                return None
            return dom.XMLDesc(0)
        except self.lv.libvirtError:
            return None

    def lifecycle_started(self, detail):
        """Is a lifecycle (event, detail) one after which the guest's ports exist?"""
        event = detail[0]
        return event in (self.lv.VIR_DOMAIN_EVENT_STARTED, self.lv.VIR_DOMAIN_EVENT_RESUMED)

    def lifecycle_stopped(self, detail):
        return detail[0] == self.lv.VIR_DOMAIN_EVENT_STOPPED
