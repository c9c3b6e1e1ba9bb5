# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running guests, from libvirt's status XML of qemu and lxc guests, read fresh.

The one answer to "which guests run here and what are their ports" for
reconcile, orphan collection, dynamic uplinks and ``netvirt-hooks``. It never
calls libvirt: a hook that did would deadlock, and the command must work while
libvirtd hangs. libvirt writes ``<name>.xml`` per running guest under
``/run/libvirt/<driver>/`` and removes it when the guest stops.
"""

import os

from .. import paths

# qemu first: a name running under both drivers is shown as the qemu guest
DRIVERS = (("qemu", paths.qemu_status_dir), ("lxc", paths.lxc_status_dir))


def status_files():
    """[(driver, guest name, path)] of every running guest, sorted per driver."""
    out = []
    for driver, folder in DRIVERS:
        try:
            names = sorted(os.listdir(folder()))
        except (FileNotFoundError, NotADirectoryError):
            continue
        out.extend((driver, name[:-4], os.path.join(folder(), name))
                   for name in names if name.endswith(".xml") and len(name) > 4)
    return out


def names():
    """Names of the running guests, qemu then lxc, without duplicates."""
    seen = []
    for _driver, name, _path in status_files():
        if name not in seen:
            seen.append(name)
    return seen


def known():
    """Can running guests be told at all? (False where no driver's status folder exists.)"""
    return any(os.path.isdir(folder()) for _driver, folder in DRIVERS)


def find(name):
    """(driver, path) of the running guest ``name``, or None."""
    for driver, folder in DRIVERS:
        path = os.path.join(folder(), f"{name}.xml")
        if os.path.exists(path):
            return driver, path
    return None


def domains(log=None):
    """Every running guest's parsed status XML; one that cannot be read is logged and skipped."""
    from ..errors import NetvirtError
    from ..policy import domxml
    out = []
    for _driver, _name, path in status_files():
        try:
            out.append(domxml.read_status_xml(path))
        except NetvirtError as err:
            if log is not None:
                log.warning("skipping status XML: %s", err)
    return out


def has_mac(mac):
    """Does a running guest have an interface with ``mac``? Fresh from the status XML, without the XML parser."""
    import re
    wanted = mac.lower().encode()
    for _driver, _name, path in status_files():
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError:
            continue
        if any(m.lower() == wanted for m in re.findall(rb"<mac\s+address=['\"]([0-9A-Fa-f:]{17})['\"]", data)):
            return True
    return False
