# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Port isolation as policy: a bridge port's isolated flag (IFLA_BRPORT_ISOLATED).

An isolated port forwards only to ports that are not isolated (the uplink, a
router, the bridge itself), never to another isolated port. It needs no VLAN
filtering. Policy: ``isolated`` on a host rule, ``isolated="yes"`` on the
guest metadata's ``<interface>`` (docs/vlan.md "Port isolation").

Who owns the flag: when our policy turns it on we record it in
``/run/netvirt-hooks/isolated/<dev>`` (the port's ifindex). A port whose policy
no longer says ``isolated`` is turned off only when that record names this very
device, so a flag libvirt set itself from a native ``<port isolated='yes'/>``
is left alone. ``isolated: false`` in policy turns it off whoever set it.
"""

import errno
import os

from .. import paths
from ..errors import KernelError, NetvirtError, PolicyError


def record_dir():
    return os.path.join(paths.run_dir(), "isolated")


def _record_path(dev):
    if not dev or "/" in dev or dev.startswith("."):
        raise PolicyError("is not a usable device name", f"port {dev!r}")
    return os.path.join(record_dir(), dev)


def recorded(dev):
    """The ifindex our policy isolated under the name ``dev``, or None."""
    try:
        fd = os.open(_record_path(dev), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (OSError, PolicyError):
        return None
    try:
        text = os.read(fd, 32).decode("ascii", "replace").strip()
    finally:
        os.close(fd)
    return int(text) if text.isdigit() else None


def recorded_in(raw_xml):
    """Cheap, for wants(): does the guest's XML name a tap our policy isolated (that may need turning off)?"""
    try:
        names = os.listdir(record_dir())
    except OSError:
        return False
    return bool(raw_xml) and any(f"'{name}'".encode() in raw_xml or f'"{name}"'.encode() in raw_xml
                                 for name in names)


def _record(dev, index):
    from .. import locks
    locks.private_dir(record_dir())
    path = _record_path(dev)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as err:
        raise NetvirtError(f"cannot record the isolation: {err.strerror}", path) from None
    try:
        os.write(fd, f"{index}\n".encode())
    finally:
        os.close(fd)


def _forget(dev):
    try:
        os.unlink(_record_path(dev))
    except OSError as err:
        if err.errno != errno.ENOENT:
            raise NetvirtError(f"cannot remove the isolation record: {err.strerror}", _record_path(dev)) from None


def linux_bridge_port(port):
    return not port.ovs and port.type in ("bridge", "network")


def candidates(ports):
    """Ports whose flag we set (policy says on or off) or may have to clear (our record)."""
    return [port for port in ports if linux_bridge_port(port)
            and (port.isolated is not None or (port.dev and recorded(port.dev) is not None))]


def want(port, link):
    """True/False: what the flag must be; our record is only believed for the same ifindex."""
    if port.isolated is not None:
        return port.isolated
    return False if recorded(port.dev) == link.index else link.isolated


def set_port(ipr, port, links, check=False):
    """Make one port's isolated flag follow its policy; returns a result dict (raises NetvirtError)."""
    if not port.dev:
        raise KernelError("has no tap device (target dev) in the live XML", "isolated")
    link = links.get(port.dev)
    if link is None:
        raise KernelError("no such interface", f"port {port.dev}")
    if link.isolated is None:
        raise PolicyError("is not a port of any bridge: cannot isolate it", f"port {port.dev}")
    by_index = {lk.index: lk.name for lk in links.values()}
    if port.bridge and by_index.get(link.master) != port.bridge:
        raise PolicyError(f"is a port of bridge {by_index.get(link.master)}, not of bridge {port.bridge}",
                          f"port {port.dev}")
    before, after = link.isolated, want(port, link)
    actions = [f"set dev {port.dev} isolated {'on' if after else 'off'}"] if after != before else []
    if not check:
        if after and port.isolated:
            _record(port.dev, link.index)      # first: a run killed after the change still owns the flag
        if actions:
            from ..kernel import bridge as kbridge
            kbridge.set_isolated(ipr, link.index, after, f"port {port.dev}")
            link.isolated = after
        if not after or not port.isolated:
            _forget(port.dev)                  # off, or left to whoever set it (libvirt): not ours
    return {"changed": bool(actions), "port": port.dev, "bridge": by_index.get(link.master),
            "before": {"isolated": before}, "after": {"isolated": after}, "actions": actions}
