# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The hook's side of the hand-off: run a built-in handler's step in the agent.

A running ``netvirt-hooks agent`` has pyroute2, the XML parser and the host policy
loaded already; handing it a guest event saves the hook most of its start-up
cost (bench/hook_latency.py). It is an optimisation only: any doubt (no
socket, wrong owner, no greeting, the agent gone before it answered) returns
None and the hook runs the step itself, as without an agent. Standard
library only, nothing heavy: this runs on every guest event.

Protocol (agent/serve.py): the agent greets first (``NVH1\\n``: it is alive
and accepting); only then the hook sends one JSON line and the domain XML as
raw bytes; the agent answers with one JSON line. No pickle, bounded reads.
"""

import os
import stat
import struct
import time

# The C halves of socket and json: the Python modules import enum, selectors
# and re, a third of the hook's own cost on this path (python -X importtime).
import _socket as socket

from .. import paths

HELLO = b"NVH1\n"
MAX_XML = 16 * 1024 * 1024      # libvirt's own limit on a domain XML is lower
MAX_LINE = 64 * 1024            # the request's header line
MAX_ANSWER = 32 * 1024 * 1024   # the answer: the handler's log records
GREETING_WAIT = 1.0             # s: an agent that does not greet by then is wedged


class _Scan:
    """What _json's C scanner reads from its context (json.decoder.JSONDecoder's defaults)."""
    strict, object_hook, object_pairs_hook = True, None, None
    parse_float, parse_int, memo = float, int, None

    @staticmethod
    def parse_constant(name):
        raise ValueError(f"not JSON: {name}")


def loads(data):
    """JSON text -> value, through _json alone (json.loads where it is missing)."""
    text = data.decode("utf-8")
    try:
        import _json
    except ImportError:
        import json
        return json.loads(text)
    value, end = _json.make_scanner(_Scan())(text, 0)
    if text[end:].strip():
        raise ValueError("extra data after the JSON value")
    return value


def dumps(value):
    """The request header as JSON (str, int, float, None, bool, list, dict of these)."""
    if isinstance(value, str):
        import _json
        return _json.encode_basestring_ascii(value)
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(dumps(item) for item in value) + "]"
    return "{" + ", ".join(f"{dumps(str(key))}: {dumps(item)}" for key, item in value.items()) + "}"


def socket_path():
    return os.path.join(paths.run_dir(), "agent", "agent.sock")


def enabled(dconf):
    """``NETVIRT_HOOKS_HANDOFF=0`` or ``handoff: no`` in dispatcher.conf turn it off."""
    return os.environ.get("NETVIRT_HOOKS_HANDOFF", "1") != "0" and getattr(dconf, "handoff", True)


def trusted(path):
    """None if ``path`` is root's (or our own) and nobody else can write to it, else why not."""
    try:
        st = os.lstat(path)
    except OSError as err:
        return f"{path}: {err.strerror}"
    if st.st_uid not in (0, os.geteuid()):
        return f"{path}: owned by uid {st.st_uid}"
    if stat.S_IMODE(st.st_mode) & 0o022:
        return f"{path}: writable by group or others ({stat.S_IMODE(st.st_mode):o})"
    if not (stat.S_ISDIR(st.st_mode) or stat.S_ISSOCK(st.st_mode)):
        return f"{path}: not a folder or socket"
    return None


def peer_pid_uid(sock):
    """(pid, uid) of the process at the other end of the Unix socket (SO_PEERCRED)."""
    pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    return pid, uid


def recv_line(sock, limit, until):
    """One ``\\n``-ended line (without it); None on EOF; ValueError past ``limit``; socket.timeout at ``until``."""
    data = bytearray()
    while True:
        left = until - time.monotonic()
        if left <= 0:
            raise socket.timeout("deadline")
        sock.settimeout(left)
        chunk = sock.recv(65536 if len(data) < limit else 1)
        if not chunk:
            return None
        data += chunk
        end = data.find(b"\n")
        if end >= 0:
            return bytes(data[:end]), bytes(data[end + 1:])
        if len(data) > limit:
            raise ValueError(f"line longer than {limit} bytes")


class Answer:
    """What the agent did: ``wanted`` (the handler acted), its log records, ``error`` (None: done)."""

    def __init__(self, doc, pid):
        self.pid = pid
        self.wanted = bool(doc.get("wanted"))
        self.records = doc.get("records") or []
        self.error = doc.get("error")
        self.took = float(doc.get("took") or 0.0)

    def replay(self, event, rec, syslog):
        """Write the handler's records into the step's record (and journal), as the local run would."""
        rec.add("INFO", f"{event.name}: run in the netvirt-hooks agent (pid {self.pid})")
        if event.shutoff_reason:
            rec.add("INFO", f"{event.name}: shutoff reason {event.shutoff_reason}")
        for level, text, fields in self.records:
            rec.add(level, text)
            if rec.label is not None:
                syslog(level, f"{rec.label}: {text}", {**(rec.fields or {}), **(fields or {})})


def timed_out(pid, event_timeout):
    return Answer({"wanted": True, "error": f"no answer from the netvirt-hooks agent (pid {pid}) "
                                            f"before the event deadline ({event_timeout:g}s)"}, pid)


def ask(event, handler_name, threshold, deadline, event_timeout, path=None):
    """The agent's Answer for this step, or None: run it here (see the module docstring)."""
    path = path or socket_path()
    if len(event.stdin) > MAX_XML:
        return None
    for where in (paths.run_dir(), os.path.dirname(path), path):
        if trusted(where) is not None:
            return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(max(0.001, min(GREETING_WAIT, deadline - time.monotonic())))
        try:
            sock.connect(path)
            pid, uid = peer_pid_uid(sock)
            if uid not in (0, os.geteuid()):
                return None
            hello = recv_line(sock, len(HELLO), time.monotonic() + sock.gettimeout())
        except (OSError, ValueError):
            return None            # refused, wedged before greeting, or not our agent
        if hello is None or hello[0] + b"\n" != HELLO:
            return None
        head = {"v": 1, "handler": handler_name, "driver": event.driver, "args": event.args,
                "xml": len(event.stdin), "root": paths.root(), "policy": paths.policy_file(),
                "budget": deadline - time.monotonic(), "threshold": threshold}
        try:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            sock.sendall(dumps(head).encode("ascii") + b"\n" + event.stdin)
            line = recv_line(sock, MAX_ANSWER, deadline)
        except socket.timeout:
            return timed_out(pid, event_timeout)
        except (OSError, ValueError):
            return None            # the agent went away: run it here (apply is idempotent)
        if line is None:
            return None
        try:
            doc = loads(line[0])
        except (ValueError, StopIteration):
            return None
        if not isinstance(doc, dict) or doc.get("declined"):
            return None
        return Answer(doc, pid)
    finally:
        sock.close()
