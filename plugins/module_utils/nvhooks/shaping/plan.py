# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shaping plan: policy + kernel capabilities -> desired tc state, as plain data.

Pure: no kernel, no pyroute2. apply.py compares a plan with the live
kernel and changes only the difference. Layout (docs/shaping.md has a picture):

* guest inbound  = tap egress: root HTB ``1:`` default ``1``, class ``1:1``
  (rate = average, ceil = peak or average), leaf qdisc ``10:`` (caps.leaf).
* guest outbound = tap ingress (clsact, else ingress): u32 match-all + mirred
  egress redirect to the port's ifb ``nvo<hash of tap>``, shaped there like
  the inbound side. A macvtap is the reverse (``swapped``): guest inbound on
  its ingress (the ifb), guest outbound on its egress HTB.
* group direction: the tap redirects to the group's ifb (``nvgi``/``nvgo`` +
  hash of the group name; inbound from a clsact egress filter). On it: root
  HTB ``1:`` default ``2``; ``1:1`` rate = ceil = group ceiling; ``1:2`` the
  catch-all for frames no member filter claims (broadcast, spoofed source
  MACs): small rate, ceil = group ceiling, so nothing escapes the ceiling;
  one class per member ``1:<m>`` (rate = floor, ceil = member peak/average
  capped at the ceiling) chosen by a u32 filter on the guest MAC (dst MAC at
  -14 on the inbound ifb, src MAC at -8 on the outbound ifb: u32 offsets are
  relative to the network header). The member number ``m`` is allocated by
  diff.py (lowest free), so the plan carries ``None`` for it.

Every object carries the exact values the kernel reports back (rates in
bytes/s, HTB buffers in psched ticks), so comparing is exact.
"""

from typing import Optional, Tuple

# CPython's own SHA-256: hashlib would also load its OpenSSL bindings (0.8 MiB of the agent) for the same digest
try:
    from _sha2 import sha256 as _sha256            # Python 3.12 and later
except ImportError:
    try:
        from _sha256 import sha256 as _sha256      # Python 3.11
    except ImportError:                            # a Python built without its own hashes
        from hashlib import sha256 as _sha256

from ..policy import units
from ..policy.record import Record
from ..errors import KernelError, PolicyError

# HTB handles (major:minor as the kernel's u32 handle)
ROOT = 0xFFFFFFFF
CLSACT = 0xFFFFFFF1            # the clsact/ingress qdisc's parent id
INGRESS_HANDLE = 0xFFFF0000    # ffff: (both clsact and ingress)
CLSACT_INGRESS = 0xFFFFFFF2    # filter parent for clsact ingress (= ffff:fff2)
CLSACT_EGRESS = 0xFFFFFFF3     # filter parent for clsact egress (ffff:fff3)
HTB_ROOT = 0x10000             # 1:
PORT_CLASS = 0x10001           # 1:1
PORT_LEAF = 0x100000           # 10:
GROUP_CLASS = 0x10001          # 1:1 group parent
GROUP_DEFAULT = 0x10002        # 1:2 catch-all
MEMBER_MIN, MEMBER_MAX = 0x10, 0xFFE   # member minors; u32 node ids are 12 bits
# Our filters on the tap: ingress prio 1, egress prio 2. clsact's two sides
# share one u32 table space, and u32 lists every filter of the same prio on
# both sides, so the sides get different prios and kernel-chosen handles.
FILTER_PRIO = 1
EGRESS_PRIO = 2
MEMBER_PRIO = 10               # member filters on a group ifb
ETH_P_ALL = 0x0003
R2Q = 10
MIN_QUANTUM, MAX_QUANTUM = 1600, 200000
PFIFO_LIMIT = 1000
# HTB's class parameters carry u32 rates on pyroute2 0.7 (no rate64 there).
MAX_RATE_BYTES = 2 ** 32 - 1
MAX_TICKS = 2 ** 32 - 1
DEFAULT_BURST_MIN = 16 * 1024   # bytes; enough for TCP at 10 Mbit/s
DEFAULT_BURST_MS = 5            # at high rates: 5 ms of traffic
ALIAS_PREFIX = "netvirt "       # IFLA_IFALIAS of every ifb we create


def handle_text(handle):
    """Kernel u32 handle -> tc's ``maj:min`` (hex)."""
    if handle is None:
        return "<member>"
    if handle == ROOT:
        return "root"
    major, minor = handle >> 16, handle & 0xFFFF
    return f"{major:x}:{minor:x}" if minor else f"{major:x}:"


def _hash(text, size):
    return _sha256(text.encode("utf-8")).hexdigest()[:size]


def port_ifb(dev):
    """Name of the outbound ifb of tap ``dev`` (13 characters)."""
    return f"nvo{_hash(dev, 10)}"


def group_ifb(group, direction):
    """Name of a group's ifb: ``nvgi``/``nvgo`` + 10 hex digits (14 characters)."""
    return ("nvgi" if direction == "inbound" else "nvgo") + _hash(group, 10)


def port_ifb_alias(dev):
    return f"{ALIAS_PREFIX}port {dev} outbound"


def group_ifb_alias(group, direction):
    return f"{ALIAS_PREFIX}group {group} {direction}"


def group_of(alias):
    """Inverse of group_ifb_alias: 'netvirt group <name> <direction>' -> name."""
    return alias[len(ALIAS_PREFIX) + len("group "):].rsplit(" ", 1)[0]


def quantum(rate_bytes):
    """A quantum the kernel does not warn about ('quantum of class is big/small')."""
    return max(MIN_QUANTUM, min(MAX_QUANTUM, rate_bytes // R2Q))


def default_burst(rate_bytes):
    """Burst when the policy gives none: accurate from 10 Mbit/s to 10 Gbit/s."""
    return max(DEFAULT_BURST_MIN, rate_bytes * DEFAULT_BURST_MS // 1000)


def xmit_ticks(rate_bytes, size, tick_in_usec):
    """HTB buffer in psched ticks, computed exactly as pyroute2 (and tc) do."""
    return int(int(1000000 * (float(size) / rate_bytes)) * tick_in_usec)


class Obj(Record):
    """One kernel object we want.

    kind: ``ifb`` (dev = the ifb), ``qdisc`` (id = its parent handle),
    ``class`` (id = classid), ``filter`` (id = (parent, prio, u32 handle)).
    Member objects carry id None (and the leaf handle None) until diff.py
    allocates the member number.
    attrs: sorted (name, value) pairs compared with what the kernel reports.
    scope: ``port`` (belongs to this port), ``group`` (shared by a group's
    members: created by the first, removed with the last), ``member``.
    """
    kind: str
    dev: str
    id: object
    attrs: Tuple[Tuple[str, object], ...]
    scope: str = "port"

    @property
    def key(self):
        return (self.kind, self.dev, self.id)

    def get(self, name, default=None):
        return dict(self.attrs).get(name, default)

    def text(self):
        """One readable line, as tc would print it."""
        a = dict(self.attrs)
        if self.kind == "ifb":
            return f"ifb {self.dev} ({a.get('alias')})"
        if self.kind == "qdisc":
            if self.id == ROOT:
                where = "root"
            elif a["kind"] in ("clsact", "ingress"):
                where = "clsact"
            else:
                where = f"parent {handle_text(self.id)}"
            extra = f" default {a['default']:x}" if a["kind"] == "htb" else ""
            extra += f" limit {a['limit']}" if "limit" in a else ""
            return f"qdisc {a['kind']} {handle_text(a['handle'])} dev {self.dev} {where}{extra}"
        if self.kind == "class":
            return (f"class htb {handle_text(self.id)} dev {self.dev} "
                    f"parent {handle_text(a['parent'])} rate {units.format_rate(a['rate'] * 8)} "
                    f"ceil {units.format_rate(a['ceil'] * 8)} burst {units.format_size(a['burst'])} "
                    f"cburst {units.format_size(a['cburst'])} quantum {a['quantum']}")
        parent, prio = self.id[0], self.id[1]
        side = {CLSACT_INGRESS: "ingress", CLSACT_EGRESS: "egress"}.get(parent, handle_text(parent))
        if a.get("foreign"):
            return f"filter {a['foreign']} dev {self.dev} {side} prio {prio} (not ours)"
        what = (f"mirred egress redirect dev {a['redirect']}" if a.get("redirect")
                else f"ether {'dst' if a['mac_at'] == -14 else 'src'} {a['mac']} classid "
                     f"{handle_text(a['classid']) if a.get('classid') else '1:<member>'}")
        return f"filter u32 dev {self.dev} {side} prio {prio} {what}"

    def as_dict(self):
        out = {"object": self.kind, "dev": self.dev, "scope": self.scope, "text": self.text(),
               "id": list(self.id) if isinstance(self.id, tuple) else self.id}
        if self.kind == "class":
            out["classid"] = handle_text(self.id)
        out.update(dict(self.attrs))   # a qdisc's "kind" is its qdisc kind (htb, ...)
        return out


class Membership(Record):
    """This port's place in a group, one direction."""
    group: str
    direction: str
    ifb: str
    mac: str
    mac_at: int          # -14 (dst MAC, inbound) or -8 (src MAC, outbound)


class Plan(Record):
    """Desired tc state of one port.

    ``present`` False: the port should carry nothing of ours (teardown).
    ``objects``: what must exist (port, group and member scopes).
    ``port_ifbs``: ifbs owned by this port (removed when not wanted).
    ``memberships``: the groups this port joins; ``mac`` identifies it on the
    group ifbs (teardown scans every group ifb for that MAC).
    """
    dev: str
    label: str
    present: bool = True
    netns: Optional[str] = None
    mac: Optional[str] = None
    objects: Tuple[Obj, ...] = ()
    port_ifbs: Tuple[str, ...] = ()
    memberships: Tuple[Membership, ...] = ()
    notes: Tuple[str, ...] = ()

    @property
    def groups(self):
        """Group names to lock, sorted (fixed lock order: no deadlock)."""
        return tuple(sorted({m.group for m in self.memberships}))

    def describe(self):
        return [o.text() for o in self.objects]

    def as_dict(self):
        return {"dev": self.dev, "netns": self.netns, "present": self.present, "mac": self.mac,
                "objects": [o.as_dict() for o in self.objects], "port_ifbs": list(self.port_ifbs),
                "groups": [{"group": m.group, "direction": m.direction, "ifb": m.ifb} for m in self.memberships],
                "notes": list(self.notes)}


def _attrs(**kw):
    return tuple(sorted(kw.items()))


def _check_rate(bits, what, where):
    rate = units.rate_bytes(bits)
    if rate < 1:
        raise PolicyError(f"{what} {bits}bit/s is below 8 bit/s, the smallest rate HTB can express", where)
    if rate > MAX_RATE_BYTES:
        raise PolicyError(f"{what} {units.format_rate(bits)} is beyond what HTB can express here "
                          f"(at most {units.format_rate(MAX_RATE_BYTES * 8)})", where)
    return rate


def htb_class(dev, classid, parent, rate_bits, ceil_bits, burst, caps, where, scope="port", what="rate"):
    """An HTB class with exact kernel values; bursts are checked against the u32 tick buffer."""
    rate = _check_rate(rate_bits, what, where)
    ceil = _check_rate(ceil_bits, "ceil", where)
    burst = burst if burst is not None else default_burst(rate)
    cburst = max(burst, default_burst(ceil))
    buffer = xmit_ticks(rate, burst, caps.tick_in_usec)
    cbuffer = xmit_ticks(ceil, cburst, caps.tick_in_usec)
    if buffer > MAX_TICKS or cbuffer > MAX_TICKS:
        raise PolicyError(f"burst {units.format_size(burst)} at {units.format_rate(rate * 8)} is more than "
                          f"the kernel's HTB buffer can hold (burst/rate must stay under "
                          f"{MAX_TICKS / caps.tick_in_usec / 1e6:.0f} s)", where)
    return Obj("class", dev, classid, _attrs(parent=parent, rate=rate, ceil=ceil, burst=burst, cburst=cburst,
                                             buffer=buffer, cbuffer=cbuffer, quantum=quantum(rate), prio=0),
               scope)


def leaf_qdisc(dev, parent, handle, caps, scope="port"):
    if caps.leaf == "pfifo":
        return Obj("qdisc", dev, parent, _attrs(kind="pfifo", handle=handle, limit=PFIFO_LIMIT), scope)
    return Obj("qdisc", dev, parent, _attrs(kind=caps.leaf, handle=handle), scope)


def _htb_root(dev, default, scope):
    return Obj("qdisc", dev, ROOT, _attrs(kind="htb", handle=HTB_ROOT, default=default, r2q=R2Q), scope)


def _shaped_device(dev, rate, caps, where):
    """Root HTB + one class + leaf on ``dev`` for a per-port Rate."""
    peak = rate.peak or rate.average
    return [_htb_root(dev, 1, "port"),
            htb_class(dev, PORT_CLASS, HTB_ROOT, rate.average, peak, rate.burst, caps, where),
            leaf_qdisc(dev, PORT_CLASS, PORT_LEAF, caps)]


def _redirect(dev, parent, target):
    prio = EGRESS_PRIO if parent == CLSACT_EGRESS else FILTER_PRIO
    return Obj("filter", dev, (parent, prio, None), _attrs(protocol=ETH_P_ALL, redirect=target))


def group_objects(group, direction, caps, where):
    """The shared objects of a group direction (on its ifb)."""
    side = getattr(group, direction)
    ifb = group_ifb(group.name, direction)
    scope = "group"
    catch_all = max(8000, side.ceiling // 100)
    return [Obj("ifb", ifb, None, _attrs(alias=group_ifb_alias(group.name, direction)), scope),
            _htb_root(ifb, GROUP_DEFAULT & 0xFFFF, scope),
            htb_class(ifb, GROUP_CLASS, HTB_ROOT, side.ceiling, side.ceiling, side.burst, caps, where, scope,
                      what="group ceiling"),
            htb_class(ifb, GROUP_DEFAULT, GROUP_CLASS, min(catch_all, side.ceiling), side.ceiling, None, caps,
                      where, scope),
            leaf_qdisc(ifb, GROUP_DEFAULT, 0x20000, caps, scope)]


def member_objects(group, direction, rate, mac, caps, where):
    """A member's class + leaf + MAC filter on the group ifb (id None: diff.py allocates)."""
    side = getattr(group, direction)
    ifb = group_ifb(group.name, direction)
    floor = (rate.floor if rate and rate.floor else None) or side.floor or max(8000, side.ceiling // 100)
    top = min((rate.peak or rate.average) if rate and rate.average else side.ceiling, side.ceiling)
    if floor > top:
        raise PolicyError(f"guaranteed rate {units.format_rate(floor)} is above what the member may use "
                          f"({units.format_rate(top)}) in group {group.name!r}", where)
    mac_at = -14 if direction == "inbound" else -8
    burst = rate.burst if rate else None
    return [htb_class(ifb, None, GROUP_CLASS, floor, top, burst, caps, where, "member", what="floor"),
            leaf_qdisc(ifb, None, None, caps, "member"),
            Obj("filter", ifb, (HTB_ROOT, MEMBER_PRIO, None), _attrs(protocol=ETH_P_ALL, mac=mac, mac_at=mac_at),
                "member")], Membership(group.name, direction, ifb, mac, mac_at)


def plan_device(dev, caps, inbound=None, outbound=None, group=None, mac=None, netns=None, label=None,
                swapped=False):
    """Plan for one device from Rates (the tc_shape module's entry).

    ``inbound``/``outbound``: policy.Rate or None. ``group``: policy.GroupPolicy
    or None; a group direction replaces the per-port shaping of that
    direction (the member's average/peak become its ceiling, its floor the
    guaranteed rate). ``mac``: the guest's MAC, required with a group.
    ``swapped``: a macvtap, where the guest's inbound traffic enters the
    device (ingress, shaped on the port ifb) and its outbound leaves it
    (egress HTB): the reverse of a tap.
    Raises PolicyError / KernelError naming ``label`` (default: dev).
    """
    where = label or dev
    _need(caps, "htb", where)
    rates = {"inbound": inbound, "outbound": outbound}
    grouped = {d for d in ("inbound", "outbound") if group is not None and getattr(group, d) is not None}
    if group is not None and not mac:
        raise PolicyError(f"group {group.name!r} needs the guest's MAC to tell members apart", where)
    objects, memberships, port_ifbs = [], [], []
    tap_filters = []
    for direction in ("inbound", "outbound"):
        rate = rates[direction]
        on_egress = (direction == "inbound") != swapped     # tap: guest inbound leaves the tap
        if direction in grouped:
            _need(caps, "ifb", where)
            if on_egress and not caps.clsact:
                raise KernelError(f"a group's {direction} side here needs the clsact qdisc "
                                  "(CONFIG_NET_SCH_INGRESS >= 4.5)", where)
            objects += group_objects(group, direction, caps, f"{where} group {group.name} {direction}")
            members, membership = member_objects(group, direction, rate, mac.lower(), caps,
                                                 f"{where} {direction}")
            objects += members
            memberships.append(membership)
            parent = CLSACT_EGRESS if on_egress else _ingress_parent(caps)
            tap_filters.append(_redirect(dev, parent, membership.ifb))
        elif rate is not None and rate.average:
            if on_egress:
                objects += _shaped_device(dev, rate, caps, f"{where} {direction}")
            else:
                _need(caps, "ifb", where)
                ifb = port_ifb(dev)
                port_ifbs.append(ifb)
                objects.append(Obj("ifb", ifb, None, _attrs(alias=port_ifb_alias(dev))))
                objects += _shaped_device(ifb, rate, caps, f"{where} {direction}")
                tap_filters.append(_redirect(dev, _ingress_parent(caps), ifb))
    if tap_filters:
        kind = "clsact" if caps.clsact else "ingress"
        objects.insert(0, Obj("qdisc", dev, CLSACT, _attrs(kind=kind, handle=INGRESS_HANDLE)))
        objects += tap_filters
    if not objects:
        raise PolicyError("nothing to shape: give an average (or a group)", where)
    return Plan(dev=dev, label=where, netns=netns, mac=mac.lower() if mac else None, objects=tuple(objects),
                port_ifbs=tuple(port_ifbs), memberships=tuple(memberships))


def plan_absent(dev, mac=None, netns=None, label=None):
    """Plan that removes everything of ours for ``dev`` (and member ``mac``)."""
    return Plan(dev=dev, label=label or dev, present=False, netns=netns, mac=mac.lower() if mac else None,
                port_ifbs=(port_ifb(dev),))


def plan_port(port, caps):
    """Plan for a resolve.PortPolicy (the hook's entry). None when tc must not touch it.

    OVS ports and ports without shaping give None; ports with native
    <bandwidth> get our plan, which replaces libvirt's root qdisc and
    ingress police (apply takes over any root/ingress qdisc).
    """
    if port.ovs or not port.shaped or not port.dev or port.device is None:
        return None
    return plan_device(port.dev, caps, inbound=port.inbound, outbound=port.outbound, group=port.group,
                       mac=port.mac, label=port.label, swapped=port.swapped)


def plan_port_absent(port):
    """Teardown plan for a port of a stopped guest (names derived from the XML)."""
    if port.ovs or not port.dev or port.device is None:
        return None
    return plan_absent(port.dev, mac=port.mac, label=port.label)


def _ingress_parent(caps):
    return CLSACT_INGRESS if caps.clsact else INGRESS_HANDLE


def _need(caps, what, where):
    if not getattr(caps, what):
        option = {"htb": "CONFIG_NET_SCH_HTB (sch_htb)", "ifb": "CONFIG_IFB (ifb)"}[what]
        raise KernelError(f"the kernel lacks {what}: enable {option}", where)
