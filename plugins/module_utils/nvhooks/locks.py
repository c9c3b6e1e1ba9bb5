# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-group locks (fcntl.flock) under paths.run_dir()/locks.

Members of a group start and stop concurrently (several hook processes, or a
module run beside a hook); the first creates the group's ifb, the last
removes it, so every change to a group ifb happens under its lock. Locks are
taken in sorted order (no deadlock) and are bounded: a stuck holder gives a
clear error after ``timeout`` seconds instead of hanging libvirtd.
"""

import contextlib
import errno
import fcntl
import os
import time

from . import paths
from .errors import NetvirtError

POLL = 0.05


def lock_path(name):
    """Group names are [A-Za-z0-9_-] (policy.py); port lock names are 'port-<netns>-<dev>'."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
    return os.path.join(paths.run_dir(), "locks", f"{safe}.lock")


@contextlib.contextmanager
def group_locks(names, timeout=30.0):
    """Hold the flock of every group in ``names`` (sorted) for the block."""
    with contextlib.ExitStack() as stack:
        for name in sorted(set(names)):
            path = lock_path(name if name.startswith("port-") else f"group-{name}")
            stack.enter_context(flock(path, timeout, name))
        yield


@contextlib.contextmanager
def flock(path, timeout, what):
    """Hold an exclusive flock on ``path``; a holder stuck past ``timeout`` is an error naming ``what``."""
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise NetvirtError(f"lock busy for more than {timeout:.0f} s", f"{what} ({path})") from None
                time.sleep(POLL)
        yield
    finally:
        os.close(fd)            # closing releases the flock
