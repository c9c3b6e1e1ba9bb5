# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Precedence: domain XML + host policy -> the effective policy of each port.

Per aspect of a port (inbound, outbound, group, vlan, isolated), the first source that
says something wins, in this order:

1. host policy rules, in file order (the operator's word on this host);
2. the guest's <metadata> policy element (travels with the guest);
3. native libvirt <bandwidth> (inbound/outbound only), unless the host sets
   ``native_bandwidth: libvirt``, which leaves those ports to libvirt.

An aspect is taken whole from one source (an average from one place and a
burst from another would be a policy nobody wrote). ``explain`` reports each
value with the source it came from.
"""

from typing import Mapping, Optional, Tuple

from . import ifaces, model as policy, units, vlanset
from ..errors import PolicyError
from .record import Factory, Record

ASPECTS = ("inbound", "outbound", "group", "vlan", "isolated")
NATIVE = "native <bandwidth>"


class PortPolicy(Record):
    guest: str
    uuid: str
    index: int
    mac: Optional[str]
    dev: Optional[str]
    type: str
    bridge: Optional[str]
    ovs: bool
    native: bool                       # the domain XML has a <bandwidth> on this port
    inbound: Optional[policy.Rate] = None
    outbound: Optional[policy.Rate] = None
    group: Optional[policy.GroupPolicy] = None
    vlan: Optional[policy.VlanPolicy] = None
    isolated: Optional[bool] = None    # None: no source says (the flag is then ours to clear only)
    sources: Mapping[str, str] = Factory(dict)
    notes: Tuple[str, ...] = ()
    device: Optional[str] = "tap"      # 'tap', 'macvtap' or None (no kernel device here: ifaces.py)
    network: Optional[str] = None      # <source network> (and portgroup) of a type='network' port
    native_vlan: Optional[str] = None  # libvirt's own <vlan>, as text
    native_isolated: bool = False      # libvirt's <port isolated='yes'/> (libvirt applies it)
    owners: Mapping[str, Optional[str]] = Factory(dict)   # qdiscs/vlans -> who

    @property
    def swapped(self):
        """macvtap: guest inbound arrives on the device's ingress (the reverse of a tap)."""
        return self.device == "macvtap"

    @property
    def label(self):
        """How logs and errors name the port."""
        return f"{self.guest} port {self.index} ({self.dev or 'no tap'}, {self.mac or 'no mac'})"

    @property
    def shaped(self):
        return bool(self.inbound or self.outbound or self.group)

    def explain(self):
        out = {"guest": self.guest, "index": self.index, "mac": self.mac, "dev": self.dev,
               "type": self.type, "bridge": self.bridge, "ovs": self.ovs, "native_bandwidth": self.native,
               "notes": list(self.notes), "values": {}, "device": self.device, "owners": dict(self.owners)}
        if self.network:
            out["network"] = self.network
        if self.native_vlan:
            out["values"]["native.vlan"] = {"value": self.native_vlan, "source": "libvirt <vlan> (libvirt applies it)"}
        if self.native_isolated:
            out["values"]["native.isolated"] = {"value": "yes", "source": "libvirt <port isolated='yes'/> "
                                                                          "(libvirt applies it)"}
        for direction in ("inbound", "outbound"):
            rate = getattr(self, direction)
            for key, text in (rate.as_text() if rate else {}).items():
                out["values"][f"{direction}.{key}"] = {"value": text, "source": self.sources[direction]}
        if self.group:
            out["values"]["group"] = {"value": self.group.name, "source": self.sources["group"]}
        if self.vlan:
            for key, value in self.vlan.as_text().items():
                out["values"][f"vlan.{key}"] = {"value": value, "source": self.sources["vlan"]}
        if self.isolated is not None:
            out["values"]["isolated"] = {"value": self.isolated, "source": self.sources["isolated"]}
        return out


def _from_native(iface, guest):
    """Native sides with an average (a floor alone is libvirt's business: ifaces.native_floor_notes)."""
    where = f"{guest}: interface[{iface.index}] <bandwidth>"
    rule = {}
    for direction in ("inbound", "outbound"):
        side = getattr(iface, direction)
        if side is None or not side.average:
            continue
        data = {k: getattr(side, k) for k in ("average", "peak", "burst") if getattr(side, k)}
        rule[direction] = policy.parse_rate(data, f"{where} {direction}")   # the floor stays libvirt's
    return rule


def _native_label(iface):
    if iface.bandwidth_from != "network":
        return NATIVE
    where = f"network {iface.source_network or '?'}" + (f" portgroup {iface.portgroup}" if iface.portgroup else "")
    return f"{NATIVE} from {where}"


def _matching(domain, iface, host, meta_rules):
    chosen, sources = {}, {}
    for rule in host.rules:
        if rule.match.matches(domain.name, iface):
            _take(chosen, sources, rule, f"host policy {rule.where}")
    for rule in meta_rules:
        if rule.match.matches(domain.name, iface):
            _take(chosen, sources, rule, rule.where)
    return chosen, sources


def resolve_port(domain, iface, host, meta_rules):
    chosen, sources = _matching(domain, iface, host, meta_rules)
    notes = list(iface.xml_notes)
    device = ifaces.device_of(iface.kind)
    native = bool(iface.inbound or iface.outbound)
    takeover = host.settings.native_bandwidth == "takeover"
    if device is None:
        # a warning, never an error: nothing of ours can act on such a port
        notes.append(ifaces.not_a_device(iface.kind))
        for aspect in sorted(chosen):
            notes.append(f"{aspect} policy from {sources[aspect]} matches this port but is not applied")
        chosen, sources = {}, {}
        if native:
            notes.append("native <bandwidth> on it is libvirt's to refuse or ignore; we never shape it")
        native = False
    if native:
        notes += ifaces.native_floor_notes(iface, takeover)
    if native and takeover:
        for direction, rate in _from_native(iface, domain.name).items():
            if direction not in chosen:
                chosen[direction], sources[direction] = rate, _native_label(iface)
    if native and ("inbound" in chosen or "outbound" in chosen or "group" in chosen):
        notes.append("libvirt's own shaping of this port (<bandwidth>: HTB + ingress police) is replaced by ours;"
                     " a port is never shaped twice")
    _allowed(chosen, sources, host.settings, f"{domain.name}: interface[{iface.index}]")
    group = None
    if "group" in chosen:
        group = host.groups.get(chosen["group"])
        if group is None:
            raise PolicyError(f"group {chosen['group']!r} is not defined in the host policy",
                              f"{domain.name}: interface[{iface.index}] ({sources['group']})")
    ovs = iface.virtualport_type == "openvswitch"
    if ovs and (chosen.get("inbound") or chosen.get("outbound") or group):
        notes.append("Open vSwitch port: shaping is left to OVS (libvirt's ingress policing), never tc")
        for direction in ("inbound", "outbound"):
            rate = chosen.get(direction)
            if rate and rate.peak and rate.peak != rate.average:
                notes.append(f"{direction}: OVS ignores average {units.format_rate(rate.average)} and "
                             f"applies peak {units.format_rate(rate.peak)} (libvirt gives the same warning)")
    elif ovs:
        notes.append("Open vSwitch port: we never shape it with tc (libvirt turns any <bandwidth> into OVS QoS)")
    if device == "macvtap" and (chosen.get("inbound") or chosen.get("outbound") or group):
        notes.append("macvtap: guest inbound is shaped on its ingress (via an ifb), guest outbound on its "
                     "egress: the reverse of a tap, as libvirt does")
    bridge_port = not ovs and iface.kind in ("bridge", "network")
    if "vlan" in chosen and not bridge_port:
        notes.append(f"VLAN policy ignored: a {'OVS' if ovs else iface.kind} port is not a Linux bridge port")
    if chosen.get("isolated") and not bridge_port:
        notes.append(f"isolated ignored: a {'OVS' if ovs else iface.kind} port is not a Linux bridge port")
    if iface.isolated and "isolated" in chosen:
        # libvirt sets the flag itself from <port isolated='yes'/>: never fight it
        chosen.pop("isolated")
        notes.append("isolated: libvirt's own <port isolated='yes'/> sets this port's flag; our policy's value is not applied")
    vlan_owner, vlan_notes = ifaces.vlan_owner(iface, ovs, "vlan" in chosen and bridge_port)
    notes += vlan_notes
    if vlan_owner in ("libvirt", "openvswitch"):
        chosen.pop("vlan", None)
    shaped = bool(chosen.get("inbound") or chosen.get("outbound") or group)
    owners = {"qdiscs": "openvswitch" if ovs and (shaped or native) else "netvirt" if shaped
              else "libvirt" if native else None, "vlans": vlan_owner}
    network = iface.source_network and (iface.source_network
                                        + (f" portgroup {iface.portgroup}" if iface.portgroup else ""))
    return PortPolicy(
        guest=domain.name, uuid=domain.uuid, index=iface.index, mac=iface.mac, dev=iface.target_dev,
        type=iface.kind, bridge=iface.source_bridge, ovs=ovs, native=native,
        inbound=chosen.get("inbound"), outbound=chosen.get("outbound"), group=group,
        vlan=chosen.get("vlan"), isolated=chosen.get("isolated"), sources=sources, notes=tuple(notes),
        device=device, network=network or None,
        native_vlan=ifaces.native_vlan_text(iface.vlan) if iface.vlan else None, native_isolated=iface.isolated,
        owners=owners)


def _allowed(chosen, sources, settings, where):
    """A guest's own metadata may only pick what the host allows (settings.metadata_*)."""
    if "metadata" in sources.get("vlan", "") and settings.metadata_vlans is not None:
        vlan = chosen["vlan"]
        asked = set(vlan.tagged) | ({vlan.pvid} if vlan.pvid else set())
        refused = asked - settings.metadata_vlans
        if refused:
            allowed = vlanset.format_vids(settings.metadata_vlans) or "none"
            raise PolicyError(f"its metadata asks for VLAN {vlanset.format_vids(refused)}, which this host does not "
                              f"allow guests to choose (settings.metadata_vlans: {allowed})",
                              f"{where} ({sources['vlan']})")
    if "metadata" in sources.get("group", "") and settings.metadata_groups is not None \
            and chosen["group"] not in settings.metadata_groups:
        allowed = ", ".join(sorted(settings.metadata_groups)) or "none"
        raise PolicyError(f"its metadata asks for group {chosen['group']!r}, which this host does not allow "
                          f"guests to choose (settings.metadata_groups: {allowed})", f"{where} ({sources['group']})")


def _take(chosen, sources, rule, label):
    for aspect in ASPECTS:
        value = getattr(rule, aspect)
        if value is not None and aspect not in chosen:
            chosen[aspect], sources[aspect] = value, label


def resolve(domain, host=None):
    """Effective policy of every port of ``domain`` (a domxml.Domain)."""
    host = host or policy.HostPolicy()
    meta_rules = policy.parse_metadata(domain.policy_element, domain.name)
    return [resolve_port(domain, iface, host, meta_rules) for iface in domain.interfaces]


def explain(domain, host=None):
    host = host or policy.HostPolicy()
    return {"guest": domain.name, "uuid": domain.uuid, "host_policy": host.source,
            "precedence": ["host policy rules (file order)", "guest <metadata>", NATIVE],
            "ports": [port.explain() for port in resolve(domain, host)]}
