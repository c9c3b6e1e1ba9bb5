# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The agent's side of the hand-off: run a hook's built-in handler step for it.

The hook (dispatch/handoff.py) sends a guest event; the agent runs the very
same handler (``dispatch.handlers.REGISTRY`` by name) on the same Event and
the host policy the hook would load, and returns the handler's log records
and its outcome. Holds do not apply (they are for the agent's own healing).

Only root may ask (SO_PEERCRED); the socket is 0600 in a 0700 folder of the
run dir. Requests are read with bounds and a time limit; nothing is
unpickled. One apply at a time: the agent's ``apply_lock``, also held by its
own converge of each guest.
"""

import json
import logging
import os
import socket
import threading
import time
import traceback

from .. import locks, logfields, paths
from ..dispatch import handoff, hooklog
from ..errors import NetvirtError

READ_WAIT = 5.0      # s: a peer that does not send its request by then is dropped


class Declined(Exception):
    """The agent will not run this request: the hook runs it."""


class _Collect(logging.Handler):
    """The handler's records as [level, text, fields], as hooklog.handler_logger would write them."""

    def __init__(self, threshold):
        super().__init__(threshold)
        self.records = []

    def emit(self, record):
        self.records.append([hooklog.level_name(record), self.format(record), logfields.of(record)])


class _Policy:
    """The host policy as the hook would load it now: re-read when the file's stat changes.

    A broken file gives its error (the hook's text), never the agent's last good policy.
    """

    def __init__(self, path):
        self.path, self.stamp, self.value = path, False, None

    def get(self):
        try:
            st = os.stat(self.path)
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if stamp != self.stamp:
            from ..policy import model
            try:
                self.value = model.load_host_policy(self.path)
            except NetvirtError as err:
                self.value = err
            self.stamp = stamp
        if isinstance(self.value, NetvirtError):
            raise self.value
        return self.value


class _LazyHost:
    def __init__(self, policy):
        self._policy = policy

    def __getattr__(self, name):
        return getattr(self._policy.get(), name)


class Server:
    """Listen on handoff.socket_path(); one thread per connection (the apply lock serialises)."""

    def __init__(self, agent, log):
        self.agent, self.log = agent, log
        self.path = handoff.socket_path()
        self.policy = _Policy(agent.opts.policy)
        self.sock = None
        self.served = 0

    def start(self):
        """Listen; a failure is logged and the agent runs on without hand-off (hooks run in-process)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            locks.private_dir(os.path.dirname(self.path))
            try:
                os.unlink(self.path)     # a crashed agent's socket: we hold the one-agent lock
            except FileNotFoundError:
                pass
            old = os.umask(0o177)
            try:
                sock.bind(self.path)
            finally:
                os.umask(old)
            os.chmod(self.path, 0o600)
            sock.listen(64)
        except (OSError, NetvirtError) as err:
            sock.close()
            self.log.error("hand-off socket %s: %s; hooks run their steps themselves", self.path, err)
            return
        self.sock = sock
        threading.Thread(target=self._accept, name="handoff", daemon=True).start()
        self.log.info("hand-off socket %s", self.path)

    def stop(self):
        if self.sock is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            self.sock.close()
            self.sock = None

    def _accept(self):
        while self.sock is not None:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return                  # closed by stop()
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with conn:
            try:
                pid, uid = handoff.peer_pid_uid(conn)
                if uid not in (0, os.geteuid()):
                    self.log.warning("hand-off: refused a peer of uid %d (pid %d)", uid, pid)
                    return
                conn.sendall(handoff.HELLO)
                head, xml = self._read(conn)
            except (OSError, ValueError) as err:
                self.log.warning("hand-off: bad request: %s", err)
                return
            try:
                answer = self.run(head, xml)
            except Declined as why:
                answer = {"declined": str(why)}
            except Exception as err:  # pylint: disable=broad-except
                # the hook must get an answer whatever happens here: it then runs the step itself
                self.log.error("hand-off: internal error: %r", err)
                answer = {"declined": f"internal error: {err!r}"}
            try:
                conn.sendall(json.dumps(answer).encode("utf-8") + b"\n")
            except OSError:
                pass

    def _read(self, conn):
        until = time.monotonic() + READ_WAIT
        got = handoff.recv_line(conn, handoff.MAX_LINE, until)
        if got is None:
            raise ValueError("closed before the request")
        line, xml = got
        head = json.loads(line)
        size = head.get("xml") if isinstance(head, dict) else None
        if not isinstance(size, int) or not 0 <= size <= handoff.MAX_XML:
            raise ValueError(f"bad XML size {size!r} (at most {handoff.MAX_XML})")
        xml = bytearray(xml)
        while len(xml) < size:
            left = until - time.monotonic()
            if left <= 0:
                raise ValueError("request not sent in time")
            conn.settimeout(left)
            chunk = conn.recv(min(1 << 20, size - len(xml)))
            if not chunk:
                raise ValueError("closed inside the request")
            xml += chunk
        if len(xml) != size:
            raise ValueError("more bytes than announced")
        return head, bytes(xml)

    def run(self, head, xml):
        """The answer to one request (a dict for handoff.Answer); Declined: let the hook run it."""
        from ..dispatch import handlers
        from ..dispatch.event import Event
        if head.get("v") != 1:
            raise Declined(f"protocol version {head.get('v')!r}")
        if head.get("root") != paths.root() or head.get("policy") != self.agent.opts.policy:
            raise Declined("the hook's NETVIRT_HOOKS_ROOT or policy file differ from the agent's")
        handler = next((h for h in handlers.REGISTRY if h.name == head.get("handler")), None)
        args = head.get("args")
        if handler is None or not isinstance(args, list) or not all(isinstance(a, str) for a in args) \
                or head.get("driver") not in ("qemu", "lxc"):
            raise Declined("unknown handler or event")
        event = Event(head["driver"], args, xml)
        collect = _Collect(head.get("threshold") if isinstance(head.get("threshold"), int) else 20)
        log = logging.Logger(f"netvirt-hooks.handoff.{event.object}")   # not registered: one per request
        log.addHandler(collect)
        log.setLevel(collect.level)
        answer = {"wanted": False, "records": collect.records}
        budget = head.get("budget")
        # the hook's deadline, on our clock: waiting for the apply lock spends it too
        deadline = time.monotonic() + float(budget) if isinstance(budget, (int, float)) else None
        # the hook stops waiting at its deadline (and fails the step): a request still queued then
        # is not run at all (the second more lets the hook time out first, so it never reads a
        # decline and runs the step late itself), and one that got the lock runs with what is left
        if not self.agent.apply_lock.acquire(timeout=-1 if deadline is None
                                             else max(0.0, deadline - time.monotonic()) + 1.0):
            raise Declined("the agent was busy past the event's deadline")
        try:
            began = time.monotonic()
            if deadline is not None and began >= deadline:
                raise Declined("the agent was busy past the event's deadline")
            locks.set_deadline(deadline)
            try:
                answer["wanted"] = bool(handler.wants(event, xml, _LazyHost(self.policy)))
                if answer["wanted"]:
                    from ..policy import domxml
                    host = self.policy.get()
                    domain = domxml.parse_domain(xml, "XML from libvirt")
                    began = time.monotonic()
                    handler.handle(event, domain, host, log)
            except NetvirtError as err:
                answer["wanted"], answer["error"] = True, str(err)
            except Exception as err:  # pylint: disable=broad-except
                # as the hook's own run: a handler's bug is this step's failure, with its traceback
                collect.records.append(["DEBUG", traceback.format_exc().rstrip("\n"), {}])
                answer["wanted"], answer["error"] = True, f"internal error: {err!r}"
            finally:
                locks.set_deadline(None)
                answer["took"] = time.monotonic() - began
                if answer["wanted"] and event.guest:
                    # our own changes are not drift: the agent's watch leaves this guest be
                    self.agent.started[event.guest] = time.monotonic()
        finally:
            self.agent.apply_lock.release()
        self.served += 1
        self.agent.garbage = True      # collected at the agent's next tick, not on the hook's time
        return answer
