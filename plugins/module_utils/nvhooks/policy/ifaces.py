# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What each libvirt interface kind is on this host, and who owns its qdiscs and VLANs.

Pure: reads a ``domxml.Interface`` (its ``kind`` is ``<actual type>`` for a
network port) and says in words what resolve.py records as notes, so the
hook logs them, ``explain`` and ``status`` show them. The rules are in
docs/shaping.md ("Interface kinds") and docs/vlan.md ("Who owns a port").
"""

# A tap in the host (libvirt makes it; guest inbound = its egress).
TAP_KINDS = frozenset(("bridge", "network", "ethernet"))
# A macvtap (type='direct'): the reverse of a tap. libvirt shapes it with
# virNetDevBandwidthSet(swapped=false): the guest's inbound on the device's
# RX (ingress), its outbound on TX (egress); for taps swapped=true.
MACVTAP_KINDS = frozenset(("direct",))
# No kernel device of the guest's port on this host: nothing for tc or the bridge.
NOT_DEVICES = {
    "vhostuser": "a vhost-user socket (a user-space switch such as OVS-DPDK owns the port)",
    "hostdev": "a PCI device passed to the guest (SR-IOV VF): the NIC, not the host, carries its traffic",
    "vdpa": "a vDPA device: the NIC's datapath, not a host netdev, carries its traffic",
    "user": "qemu's user-mode network (slirp/passt): traffic goes through qemu's own sockets",
    "server": "a qemu socket backend (server): no host netdev",
    "client": "a qemu socket backend (client): no host netdev",
    "mcast": "a qemu multicast socket backend: no host netdev",
    "udp": "a qemu UDP socket backend: no host netdev",
    "null": "a null backend: the port carries no traffic",
    "vds": "a VMware distributed switch port: no host netdev",
    "internal": "a hypervisor-internal network: no host netdev",
}
FLOOR_NETWORK = "network"    # <actual type='network'>: a libvirt-made bridge (forward none/nat/route/open)
RESERVED_VIDS = (0, 4095)    # 802.1Q: 0 = priority tag, 4095 = reserved; a Linux bridge refuses both


def device_of(kind):
    """'tap', 'macvtap' or None (no kernel device on this host)."""
    if kind in TAP_KINDS:
        return "tap"
    if kind in MACVTAP_KINDS:
        return "macvtap"
    return None


def not_a_device(kind):
    """Why a port of this kind is neither shaped nor VLAN-filtered here."""
    why = NOT_DEVICES.get(kind, "an interface kind this collection does not know")
    return f"type {kind or '(none)'!r}: {why}; not a kernel device on this host, never planned as a tap"


def native_floor_notes(iface, takeover):
    """Reports about <floor> (libvirt honours it only on a libvirt-made network bridge)."""
    notes = []
    for direction in ("inbound", "outbound"):
        side = getattr(iface, direction)
        if side is None or not side.floor:
            continue
        floor = f"{direction} floor {side.floor} KiB/s"
        bridge = iface.source_bridge or "(unknown)"
        if direction == "outbound":
            notes.append(f"{floor} is ignored: libvirt guarantees a floor only for inbound traffic")
        elif iface.kind != FLOOR_NETWORK:
            notes.append(f"{floor} is ignored by libvirt on a {iface.kind or 'typeless'} port: libvirt honours a "
                         "floor only on a libvirt network with forward mode none, nat, route or open")
        elif iface.floor_class is not None:
            notes.append(f"{floor} is libvirt's: guaranteed by its class 1:{iface.floor_class:x} on the network's "
                         f"bridge {bridge}, which we never touch")
        elif iface.actual_type:
            notes.append(f"{floor} is ignored by libvirt: no class for it on the network's bridge {bridge} "
                         "(the network has no inbound <bandwidth>)")
        else:
            notes.append(f"{floor} is libvirt's: guaranteed on the network's bridge {bridge} only if that "
                         "network has an inbound <bandwidth>; we never touch it")
        if not side.average and takeover:
            notes.append(f"{direction}: floor only, no average: nothing of ours to shape (never an error)")
    return notes


def native_vlan_text(vlan):
    """libvirt's <vlan> as explain shows it."""
    parts = []
    for tag in vlan.tags:
        parts.append(f"{tag.id}" + (f" (native {tag.native_mode})" if tag.native_mode else ""))
    return ("trunk " if vlan.trunk else "access ") + ", ".join(parts)


def vlan_owner(iface, ovs, ours):
    """(owner, notes) of a port's VLANs: 'libvirt', 'openvswitch', 'netvirt' or None.

    Never fight libvirt: a port whose XML has <vlan> is libvirt's (libvirt >= 11.0
    applies it on a Linux bridge port itself; older libvirt refuses to start
    such a guest), and our VLAN policy, if any, is not applied to it.
    """
    notes = []
    native = iface.vlan
    if native is not None:
        reserved = sorted({t.id for t in native.tags} & set(RESERVED_VIDS))
        if reserved:
            notes.append(f"libvirt <vlan> uses reserved VLAN id {', '.join(map(str, reserved))} (802.1Q): "
                         "a Linux bridge refuses it; libvirt reports the failure, not us")
        owner = "openvswitch" if ovs else "libvirt"
        if ours:
            notes.append(f"VLAN policy not applied: libvirt's own <vlan> ({native_vlan_text(native)}) owns this "
                         f"port's VLANs{' (via Open vSwitch)' if ovs else ''}; never fight libvirt")
        elif not ovs and iface.kind in ("bridge", "network"):
            notes.append("libvirt's <vlan> on a Linux bridge port: libvirt >= 11.0 applies it itself "
                         "(older libvirt refuses to start the guest)")
        return owner, notes
    return ("netvirt" if ours else None), notes
