# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Log collection: the per-script logs of guests gone for long go, and no guest keeps too many.

Per-script logs are ``<driver>_<op>_<subop>_<guest>_<script>.log`` (hooklog.log_path),
plus logrotate's copies (``.log.1``, ``.log.2.gz``, ``.log-20260101``). Every
guest ever started leaves such files behind; logrotate never removes an empty
one. Two rules, both from the dispatcher conf:

* ``log_max_age_days``: the files of a guest that is not running
  (guests.running, status XML) and whose newest file is older than that go;
* ``log_max_files_per_guest``: a guest (running or not) keeps its newest files
  up to that number.

Only qemu/lxc guest logs in the log folder itself are touched: regular files,
never links, never subfolders; daemon, network and dispatcher logs stay.
Guest and script names may both hold ``_``: the split uses the script names
the dispatcher can log under (built-in handlers, original entries, entries of
the event and custom folders). A file whose script is not known (a script
since removed) counts for the guest before its last ``_``, and is kept while
any guest whose name it starts with runs. Where no status folder exists at all
(libvirt not running), nothing is removed by age: who runs cannot be told.
"""

import os
import time

from .event import OPS, file_safe

GUEST_DRIVERS = ("qemu", "lxc")
# logrotate's copies: .log.1, .log.2.gz, .log-20260101, .log-20260101.gz
_SUFFIXES = (".gz", ".xz", ".bz2", ".zst")


class Result:
    """What a collection found: ``removed`` [(file name, reason)], files before, guests seen."""

    def __init__(self):
        self.removed = []
        self.files = 0
        self.guests = 0
        self.age_skipped = None   # why the age rule did not run, or None

    def as_dict(self):
        return {"removed": [f"{name}: {why}" for name, why in self.removed], "files": self.files,
                "guests": self.guests, "age_skipped": self.age_skipped}


def base_name(name):
    """``qemu_start_begin_web1_vlanhook`` for any of its log files, or None if not a log."""
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            name = name[:-len(suffix)]
            break
    if name.endswith(".log"):
        return name[:-4] or None
    stem, dot, tail = name.rpartition(".log")
    if not dot or not stem or tail[:1] not in (".", "-") or not tail[1:].isdigit():
        return None
    return stem


def split_guest(base, scripts):
    """(guest key, script known?) of a guest log's base name, or None for other logs."""
    parts = base.split("_", 3)
    if len(parts) != 4 or parts[0] not in GUEST_DRIVERS or parts[1] not in OPS[parts[0]]:
        return None
    rest = parts[3]
    for script in scripts:
        if len(rest) > len(script) + 1 and rest.endswith("_" + script):
            return rest[:-len(script) - 1], True
    guest = rest.rpartition("_")[0]
    return (guest, False) if guest else None


def known_scripts(dconf, builtin_names=()):
    """File-safe names the dispatcher logs under, longest first (see scripts.plan)."""
    names = {f"original-{driver}" for driver in GUEST_DRIVERS} | {"built-in handlers"} | set(builtin_names)
    folders = [dconf.custom_dir]
    try:
        folders += [os.path.join(dconf.events_dir, d) for d in os.listdir(dconf.events_dir)
                    if d.endswith(".d") and d.split("_", 1)[0] in GUEST_DRIVERS]
    except OSError:
        pass
    for folder in folders:
        try:
            entries = os.listdir(folder)
        except OSError:
            continue
        names.update(os.path.basename(os.path.realpath(os.path.join(folder, e))) for e in entries)
    return sorted({file_safe(n) for n in names}, key=len, reverse=True)


def collect(log_dir, max_age_days, max_files, scripts, running=None, now=None, check_mode=False):
    """Apply both rules to ``log_dir``; ``running`` names (None: unknown); 0 turns a rule off."""
    result = Result()
    now = time.time() if now is None else now
    groups = {}   # guest key -> [(mtime, name, script known)]
    try:
        entries = list(os.scandir(log_dir))
    except FileNotFoundError:
        return result
    for entry in entries:
        result.files += 1
        base = base_name(entry.name)
        owner = split_guest(base, scripts) if base else None
        if owner is None or not entry.is_file(follow_symlinks=False):
            continue
        try:
            mtime = entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        groups.setdefault(owner[0], []).append((mtime, entry.name, owner[1]))
    result.guests = len(groups)
    live = None if running is None else {file_safe(n) for n in running}
    if live is None and max_age_days:
        result.age_skipped = "no libvirt status folder: running guests cannot be told"
    doomed = []
    for guest, files in groups.items():
        files.sort(reverse=True)
        if live is not None and max_age_days and guest not in live \
                and now - files[0][0] > max_age_days * 86400:
            why = f"guest {guest} not running, newest log older than {max_age_days} days"
            doomed += [(name, why, True) for _m, name, known in files if known or not _runs_prefix(name, live)]
        elif max_files and len(files) > max_files:
            why = f"more than {max_files} log files of guest {guest}"
            doomed += [(name, why, False) for _m, name, _k in files[max_files:]]
    for name, why, by_age in sorted(doomed):
        if not check_mode and not _remove(log_dir, name, now - max_age_days * 86400 if by_age else None):
            continue
        result.removed.append((name, why))
    return result


def _runs_prefix(name, live):
    """Could this file (of a script not known) belong to a running guest after all?"""
    rest = name.split("_", 3)[-1]
    return any(rest.startswith(guest + "_") for guest in live)


def _remove(log_dir, name, older_than):
    """Unlink one file, unless it is no longer a regular file or (by age) was written meanwhile."""
    path = os.path.join(log_dir, name)
    try:
        st = os.lstat(path)
        if not _regular(st) or (older_than is not None and st.st_mtime >= older_than):
            return False
        os.unlink(path)
    except OSError:
        return False
    return True


def _regular(st):
    import stat
    return stat.S_ISREG(st.st_mode)


def run(dconf, builtin_names=(), check_mode=False, now=None):
    """Collect with the dispatcher conf's settings and the running guests from status XML.

    ``builtin_names``: the built-in handlers' step names (dispatch.handlers.names()).
    """
    from ..guests import running
    names = running.names() if running.known() else None
    return collect(dconf.log_dir, dconf.log_max_age_days, dconf.log_max_files_per_guest,
                   known_scripts(dconf, builtin_names), names, now=now, check_mode=check_mode)


# ----------------------------------------------------------- built-in handler
# Seen by dispatch.handlers as a handler with only a daemon step (daemon start);
# it passes the handlers' names in (this file must not import the registry).

def acts_on(_event):
    return False


def wants(_event, _raw_xml, _host):
    return False


def handle(_event, _domain, _host, _log):
    return None


def daemon_start(log, builtin_names):
    """At daemon start: collect; log what went; never raise (the event must not fail)."""
    try:
        from . import conf as confmod
        result = run(confmod.load_dispatcher(), builtin_names)
    except Exception as err:  # pylint: disable=broad-except
        # log collection must never fail daemon start
        log.error("log collection failed: %s", err)
        return
    if result.age_skipped:
        log.warning("log collection by age skipped: %s", result.age_skipped)
    for name, why in result.removed:
        log.debug("removed %s: %s", name, why)
    log.info("log collection: %d of %d files removed (%d guests with logs)",
             len(result.removed), result.files, result.guests)
