# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-script log files and the one-line syslog summary.

A script's record is assembled in memory and written with one O_APPEND write
under flock, so hooks for different guests (libvirt runs them concurrently)
never interleave inside a record. /dev/log may be absent: syslog is then
silently skipped.
"""

import fcntl
import os
import time

from .event import file_safe

LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}
_SYSLOG_PRIO = {"DEBUG": 7, "INFO": 6, "WARNING": 4, "ERROR": 3}
IDENT = "netvirt-hooks"


def log_path(log_dir, event, script):
    """``<log dir>/<driver>_<op>_<subop>_<guest>_<script>.log``, file-safe."""
    parts = [event.driver, event.op, event.subop, event.object, script]
    return os.path.join(log_dir, "_".join(file_safe(p) for p in parts) + ".log")


class Record:
    """Lines for one log file, written at once by ``flush``."""

    def __init__(self, path, level):
        self.path = path
        self.threshold = LEVELS.get(level, 20)
        self.lines = []

    def add(self, level, text):
        if LEVELS[level] < self.threshold:
            return
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        prefix = f"{stamp} {os.getpid()} {level} "
        for line in text.splitlines() or [""]:
            self.lines.append(prefix + line)

    def output(self, level, label, data, truncated=False):
        if not data:
            return
        text = data.decode("utf-8", "backslashreplace")
        body = text.rstrip("\n")
        self.add(level, f"{label}{' (truncated)' if truncated else ''}:\n{body}")

    def flush(self):
        """Write the record; an unwritable log never fails the hook."""
        if not self.lines:
            return None
        data = ("\n".join(self.lines) + "\n").encode("utf-8", "backslashreplace")
        self.lines = []
        try:
            os.makedirs(os.path.dirname(self.path), mode=0o750, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o640)
        except OSError as err:
            return f"cannot write log {self.path}: {err.strerror}"
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except OSError as err:
            return f"cannot write log {self.path}: {err.strerror}"
        finally:
            os.close(fd)
        return None


_syslog_open = False


def syslog(level, message):
    """One line to syslog/journal; nothing (and no error) without /dev/log."""
    global _syslog_open
    try:
        import syslog as _sys  # C module, cheap; glibc drops messages without /dev/log
        if not _syslog_open:
            _sys.openlog(IDENT, _sys.LOG_PID, _sys.LOG_DAEMON)
            _syslog_open = True
        _sys.syslog(_SYSLOG_PRIO[level], safe_text(message))
    except (ImportError, OSError):
        pass


def safe_text(text):
    """``text`` as valid UTF-8 whatever it holds: odd bytes in file names arrive as lone surrogates."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def handler_logger(target):
    """A logging.Logger feeding the Record ``target`` (for the built-in handlers)."""
    import logging

    class _ToRecord(logging.Handler):
        def emit(self, record):
            name = record.levelname if record.levelname in LEVELS else ("ERROR" if record.levelno >= 40 else "INFO")
            target.add(name, self.format(record))

    logger = logging.getLogger(f"netvirt-hooks.{id(target)}")
    logger.propagate = False
    logger.handlers[:] = [_ToRecord()]
    logger.setLevel(target.threshold)
    return logger
