# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``netvirt-hooks agent``: keep every running guest's ports true to policy between hook events.

Three sources of work feed one queue, drained by the main thread (one apply
at a time, so the agent never races itself):

* libvirt domain events (libvirt_link.py): NIC hot-plug/unplug, metadata in
  our namespace, tunables, guest start;
* netlink link and tc notifications (drift.py): our objects changed or
  removed behind our back;
* a one-second tick: the libvirt connection (reconnect, then converge every
  guest, since events missed while it was down are lost), the host policy
  file (re-read on change), delayed orphan collection, metrics.

Hook events handed off by the hook (serve.py) run on the server's threads,
one apply at a time with the above (``apply_lock``, per guest).

A burst of notifications settles for SETTLE seconds and becomes one converge
per guest. Held guests (holds.py) are left alone. Only root runs it; two
agents never run at once (a root-only flock under the run dir).
"""

import gc
import os
import queue
import signal
import threading
import time

from .. import holds, locks, paths
from ..errors import NetvirtError
from . import converge

SETTLE = 0.1          # s: one converge for a burst of notifications
TICK = 1.0            # s: connection, policy file and timer checks
REGC_AFTER = 1.5      # s: libvirt saves the status XML after its device-removed event


class Agent:
    def __init__(self, options, log):
        self.opts, self.log = options, log
        self.work = queue.Queue()
        self.stopping = threading.Event()
        self.host, self.policy_stamp = None, ()
        self.shaped = {}              # guest -> tap names shaped at its last converge
        self.started = {}             # guest -> time.monotonic() its last converge began
        self.taps = {}                # guest -> its tap names (drift routing)
        self.timers = []              # [(monotonic time, kind, guest, why)]
        self.link = self.watch = self.metrics_server = self.server = None
        self.apply_lock = threading.Lock()   # one apply at a time: our converges and hook hand-offs (serve.py)
        self.was_up, self.next_metrics = False, 0.0
        self.garbage = False          # an apply ran since the last tick (collect_garbage)

    # ------------------------------------------------------------ inputs
    def enqueue(self, kind, guest, why):
        self.work.put((kind, guest, why, time.monotonic()))

    def on_libvirt(self, kind, guest, detail):
        """Called on libvirt's event thread: only queue work."""
        from ..policy.xmlns import NS_NETVIRT
        if kind == "disconnected":
            self.enqueue("disconnected", None, f"reason {detail}")
        elif kind == "lifecycle":
            if self.link.lifecycle_started(detail):
                self.enqueue("guest", guest, "guest started")
            elif self.link.lifecycle_stopped(detail):
                self.enqueue("gc", None, f"guest {guest} stopped")
        elif kind == "metadata":
            if detail[1] == NS_NETVIRT:
                self.enqueue("guest", guest, "metadata changed")
        elif kind == "device-added":
            self.enqueue("guest", guest, f"device {detail} attached")
        elif kind == "device-removed":
            self.enqueue("guest", guest, f"device {detail} detached")
            self.enqueue("gc", None, f"device {detail} of {guest} detached")
        elif kind == "tunable":
            self.enqueue("drift", guest, "tunables changed (domiftune?)")

    # ------------------------------------------------------------ main loop
    def run(self):
        from . import drift, libvirt_link
        self.load_policy()
        self.link = libvirt_link.Link(self.opts.uri, self.on_libvirt, self.log)
        self.watch = drift.Watch(self.enqueue, self.log)
        self.start_metrics()
        from . import serve
        self.server = serve.Server(self, self.log)
        self.server.start()
        self.log.info("agent started (pid %d, libvirt %s, policy %s)", os.getpid(), self.opts.uri,
                      self.opts.policy)
        self.converge_all("agent start")
        self.tick()
        last_tick = time.monotonic()
        while not self.stopping.is_set():
            try:
                batch = [self.work.get(timeout=TICK)]
            except queue.Empty:
                batch = []
            if batch:
                end = time.monotonic() + SETTLE
                while time.monotonic() < end:
                    try:
                        batch.append(self.work.get(timeout=max(0.0, end - time.monotonic())))
                    except queue.Empty:
                        break
                self.process(batch)
            if time.monotonic() - last_tick >= TICK:
                self.tick()
                last_tick = time.monotonic()
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
        self.server.stop()
        self.log.info("agent stopped")

    def process(self, batch):
        # a notification older than the guest's last converge was seen by it (our own changes, mostly)
        batch = [item[:3] for item in batch if not (item[0] == "drift" and item[3] < self.started.get(item[1], 0.0))]
        kinds = {kind for kind, _guest, _why in batch}
        if "disconnected" in kinds:
            self.log.warning("libvirt connection lost (%s); reconnecting",
                             next(why for kind, _g, why in batch if kind == "disconnected"))
        if "all" in kinds:
            self.converge_all("; ".join(sorted({why for kind, _g, why in batch if kind == "all"})))
        else:
            guests = {}            # guest -> [events, notifications]: a heal is drift only when no event explains it
            for kind, guest, why in batch:
                if kind in ("guest", "drift") and guest:
                    whys = guests.setdefault(guest, ([], []))[kind == "drift"]
                    if why not in whys:
                        whys.append(why)
            for guest, (events, notes) in guests.items():
                self.converge_safely(guest, "; ".join((events + notes)[:3]), not events)
        if "gc" in kinds:
            self.collect()
            self.timers.append((time.monotonic() + REGC_AFTER, "gc-late", None, "after a detach or stop"))

    def tick(self):
        self.collect_garbage()
        if not self.link.up:
            if self.link.ensure():
                self.log.info("connected to libvirt (%s)", self.opts.uri)
                self.was_up = True
                self.converge_all("libvirt (re)connected")
            elif self.was_up:
                self.log.warning("libvirt (%s) unreachable; retrying every %g s", self.opts.uri, TICK)
                self.was_up = False
        if self.policy_changed():
            self.log.info("host policy %s changed: re-reading it", self.opts.policy)
            if self.load_policy():
                self.converge_all("host policy changed")
        now = time.monotonic()
        due = [t for t in self.timers if t[0] <= now]
        self.timers = [t for t in self.timers if t[0] > now]
        if due:
            self.collect()
        if self.opts.textfile and now >= self.next_metrics:
            self.next_metrics = now + self.opts.metrics_interval
            self.write_metrics()

    def collect_garbage(self):
        """pyroute2's messages refer to themselves (``chain``): only the cyclic GC frees them, and
        its thresholds let an apply's dumps pile up (10 MiB more RSS with 50 guests). Once a tick,
        after work only: idle costs nothing, and a hook's hand-off never waits for it."""
        if self.garbage:
            self.garbage = False
            gc.collect()

    # ------------------------------------------------------------ policy
    def _stamp(self):
        try:
            st = os.stat(self.opts.policy)
            return (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            return None

    def policy_changed(self):
        return self._stamp() != self.policy_stamp

    def load_policy(self):
        """(Re)load the host policy; a bad one is logged and the last good one kept."""
        from ..policy import model
        self.policy_stamp = self._stamp()
        try:
            self.host = model.load_host_policy(self.opts.policy)
            return True
        except NetvirtError as err:
            self.log.error("host policy: %s (%s)", err,
                           "keeping the last good one" if self.host is not None else "nothing is applied")
            return False

    # ------------------------------------------------------------ work
    def _domain(self, guest):
        from ..guests import running
        from ..policy import domxml
        xml = self.link.xml(guest) if self.link is not None else None
        if xml is not None:
            return domxml.parse_domain(xml, f"live XML of {guest}")
        found = running.find(guest)
        return None if found is None else domxml.read_status_xml(found[1])

    def converge_guest(self, guest, why, is_drift=False):
        if self.host is None:
            return
        if not self.mine(guest):
            return
        held = holds.why_held(guest)
        if held is not None:
            self.log.info("guest %s: %s: not touched, %s", guest, why, held)
            return
        self.started[guest] = time.monotonic()
        self.garbage = True
        try:
            domain = self._domain(guest)
        except NetvirtError as err:
            self.log.error("guest %s: %s", guest, err)
            return
        if domain is None:
            self.shaped.pop(guest, None)
            self.taps.pop(guest, None)
            self._publish_taps()
            return
        # the live XML above came from libvirt outside the apply lock: libvirt may be waiting
        # on a hook that waits on this lock (serve.py); under it, no libvirt call
        with self.apply_lock:
            changes, now, errors = converge.guest(domain, self.host, self.log, self.shaped.get(guest, ()))
        known = self.taps.get(guest, ())
        self.shaped[guest] = now
        self.taps[guest] = [i.target_dev for i in domain.interfaces if i.target_dev]
        self._publish_taps()
        # a port first seen now is news (hot-plug), not drift, whatever woke us
        healed = [c for c in changes if is_drift and any(f"({tap}," in c for tap in known)]
        if healed:
            self.log.warning("drift healed on guest %s (%s): %s", guest, why, "; ".join(healed))
        news = [c for c in changes if c not in healed]
        if news:
            self.log.info("guest %s (%s): %s", guest, why, "; ".join(news))
        for text in errors:
            self.log.error("guest %s (%s): %s", guest, why, text)

    def converge_all(self, why):
        from ..guests import running
        if self.host is None or holds.held() is not None:
            return
        names = [name for name in running.names() if self.mine(name)]
        for gone in set(self.shaped) - set(names):
            self.shaped.pop(gone, None)
            self.taps.pop(gone, None)
        for name in names:
            self.converge_safely(name, why)
            self.collect_garbage()        # per guest: 50 guests' garbage at once sets a high-water mark
        self.collect()

    def converge_safely(self, guest, why, is_drift=False):
        """converge_guest, where a bug is one error line: it must stop neither the others nor the agent."""
        try:
            self.converge_guest(guest, why, is_drift)
        except Exception as err:  # pylint: disable=broad-except
            self.log.error("guest %s: internal error: %r", guest, err)

    def mine(self, guest):
        """--only GLOB: a staged roll-out (or a test) manages some guests only."""
        import fnmatch
        return not self.opts.only or fnmatch.fnmatchcase(guest, self.opts.only)

    def collect(self):
        from ..guests import running
        if holds.held() is not None:
            return
        self.garbage = True
        with self.apply_lock:
            removed = converge.collect(self.log, running.has_mac)
        for text in removed:
            self.log.info("orphan removed: %s", text)

    def _publish_taps(self):
        if self.watch is not None:
            self.watch.taps = {tap: guest for guest, taps in self.taps.items() for tap in taps}

    # ------------------------------------------------------------ metrics
    def start_metrics(self):
        """Call site for the metrics package (issue #13, Metrics part), wired when present."""
        if not self.opts.metrics_port:
            return
        try:
            from ..metrics import export  # pylint: disable=import-outside-toplevel
        except ImportError:
            self.log.warning("--metrics-port: this core has no metrics package; not serving")
            return
        self.metrics_server = export.serve(self.opts.metrics_address, self.opts.metrics_port)

    def write_metrics(self):
        try:
            from ..metrics import export  # pylint: disable=import-outside-toplevel
        except ImportError:
            self.log.warning("--textfile: this core has no metrics package; not written")
            self.opts.textfile = None
            return
        try:
            export.write_textfile(self.opts.textfile)
        except (OSError, NetvirtError) as err:
            self.log.error("metrics textfile %s: %s", self.opts.textfile, err)


def _logger():
    from ..dispatch import hooklog
    return hooklog.stderr_logger("netvirt-hooks.agent")


def run(options):
    """Run until SIGTERM/SIGINT; returns the exit code. One agent per host (flock)."""
    log = _logger()
    options.policy = options.policy or paths.policy_file()
    try:
        import libvirt  # noqa: F401  pylint: disable=unused-import
    except ImportError:
        log.error("python3-libvirt is missing (the hooks role installs it)")
        return 5
    agent = Agent(options, log)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _sig, _frame: agent.stopping.set())
    try:
        with locks.flock(locks.lock_path("agent"), 0.0, "agent"):
            agent.run()
    except NetvirtError as err:
        if "lock busy" in err.message:
            log.error("another netvirt-hooks agent runs on this host (%s)", err.where)
        else:
            log.error("%s", err)
        return 1
    return 0
