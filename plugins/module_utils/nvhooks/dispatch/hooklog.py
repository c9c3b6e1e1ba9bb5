# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-script log files and the one-line syslog summary.

A script's record is assembled in memory and written with one O_APPEND write
under flock, so hooks for different guests (libvirt runs them concurrently)
never interleave inside a record.

The summary lines and the built-in handlers' records also go to the journal
with structured fields (``journal.py``: GUEST, EVENT, SCRIPT, PORT...) where
journald runs, else to syslog; /dev/log may be absent: syslog is then
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


def step_fields(event, script, duration=None):
    """The journal fields naming one step of an event (``duration`` in seconds)."""
    fields = {"EVENT": event.name, "SCRIPT": script}
    if event.guest is not None:
        fields.update(GUEST=event.guest, GUEST_UUID=event.uuid)
    if duration is not None:
        fields["DURATION_MS"] = int(round(duration * 1000))
    return fields


class Record:
    """Lines for one log file, written at once by ``flush``.

    ``label`` and ``fields`` name the step in the journal/syslog (``step_fields``);
    without them (syslog off) the handlers' records go to the file only.
    """

    def __init__(self, path, level, label=None, fields=None):
        self.path = path
        self.threshold = LEVELS.get(level, 20)
        self.lines = []
        self.label = label
        self.fields = fields

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


def syslog(level, message, fields=None):
    """One record to the journal with ``fields``, else one line to syslog; never an error."""
    global _syslog_open
    from . import journal
    if journal.send(safe_text(message), _SYSLOG_PRIO[level], fields):
        return
    try:
        import syslog as _sys  # C module, cheap; glibc drops messages without /dev/log
        if not _syslog_open:
            _sys.openlog(IDENT, _sys.LOG_PID, _sys.LOG_DAEMON)
            _syslog_open = True
        _sys.syslog(_SYSLOG_PRIO[level], safe_text(message).replace("\0", "\\0"))
    except (ImportError, OSError, ValueError):
        pass


def safe_text(text):
    """``text`` as valid UTF-8 whatever it holds: odd bytes in file names arrive as lone surrogates."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def level_name(record):
    """A logging record's level as one of LEVELS (a custom level maps to ERROR or INFO)."""
    return record.levelname if record.levelname in LEVELS else ("ERROR" if record.levelno >= 40 else "INFO")


def handler_logger(target):
    """A logging.Logger feeding the Record ``target`` (for the built-in handlers).

    Each record also goes to the journal/syslog when ``target`` has a label,
    with the step's fields and those the handler attached (``logfields``).
    """
    import logging
    from .. import logfields

    class _ToRecord(logging.Handler):
        def emit(self, record):
            name = level_name(record)
            text = self.format(record)
            target.add(name, text)
            if target.label is not None:
                syslog(name, f"{target.label}: {text}", {**(target.fields or {}), **logfields.of(record)})

    logger = logging.getLogger(f"netvirt-hooks.{id(target)}")
    logger.propagate = False
    logger.handlers[:] = [_ToRecord()]
    logger.setLevel(target.threshold)
    return logger


def stderr_logger(name):
    """A logging.Logger writing ``LEVEL message`` lines to stderr (netvirt-hooks apply/teardown, the agent)."""
    import logging
    log = logging.getLogger(name)
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    return log
