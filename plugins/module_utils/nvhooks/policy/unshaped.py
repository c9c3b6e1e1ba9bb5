# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ports without any bandwidth limit: host settings ``unshaped`` and ``unshaped_exempt``.

In a fleet where every flavor is meant to be limited, a port with no limit at
all is a mistake worth seeing (docs/shaping.md "Unshaped ports"):

* ``allow`` (the host policy's default, and with no policy file): say nothing;
* ``warn``: one WARNING per port at ``start begin``, naming tap, MAC and guest;
* ``abort``: refuse the guest at ``start begin``, before its CPUs run.

A port is unshaped when no source gives it inbound, outbound or a group and
libvirt does not shape it itself (native ``<bandwidth>`` left to libvirt).
``unshaped_exempt`` names the ports that may be: ``bridges`` (globs on the
bridge name) and ``ports`` (matches with the keys of a rule's ``match``).
Parsed here, called from model.parse_host_policy with its match parser (no
import cycle).
"""

import fnmatch

from ..errors import PolicyError
from .record import Record

MODES = ("allow", "warn", "abort")
DEFAULT = "allow"


class Exempt(Record):
    bridges: tuple = ()     # globs on the bridge name
    ports: tuple = ()       # model.PortMatch, like a rule's match


def parse(settings, parse_match):
    """(mode, Exempt) from the host policy's ``settings`` mapping; errors name the key."""
    mode = settings.get("unshaped", DEFAULT)
    if mode not in MODES:
        raise PolicyError(f"{mode!r} is not one of {', '.join(MODES)}", "settings.unshaped")
    data = settings.get("unshaped_exempt")
    if not data and isinstance(data, (dict, type(None))):
        return mode, None          # no exemptions: Settings() compares equal to its defaults
    where = "settings.unshaped_exempt"
    if not isinstance(data, dict):
        raise PolicyError(f"must be a mapping with bridges and/or ports, not {type(data).__name__}", where)
    unknown = sorted(set(data) - {"bridges", "ports"})
    if unknown:
        raise PolicyError(f"unknown key {unknown[0]!r} (allowed: bridges, ports)", f"{where}.{unknown[0]}")
    bridges = data.get("bridges") or []
    ports = data.get("ports") or []
    for key, value in (("bridges", bridges), ("ports", ports)):
        if not isinstance(value, list):
            raise PolicyError(f"must be a list, not {type(value).__name__}", f"{where}.{key}")
    for i, name in enumerate(bridges):
        if not isinstance(name, str) or not name.strip():
            raise PolicyError(f"{name!r} is not a bridge name or glob", f"{where}.bridges[{i}]")
    matches = tuple(parse_match(item, f"{where}.ports[{i}]") for i, item in enumerate(ports))
    return mode, Exempt(bridges=tuple(bridges), ports=matches)


def is_unshaped(port):
    """No limit from any source, and not left to libvirt's own <bandwidth>."""
    return not port.shaped and not port.native


def exemption(port, iface, exempt):
    """Why ``port`` may stay unshaped (a text), or None. ``iface``: its domxml interface."""
    if exempt is None:
        return None
    for glob in exempt.bridges:
        if port.bridge and fnmatch.fnmatchcase(port.bridge, glob):
            return f"bridge {port.bridge} matches unshaped_exempt.bridges {glob!r}"
    for i, match in enumerate(exempt.ports):
        if match.matches(port.guest, iface):
            return f"unshaped_exempt.ports[{i}]"
    return None


def offenders(domain, ports, settings):
    """[(port, exemption or None)] of the unshaped ports of ``domain`` (resolved ``ports``)."""
    by_index = {iface.index: iface for iface in domain.interfaces}
    return [(port, exemption(port, by_index.get(port.index), getattr(settings, "unshaped_exempt", None)))
            for port in ports if is_unshaped(port)]


def message(port):
    return (f"no bandwidth limit: tap={port.dev or '-'} mac={port.mac or '-'} guest={port.guest} "
            f"(port {port.index})")


def enforce(domain, ports, settings, log):
    """At ``start begin``: warn per port, or raise PolicyError naming every unshaped port (abort)."""
    mode = getattr(settings, "unshaped", DEFAULT)
    if mode == "allow":
        return []
    from .. import logfields
    found = [port for port, why in offenders(domain, ports, settings) if why is None]
    level = log.warning if mode == "warn" else log.error
    for port in found:
        level("%s (settings.unshaped is %s)", message(port), mode,
              extra=logfields.port(port.dev, port.mac, "unshaped", changed=0))
    if found and mode == "abort":
        taps = ", ".join(port.dev or f"port {port.index}" for port in found)
        raise PolicyError(f"refused: port(s) without a bandwidth limit ({taps}) and settings.unshaped is abort "
                          "(give them a limit, or exempt them in settings.unshaped_exempt)", f"guest {domain.name}")
    return found
