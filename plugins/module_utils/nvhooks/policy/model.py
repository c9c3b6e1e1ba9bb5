# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Policy model, the guest <metadata> format and the host policy file.

Formats are documented in docs/policy.md. Everything is validated on the way
in, with errors naming the offending key (``policy.json: rules[2].inbound.peak``).
"""

from __future__ import annotations   # annotations stay text: no typing import at hook time

import fnmatch
import json

from . import units, unshaped, vlanset
from ..errors import NetvirtError, PolicyError
from ..values import boolean as parse_boolean
from .record import Factory, Record
from .xmlns import NS_NETVIRT as NS

TYPE_CHECKING = False        # typing.TYPE_CHECKING without importing typing: names for the annotations only
if TYPE_CHECKING:
    from typing import Mapping, Optional, Tuple

VLAN_FAILURE = ("abort", "warn")
UPLINK_VLANS = ("static", "dynamic")
NATIVE_BANDWIDTH = ("takeover", "libvirt")
MAX_POLICY_BYTES = 4 * 1024 * 1024


class Rate(Record):
    """One direction of a port: rates in bit/s, burst in bytes."""
    average: Optional[int] = None
    peak: Optional[int] = None
    burst: Optional[int] = None
    floor: Optional[int] = None

    def as_text(self):
        out = {}
        for name in ("average", "peak", "floor"):
            if getattr(self, name) is not None:
                out[name] = units.format_rate(getattr(self, name))
        if self.burst is not None:
            out["burst"] = units.format_size(self.burst)
        return out


class VlanPolicy(Record):
    """A bridge port's VLANs, like a switch port: access pvid plus trunk ids."""
    pvid: Optional[int] = None
    untagged: bool = True
    tagged: frozenset = frozenset()
    keep_default: bool = False

    def as_text(self):
        return {"pvid": self.pvid, "untagged": self.untagged,
                "tagged": vlanset.format_vids(self.tagged), "keep_default": self.keep_default}


class GroupSide(Record):
    ceiling: int                   # shared by all members, bit/s
    floor: Optional[int] = None    # default guaranteed rate per member, bit/s
    burst: Optional[int] = None    # bytes


class GroupPolicy(Record):
    name: str
    inbound: Optional[GroupSide] = None
    outbound: Optional[GroupSide] = None


class BridgePolicy(Record):
    name: str
    vlan_filtering: bool = True
    default_pvid: Optional[int] = None     # deny by default: a port no policy covers gets no VLAN
    uplinks: Tuple[str, ...] = ()
    uplink_vids: frozenset = frozenset()
    self_vids: frozenset = frozenset()
    self_pvid: Optional[int] = None


class Settings(Record):
    vlan_failure: str = "abort"         # abort the guest start, or only warn
    uplink_vlans: str = "static"        # dynamic: uplink carries only VLANs in use
    native_bandwidth: str = "takeover"  # takeover: we shape ports with native <bandwidth>
    # What a guest's own <metadata> may choose (docs/policy.md "Trust"); None: anything
    metadata_vlans: Optional[frozenset] = None
    metadata_groups: Optional[frozenset] = None
    unshaped: str = "allow"             # ports with no limit: allow, warn, abort (policy/unshaped.py)
    unshaped_exempt: object = None      # unshaped.Exempt


class PortMatch(Record):
    """Which ports a rule applies to; every given key must match."""
    guest: Optional[str] = None   # glob on the guest name
    mac: Optional[str] = None     # glob on the lower-case MAC
    dev: Optional[str] = None     # glob on the target dev (tap name)
    index: Optional[int] = None   # interface position, 0-based

    def may_match(self, guest):
        """Could this match a port of ``guest``? (needs only the name: hooks decide cheaply)"""
        return self.guest is None or fnmatch.fnmatchcase(guest or "", self.guest)

    def matches(self, guest, iface):
        if self.guest is not None and not fnmatch.fnmatchcase(guest, self.guest):
            return False
        if self.mac is not None and not fnmatch.fnmatchcase(iface.mac or "", self.mac):
            return False
        if self.dev is not None and not fnmatch.fnmatchcase(iface.target_dev or "", self.dev):
            return False
        return self.index is None or self.index == iface.index


class PortRule(Record):
    """What one source says about a port; None means 'this source is silent'."""
    where: str
    match: PortMatch
    inbound: Optional[Rate] = None
    outbound: Optional[Rate] = None
    group: Optional[str] = None
    vlan: Optional[VlanPolicy] = None
    isolated: Optional[bool] = None   # the bridge port's isolated flag (docs/vlan.md "Port isolation")


class HostPolicy(Record):
    source: str = "(no host policy)"
    settings: Settings = Settings()
    groups: Mapping[str, GroupPolicy] = Factory(dict)
    bridges: Mapping[str, BridgePolicy] = Factory(dict)
    rules: Tuple[PortRule, ...] = ()


# ---------------------------------------------------------------- validation

def _check_keys(data, allowed, where):
    if not isinstance(data, dict):
        raise PolicyError(f"must be a mapping, not {type(data).__name__}", where)
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise PolicyError(f"unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})",
                          f"{where}.{unknown[0]}" if where else unknown[0])


def _bool(value, where):
    return parse_boolean(value, where, PolicyError)


def _choice(value, choices, where):
    if value not in choices:
        raise PolicyError(f"{value!r} is not one of {', '.join(choices)}", where)
    return value


def _vid_or_none(value, where):
    if value is None or value == 0 or value == "0" or value == "":
        return None
    (vid,) = vlanset.parse_vids(value if isinstance(value, int) else str(value), where)
    return vid


def parse_rate(data, where):
    """A direction: {average, peak, burst, floor}; ints in libvirt units."""
    _check_keys(data, ("average", "peak", "burst", "floor"), where)
    values = {}
    for key in ("average", "peak", "floor"):
        if data.get(key) is not None:
            values[key] = units.parse_rate(data[key], f"{where}.{key}")
    if data.get("burst") is not None:
        values["burst"] = units.parse_size(data["burst"], f"{where}.burst")
    rate = Rate(**values)
    if rate.average is None and (rate.peak is not None or rate.burst is not None):
        raise PolicyError("peak and burst need an average", where)
    if rate.peak is not None and rate.peak < rate.average:
        raise PolicyError(f"peak {units.format_rate(rate.peak)} is below average "
                          f"{units.format_rate(rate.average)}", f"{where}.peak")
    if rate.floor is not None and rate.average is not None and rate.floor > (rate.peak or rate.average):
        raise PolicyError(f"floor {units.format_rate(rate.floor)} is above what the port may use", f"{where}.floor")
    if rate == Rate():
        raise PolicyError("sets nothing (give average, or floor for a group member)", where)
    return rate


def parse_vlan(data, where):
    _check_keys(data, ("pvid", "untagged", "tagged", "keep_default"), where)
    pvid = _vid_or_none(data.get("pvid"), f"{where}.pvid")
    tagged = vlanset.parse_vids(data.get("tagged"), f"{where}.tagged")
    if pvid is not None and pvid in tagged:
        raise PolicyError(f"VLAN {pvid} is both the pvid and tagged", f"{where}.tagged")
    if pvid is None and not tagged:
        raise PolicyError("sets neither pvid nor tagged VLANs", where)
    return VlanPolicy(pvid=pvid, untagged=_bool(data.get("untagged", True), f"{where}.untagged"),
                      tagged=tagged, keep_default=_bool(data.get("keep_default", False), f"{where}.keep_default"))


def _group_side(data, where):
    _check_keys(data, ("ceiling", "floor", "burst"), where)
    if data.get("ceiling") is None:
        raise PolicyError("a group needs a ceiling", f"{where}.ceiling")
    side = GroupSide(
        ceiling=units.parse_rate(data["ceiling"], f"{where}.ceiling"),
        floor=units.parse_rate(data["floor"], f"{where}.floor") if data.get("floor") is not None else None,
        burst=units.parse_size(data["burst"], f"{where}.burst") if data.get("burst") is not None else None)
    if side.floor is not None and side.floor > side.ceiling:
        raise PolicyError("floor is above the group's ceiling", f"{where}.floor")
    return side


def parse_group(name, data, where):
    _check_keys(data, ("inbound", "outbound"), where)
    if not name or not isinstance(name, str) or len(name) > 64 or not name.replace("-", "").replace("_", "").isalnum():
        raise PolicyError(f"group name {name!r} must be 1-64 letters, digits, '-' or '_'", where)
    sides = {d: _group_side(data[d], f"{where}.{d}") for d in ("inbound", "outbound") if data.get(d) is not None}
    if not sides:
        raise PolicyError("a group needs inbound and/or outbound", where)
    return GroupPolicy(name=name, **sides)


def parse_bridge(name, data, where):
    _check_keys(data, ("vlan_filtering", "default_pvid", "uplinks", "uplink_vids", "self_vids", "self_pvid"), where)
    uplinks = data.get("uplinks") or []
    if isinstance(uplinks, str) or not all(isinstance(u, str) and u for u in uplinks):
        raise PolicyError("must be a list of interface names", f"{where}.uplinks")
    return BridgePolicy(
        name=name,
        vlan_filtering=_bool(data.get("vlan_filtering", True), f"{where}.vlan_filtering"),
        default_pvid=_vid_or_none(data.get("default_pvid", 0), f"{where}.default_pvid"),
        uplinks=tuple(uplinks),
        uplink_vids=vlanset.parse_vids(data.get("uplink_vids"), f"{where}.uplink_vids"),
        self_vids=vlanset.parse_vids(data.get("self_vids"), f"{where}.self_vids"),
        self_pvid=_vid_or_none(data.get("self_pvid"), f"{where}.self_pvid"))


def _port_policy(data, where):
    """The shared part of a host rule and a metadata interface element."""
    out = {}
    for direction in ("inbound", "outbound"):
        if data.get(direction) is not None:
            out[direction] = parse_rate(data[direction], f"{where}.{direction}")
    if data.get("group") is not None:
        out["group"] = _string(data, "group", where)
    if data.get("vlan") is not None:
        out["vlan"] = parse_vlan(data["vlan"], f"{where}.vlan")
    if "isolated" in data:           # typed: null, 2 or "maybe" is refused naming the key
        out["isolated"] = _bool("null" if data["isolated"] is None else data["isolated"], f"{where}.isolated")
    return out


# YAML 1.1 (PyYAML, Ansible) reads 52:54:00:12:34:56 as a base-60 integer.
_MAC_HINT = ": quote MAC addresses in YAML (unquoted, YAML 1.1 reads one of only digits as a number)"
_QUOTE_HINT = ": quote it in YAML"
_MAC_GLOB = frozenset("0123456789abcdef:*?[]!-")


def _string(data, key, where, hint=_QUOTE_HINT):
    """data[key] as a non-empty string, None when the key is absent; null, numbers, lists are refused."""
    if key not in data:
        return None
    value = data[key]
    if value is None:
        raise PolicyError("is null: give a value, or leave the key out", f"{where}.{key}")
    if not isinstance(value, str):
        raise PolicyError(f"{value!r} is a {type(value).__name__}, not a string{hint}", f"{where}.{key}")
    if not value.strip():
        raise PolicyError("is empty: give a value, or leave the key out", f"{where}.{key}")
    return value


def parse_match(data, where):
    """Which ports a rule is for. Every key must be a real value: a null or a number that
    silently became 'no value' would make the rule match every port of every guest."""
    _check_keys(data, ("guest", "mac", "dev", "index"), where)
    if not data:
        raise PolicyError("match needs at least one of guest, mac, dev, index", where)
    index = data.get("index")
    if "index" in data:
        if isinstance(index, bool) or not str(index).isdigit():
            raise PolicyError(f"{index!r} is not an interface index (0, 1, ...)", f"{where}.index")
        index = int(index)
        if data.get("guest") is None:
            raise PolicyError("index only makes sense with a guest name", f"{where}.index")
    mac = _string(data, "mac", where, _MAC_HINT)
    if mac is not None:
        mac = mac.lower()
        if not set(mac) <= _MAC_GLOB:
            raise PolicyError(f"{data['mac']!r} is not a MAC address or a glob of one", f"{where}.mac")
    return PortMatch(guest=_string(data, "guest", where), mac=mac, dev=_string(data, "dev", where), index=index)


def _names(data, key, where):
    """A list of names, or None when the key is absent or null (no restriction)."""
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise PolicyError(f"must be a list of names, not {type(value).__name__}", f"{where}.{key}")
    for i, name in enumerate(value):
        _string({f"{key}[{i}]": name}, f"{key}[{i}]", where)
    return frozenset(value)


def _mapping(data, key, where):
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PolicyError(f"must be a mapping of names, not {type(value).__name__}", f"{where}{key}")
    return value


def parse_host_policy(data, source="policy.json"):
    """Validate a decoded host policy document into a HostPolicy."""
    _check_keys(data, ("version", "settings", "groups", "bridges", "rules"), "")
    if data.get("version", 1) != 1:
        raise PolicyError(f"unsupported version {data.get('version')!r} (this library reads 1)", f"{source}: version")
    try:
        settings = _mapping(data, "settings", "")
        _check_keys(settings, ("vlan_failure", "uplink_vlans", "native_bandwidth", "metadata_vlans",
                               "metadata_groups", "unshaped", "unshaped_exempt"), "settings")
        unshaped_mode, unshaped_exempt = unshaped.parse(settings, parse_match)
        parsed_settings = Settings(
            vlan_failure=_choice(settings.get("vlan_failure", "abort"), VLAN_FAILURE, "settings.vlan_failure"),
            uplink_vlans=_choice(settings.get("uplink_vlans", "static"), UPLINK_VLANS, "settings.uplink_vlans"),
            native_bandwidth=_choice(settings.get("native_bandwidth", "takeover"), NATIVE_BANDWIDTH,
                                     "settings.native_bandwidth"),
            metadata_vlans=None if settings.get("metadata_vlans") is None else
            vlanset.parse_vids(settings["metadata_vlans"], "settings.metadata_vlans"),
            metadata_groups=_names(settings, "metadata_groups", "settings"),
            unshaped=unshaped_mode, unshaped_exempt=unshaped_exempt)
        groups = {name: parse_group(name, spec, f"groups.{name}") for name, spec in _mapping(data, "groups", "").items()}
        bridges = {name: parse_bridge(name, spec, f"bridges.{name}")
                   for name, spec in _mapping(data, "bridges", "").items()}
        rules = []
        raw_rules = data.get("rules") or []
        if not isinstance(raw_rules, list):
            raise PolicyError("must be a list", "rules")
        for i, rule in enumerate(raw_rules):
            where = f"rules[{i}]"
            _check_keys(rule, ("match", "inbound", "outbound", "group", "vlan", "isolated", "comment"), where)
            if "match" not in rule:
                raise PolicyError("a rule needs a match", where)
            if rule.get("comment") is not None:
                _string(rule, "comment", where)
            body = _port_policy(rule, where)
            if not body:
                raise PolicyError("a rule needs inbound, outbound, group, vlan or isolated", where)
            if body.get("group") is not None and body["group"] not in groups:
                raise PolicyError(f"unknown group {body['group']!r}", f"{where}.group")
            rules.append(PortRule(where=where, match=parse_match(rule["match"], f"{where}.match"), **body))
    except NetvirtError as err:
        raise PolicyError(err.message, f"{source}: {err.where}") from None
    return HostPolicy(source=source, settings=parsed_settings, groups=groups, bridges=bridges, rules=tuple(rules))


def load_host_policy(path):
    """Read the host policy file; a missing file is an empty policy."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_POLICY_BYTES + 1)
    except FileNotFoundError:
        return HostPolicy()
    except OSError as err:
        raise PolicyError(f"cannot read: {err.strerror}", path) from None
    if len(raw) > MAX_POLICY_BYTES:
        raise PolicyError("larger than 4 MiB", path)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise PolicyError(f"not valid JSON: {err}", path) from None
    return parse_host_policy(data, source=path)


# ------------------------------------------------------------ guest metadata

def _attrs(element):
    return {key.replace("-", "_"): value for key, value in element.attrib.items()}


def parse_metadata(element, guest="guest"):
    """Read our <metadata> element into PortRules (see docs/policy.md).

    ``element`` is the {NS}policy element (domxml.Domain.policy_element).
    """
    if element is None:
        return ()
    rules = []
    position = 0
    for child in element:
        if not isinstance(child.tag, str):
            continue                                  # comments, PIs
        where = f"{guest}: metadata interface[{position}]"
        if child.tag != f"{{{NS}}}interface":
            raise PolicyError(f"unexpected element <{child.tag.split('}')[-1]}> (expected <interface>)", where)
        position += 1
        try:
            match_attrs = _attrs(child)
            body = {"isolated": match_attrs.pop("isolated")} if "isolated" in match_attrs else {}
            _check_keys(match_attrs, ("mac", "dev", "index"), "")
            if not match_attrs:
                raise PolicyError("<interface> needs mac, dev or index", "")
            match = parse_match(dict(match_attrs, guest=guest) if "index" in match_attrs else match_attrs, "")
            for sub in child:
                if not isinstance(sub.tag, str):
                    continue
                name = sub.tag.split("}")[-1]
                if not sub.tag.startswith(f"{{{NS}}}") or name not in ("inbound", "outbound", "group", "vlan"):
                    raise PolicyError(f"unexpected element <{name}>", "")
                if name in body:
                    raise PolicyError(f"<{name}> given twice", "")
                body[name] = _attrs(sub).get("name") if name == "group" else _attrs(sub)
            parsed = _port_policy(body, "")
        except NetvirtError as err:
            raise PolicyError(err.message, f"{where}{err.where or ''}") from None
        rules.append(PortRule(where=f"metadata interface[{position - 1}]", match=match, **parsed))
    return tuple(rules)
