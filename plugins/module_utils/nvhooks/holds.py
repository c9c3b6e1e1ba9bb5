# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Holds: an operator debugging a guest's ports by hand tells the agent to keep off.

``netvirt-hooks hold GUEST`` (or ``hold --host`` for every guest) makes a
marker file under the root-only run dir; ``release`` removes it. The agent
does not touch a held guest (no converge, no drift heal); the hook still runs
at libvirt's events (a held guest that restarts is shaped as usual). Markers
live in /run: a reboot releases every hold.
"""

import os
import time

from . import paths
from .errors import NetvirtError

HOST = "--host"      # the marker name of the host-wide hold (no guest name starts with "--")


def hold_dir():
    return os.path.join(paths.run_dir(), "holds")


def _marker(guest):
    if not guest or "/" in guest or guest in (".", "..") or "\0" in guest:
        raise NetvirtError("is not a guest name", repr(guest))
    return os.path.join(hold_dir(), guest)


def hold(guest=None, note=""):
    """Hold ``guest`` (None: the host). Returns the marker path."""
    from . import locks
    locks.private_dir(hold_dir())
    path = _marker(guest or HOST)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {note}".rstrip() + "\n")
    return path


def release(guest=None):
    """Release ``guest``'s hold (None: the host hold); True if there was one."""
    try:
        os.unlink(_marker(guest or HOST))
        return True
    except FileNotFoundError:
        return False


def held(guest=None):
    """The hold's text (when and why) if ``guest`` (None: the host) is held, else None."""
    try:
        with open(_marker(guest or HOST), "r", encoding="utf-8") as handle:
            return handle.read(200).strip() or "held"
    except (FileNotFoundError, NotADirectoryError):
        return None


def why_held(guest):
    """Why the agent must keep off ``guest``: the host hold or the guest's own; None if free."""
    host = held()
    if host is not None:
        return f"host hold ({host})"
    own = held(guest)
    return None if own is None else f"hold ({own})"


def listing():
    """{guest or '--host': text} of every hold."""
    try:
        names = sorted(os.listdir(hold_dir()))
    except FileNotFoundError:
        return {}
    return {name: held(None if name == HOST else name) or "held" for name in names}
