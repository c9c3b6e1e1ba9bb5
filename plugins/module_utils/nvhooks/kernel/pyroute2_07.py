# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pyroute2 0.7.x behind kernel/compat.py: netns by setns(2), raw requests by nlm_request."""

import os
import threading

CLONE_NEWNET = 0x40000000
VERSION = "0.7"
_LIBC = []
_SETNS_LOCK = threading.Lock()


def _setns(fd):
    import ctypes                      # here, not at import: hooks without a netns never pay for it
    if not _LIBC:
        import ctypes.util
        _LIBC.append(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True))
    if _LIBC[0].setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def open_in_netns(name):
    """0.7's NetNS runs a helper process and cannot carry our own message classes:
    this thread enters the namespace just long enough to open the socket (a
    netlink socket stays bound to the namespace it was opened in)."""
    from pyroute2 import IPRoute
    with _SETNS_LOCK:
        own = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{name}", os.O_RDONLY)
        try:
            _setns(target)
            try:
                return IPRoute()
            finally:
                _setns(own)
        finally:
            os.close(own)
            os.close(target)


def request(sock, msg, msg_type, flags):
    return tuple(sock.nlm_request(msg, msg_type=msg_type, msg_flags=flags))


def reset_nla_cache(klass):
    # nlmsg_base keeps "compiled" as the class attribute __compiled_nla
    # (mangled); a subclass inherits its parent's True
    klass._nlmsg_base__compiled_nla = False  # pylint: disable=protected-access
