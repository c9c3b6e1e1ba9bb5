# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run one script: own process group, deadline, pipes read without waiting for EOF.

posix_spawn instead of subprocess: the hook stays cheap to start. The script
gets its stdin from a memfd (a script that never reads stdin cannot block us
on a full pipe). Waiting uses a pidfd where the kernel has one, so a script's
exit wakes us at once; a background child that keeps stdout open does not.
"""

import errno
import os
import select
import time

LOG_CAPTURE = 256 * 1024        # per stream, for logs
XML_CAPTURE = 4 * 1024 * 1024 + 1  # an XML filter's stdout (domxml's limit + 1)
_POLL_FALLBACK = 0.02          # seconds, only without pidfd_open (kernel < 5.3)
_READ = 65536
# Linux signal numbers; the signal module (and the enum module it pulls in)
# costs more than the whole rest of a no-op hook call.
SIGTERM, SIGKILL = 15, 9
KILL_WAIT = 1.0   # seconds a SIGKILLed group may take to disappear before we return


class Result:
    __slots__ = ("rc", "stdout", "stderr", "timed_out", "killed", "duration",
                 "pgid", "lingering", "error", "truncated")

    def __init__(self):
        self.rc = None
        self.stdout = b""
        self.stderr = b""
        self.timed_out = False
        self.killed = None       # None | "SIGTERM" | "SIGKILL"
        self.duration = 0.0
        self.pgid = None
        self.lingering = False   # a descendant still held stdout/stderr at exit
        self.error = None        # could not start
        self.truncated = False

    @property
    def ok(self):
        return self.error is None and not self.timed_out and self.rc == 0


def stdin_fd(data):
    """An fd holding ``data``, rewound; memfd where available."""
    try:
        fd = os.memfd_create("netvirt-hook-stdin", os.MFD_CLOEXEC)
    except (AttributeError, OSError):
        import tempfile  # pre-3.8 or no memfd: an unlinked temp file does the same
        fd = tempfile.TemporaryFile().detach()
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _pidfd(pid):
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def group_members(pgid):
    """Live (non-zombie) pids in process group ``pgid``.

    kill(-pgid, 0) also succeeds for zombies that init has not reaped yet,
    so /proc is the truthful source; only the timeout path pays for it.
    """
    members = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return [pgid] if _killpg(pgid, 0) else []
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            members.append(int(name))
    return members


def run(path, argv, env, stdin, timeout, grace, out_limit=LOG_CAPTURE):
    """Run ``path`` with ``argv`` (argv[0] included); never raises for the script's sake."""
    res = Result()
    start = time.monotonic()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        pid = os.posix_spawn(path, argv, env, setsid=True, file_actions=[
            (os.POSIX_SPAWN_DUP2, stdin, 0), (os.POSIX_SPAWN_DUP2, out_w, 1),
            (os.POSIX_SPAWN_DUP2, err_w, 2)])
    except OSError as err:
        for fd in (out_r, out_w, err_r, err_w):
            os.close(fd)
        res.error = f"cannot execute {path}: {err.strerror or err}"
        return res
    finally:
        # The parent's copies of the write ends must go, or EOF never comes.
        for fd in (out_w, err_w):
            try:
                os.close(fd)
            except OSError:
                pass
    res.pgid = pid   # setsid: the script leads its own session and group
    try:
        _wait(res, pid, out_r, err_r, start + timeout, grace, out_limit)
    finally:
        os.close(out_r)
        os.close(err_r)
    res.duration = time.monotonic() - start
    return res


def _wait(res, pid, out_r, err_r, deadline, grace, out_limit):
    bufs = {out_r: bytearray(), err_r: bytearray()}
    limits = {out_r: out_limit, err_r: LOG_CAPTURE}
    for fd in bufs:
        os.set_blocking(fd, False)
    pidfd = _pidfd(pid)
    poller = select.poll()
    for fd in bufs:
        poller.register(fd, select.POLLIN)
    if pidfd is not None:
        poller.register(pidfd, select.POLLIN)
    open_fds = set(bufs)
    kill_at = None
    try:
        while True:
            status = _reap(pid)
            if status is not None:
                res.rc = os.waitstatus_to_exitcode(status)
                break
            now = time.monotonic()
            if kill_at is None and now >= deadline:
                res.timed_out = True
                res.killed = "SIGTERM"
                _killpg(pid, SIGTERM)
                kill_at = now + grace
            elif kill_at is not None and now >= kill_at:
                res.killed = "SIGKILL"
                _killpg(pid, SIGKILL)
                kill_at = now + 3600  # only the reap is left; SIGKILL cannot be ignored
            wake = (kill_at if kill_at is not None else deadline) - now
            if pidfd is None:
                wake = min(wake, _POLL_FALLBACK)
            for fd, _ev in poller.poll(max(0, int(wake * 1000) + 1)):
                if fd in open_fds and not _drain(fd, bufs[fd], limits[fd], res):
                    poller.unregister(fd)
                    open_fds.discard(fd)
        # Exited: take what is already in the pipes, without waiting for EOF
        # (a background child may hold them open for ever).
        for fd in list(open_fds):
            if _drain(fd, bufs[fd], limits[fd], res) and not res.timed_out:
                res.lingering = True
        if res.timed_out:
            _finish_group(pid, kill_at if res.killed == "SIGTERM" else time.monotonic(), res)
    finally:
        if pidfd is not None:
            os.close(pidfd)
    res.stdout, res.stderr = bytes(bufs[out_r]), bytes(bufs[err_r])


def _finish_group(pgid, kill_at, res):
    """After a timeout the whole group goes: wait out the grace, then SIGKILL."""
    while group_members(pgid):
        left = kill_at - time.monotonic()
        if left <= 0:
            res.killed = "SIGKILL"
            _killpg(pgid, SIGKILL)
            _await_gone(pgid, KILL_WAIT)
            return
        time.sleep(min(left, 0.05))  # bounded, only on the timeout path


def _await_gone(pgid, limit):
    """SIGKILL takes effect as each process is next scheduled: return once none is left (bounded)."""
    end = time.monotonic() + limit
    while group_members(pgid) and time.monotonic() < end:
        time.sleep(0.01)


def _reap(pid):
    try:
        got, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return 0
    return status if got == pid else None


def _killpg(pgid, sig):
    """Signal a group; True if it had members."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _drain(fd, buf, limit, res):
    """Read what is there; False at EOF."""
    while True:
        try:
            chunk = os.read(fd, _READ)
        except BlockingIOError:
            return True
        except OSError as err:
            if err.errno == errno.EINTR:
                continue
            return False
        if not chunk:
            return False
        room = limit - len(buf)
        if room > 0:
            buf += chunk[:room]
        if len(chunk) > max(room, 0):
            res.truncated = True
