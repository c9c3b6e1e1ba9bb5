# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Records to systemd-journald with structured fields (GUEST, PORT, ...).

The way in is chosen once per process, at the first record, and only where
journald's socket exists (no socket: nothing is imported, the caller uses
syslog):

1. the distribution's binding (python3-systemd): its C part
   ``systemd._journal.sendv``, the function ``systemd.journal.send`` ends in
   (``systemd.journal`` itself imports datetime, uuid, logging: ~20 ms);
2. the native protocol over ``/run/systemd/journal/socket``
   (https://systemd.io/JOURNAL_NATIVE_PROTOCOL/): one datagram; a value with
   a newline in the binary length form; too big for a datagram: a sealed
   memfd passed with SCM_RIGHTS.

Values are made valid UTF-8 (odd bytes as ``\\xNN``, like the log files) and
cut at ``MAX_VALUE`` bytes. ``send`` never raises: False means "use syslog".
"""

import os

SOCKET = "/run/systemd/journal/socket"
IDENT = "netvirt-hooks"
MAX_VALUE = 64 * 1024
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_backend = None   # (name, function taking the list of b"NAME=value" items), once chosen


def field_name(name):
    """A valid journal field name from ``name``: upper case, [A-Z0-9_], no leading ``_`` or digit."""
    text = "".join(c if c in _NAME_CHARS else "_" for c in str(name).upper()).lstrip("_0123456789")
    return text[:64] or "FIELD"


def value_bytes(value):
    """``value`` as valid UTF-8 bytes of at most MAX_VALUE."""
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "backslashreplace")
    data = str(value).encode("utf-8", "backslashreplace")
    if len(data) > MAX_VALUE:
        data = data[:MAX_VALUE].decode("utf-8", "ignore").encode("utf-8") + b"...(cut)"
    return data


def items(message, priority, fields=None):
    """The entry as ``[b"NAME=value", ...]``: MESSAGE, PRIORITY, SYSLOG_IDENTIFIER, then ``fields``."""
    entry = {"MESSAGE": message, "PRIORITY": int(priority), "SYSLOG_IDENTIFIER": IDENT,
             "SYSLOG_FACILITY": 3}   # daemon, like the syslog line
    for name, value in (fields or {}).items():
        name = field_name(name)
        if value is not None and name not in entry:
            entry[name] = value
    return [name.encode("ascii") + b"=" + value_bytes(value) for name, value in entry.items()]


def native_datagram(entry):
    """The native protocol's bytes for ``entry`` (a list of b"NAME=value")."""
    out = []
    for item in entry:
        name, _sep, value = item.partition(b"=")
        if b"\n" in value:
            out.append(name + b"\n" + len(value).to_bytes(8, "little") + value + b"\n")
        else:
            out.append(item + b"\n")
    return b"".join(out)


def _send_native(entry):
    import errno
    import socket
    data = native_datagram(entry)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.sendto(data, SOCKET)
            return
        except OSError as err:
            if err.errno not in (errno.EMSGSIZE, errno.ENOBUFS):
                raise
        _send_memfd(sock, data)


def _send_memfd(sock, data):
    import array
    import fcntl
    import socket
    fd = os.memfd_create(IDENT, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS,
                    fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL)
        sock.sendmsg([], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]).tobytes())], 0, SOCKET)
    finally:
        os.close(fd)


def _choose():
    binding = None
    try:
        from systemd import _journal as binding          # the C part only: cheap
    except ImportError:
        try:
            from systemd import journal as binding       # pylint: disable=ungrouped-imports
        except ImportError:
            pass
    sendv = getattr(binding, "sendv", None)          # another package named systemd has none
    if sendv is None:
        return ("native", _send_native)
    return ("python3-systemd", lambda entry: sendv(*entry))


def backend():
    """``python3-systemd``, ``native``, or None without journald's socket (chosen on first use)."""
    global _backend
    if _backend is None:
        if not os.path.exists(SOCKET):
            return None
        _backend = _choose()
    return _backend[0]


def send(message, priority, fields=None):
    """One entry to the journal; True if journald took it, False (never an exception) if not."""
    try:
        if backend() is None:
            return False
        _backend[1](items(message, priority, fields))
        return True
    except Exception:  # pylint: disable=broad-except
        # a journal that fails for any reason falls back to syslog; the hook goes on
        return False
