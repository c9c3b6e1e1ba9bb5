# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The libvirt lock the benches share with the test lanes (tests/lanes/lib.sh).

Benches that restart libvirtd or install into /etc/libvirt/hooks hold it, as
the libvirt lane does; ``NVT_LIBVIRT_LOCK_HELD=1`` says the caller holds it.
"""
import fcntl
import os

LOCK = "/run/nvt-libvirt.lock"


def hold(why):
    """Take the lock (waiting, with one line naming ``why``); the open file, or None if already held."""
    if os.environ.get("NVT_LIBVIRT_LOCK_HELD") == "1":
        return None
    handle = open(LOCK, "w")  # pylint: disable=consider-using-with  # held until the bench exits
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"waiting for {LOCK} ({why})", flush=True)
        fcntl.flock(handle, fcntl.LOCK_EX)
    return handle
