# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bounded, root-only locks (fcntl.flock) under paths.run_dir().

Members of a group start and stop concurrently (several hook processes, or a
module run beside a hook); the first creates the group's ifb, the last
removes it, so every change to a group ifb happens under its lock. Locks are
taken in sorted order (no deadlock) and are bounded twice: by their own
``timeout`` and by the time budget of the hook event they run in
(``set_deadline``), so many ports cannot hold libvirtd's job past it.

flock works on any descriptor, even read-only: a lock file another user can
open is a lock that user can hold. So the folders are 0700 and the files 0600,
both owned by us, opened without following a planted symlink.
"""

import contextlib
import errno
import fcntl
import os
import stat
import time

from . import paths
from .errors import NetvirtError

POLL = 0.05
_deadline = [None]   # time.monotonic() by which every wait ends (the hook event's budget)


def set_deadline(when):
    """Bound every lock wait of this process by ``when`` (time.monotonic()); None: no bound."""
    _deadline[0] = when


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


def private_dir(path):
    """Make ``path`` and the folders between it and the run dir ours alone (0700, not symlinks).

    Folders above the run dir (/run itself) are made as usual if missing, never tightened.
    """
    top = paths.run_dir()
    chain = [path]
    while chain[-1] != top and chain[-1].startswith(top + os.sep):
        chain.append(os.path.dirname(chain[-1]))
    parent = os.path.dirname(chain[-1])
    if parent and not os.path.isdir(parent):
        try:
            os.makedirs(parent, 0o755, exist_ok=True)
        except OSError as err:
            raise NetvirtError(f"cannot create: {err.strerror}", parent) from None
    for folder in reversed(chain):
        _private_folder(folder)


def _private_folder(path):
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as err:
        raise NetvirtError(f"cannot create: {err.strerror}", path) from None
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise NetvirtError("is not a folder (a symlink or a file planted there?): refusing to use it", path)
    if st.st_uid != os.geteuid():
        raise NetvirtError(f"is owned by uid {st.st_uid}, not by us: refusing to use it", path)
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(path, 0o700)        # folders made by earlier versions were 0755


def _open_private(path):
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise NetvirtError("is a symlink: refusing to follow it", path) from None
        raise NetvirtError(f"cannot open: {err.strerror}", path) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
        os.close(fd)
        raise NetvirtError("is not our regular file: refusing to lock it", path)
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.fchmod(fd, 0o600)         # files made by earlier versions were 0644
    return fd


@contextlib.contextmanager
def flock(path, timeout, what):
    """Hold an exclusive flock on ``path``; a holder stuck past ``timeout`` is an error naming ``what``."""
    private_dir(os.path.dirname(path))
    fd = _open_private(path)
    try:
        start = time.monotonic()
        deadline, budget = start + timeout, False
        if _deadline[0] is not None and _deadline[0] < deadline:
            deadline, budget = _deadline[0], True
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    why = (f"the hook event's time budget ran out after {time.monotonic() - start:.1f} s"
                           if budget else f"more than {timeout:.0f} s")
                    raise NetvirtError(f"lock busy: {why}", f"{what} ({path})") from None
                time.sleep(POLL)
        yield
    finally:
        os.close(fd)            # closing releases the flock
