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


def ensure_libvirtd(timeout=60.0):
    """Start virtlogd and libvirtd (as the libvirt lane does) unless they run; wait until libvirtd answers."""
    import subprocess  # pylint: disable=import-outside-toplevel
    import time  # pylint: disable=import-outside-toplevel
    for daemon in ("virtlogd", "libvirtd"):
        if subprocess.run(["pgrep", "-x", daemon], capture_output=True, check=False).returncode != 0:
            subprocess.run([daemon, "-d"], check=True)
    deadline = time.monotonic() + timeout
    while subprocess.run(["virsh", "-c", "qemu:///system", "version"], capture_output=True,
                         check=False).returncode != 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"libvirtd did not answer within {timeout:g} s")
        time.sleep(0.5)
