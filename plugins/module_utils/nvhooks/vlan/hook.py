# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Built-in hook handler: guest bridge ports follow their VLAN policy.

Contract (docs/dev/architecture.md "Built-in handlers"): ``wants`` is cheap,
``handle`` runs for qemu/lxc events, ``bridge_init`` at daemon start/reload.
Security first: a port whose VLANs cannot be applied would sit in the
bridge's default VLAN, maybe another tenant's network, so failing to apply
raises (the dispatcher aborts the start) unless the host policy says
``settings.vlan_failure: warn``.
"""

import os

from .. import logfields, paths
from ..policy.xmlns import NS_BYTES
from . import apply as vlanapply
from ..kernel import bridge as kbridge, links as klinks
from ..kernel.bridge import FLAG_PVID, FLAG_UNTAGGED
from ..errors import KernelError, NetvirtError, PolicyError

# start begin: libvirt has made the taps and put them in their bridges, and not
# yet spawned qemu (docs/vlan.md "When"); started and reconnect re-check.
START = (("start", "begin"), ("started", "begin"), ("reconnect", "begin"))
STOP = (("stopped", "end"), ("release", "end"))
LOCK_TIMEOUT = 20.0
NATIVE = FLAG_PVID | FLAG_UNTAGGED


def _phase(event):
    pair = (event.op, event.subop)
    return "start" if pair in START else "stop" if pair in STOP else None


def acts_on(event):
    """Stdin-free: could this handler do anything for the event? (ordering views)"""
    return event.driver in ("qemu", "lxc") and _phase(event) is not None


def _dynamic(host):
    return host.settings.uplink_vlans == "dynamic" and any(b.uplinks for b in host.bridges.values())


def wants(event, raw_xml, host):
    """Cheap: no XML parsing, no netlink."""
    if event.driver not in ("qemu", "lxc"):
        return False
    phase = _phase(event)
    if phase == "stop":
        return _dynamic(host)
    if phase != "start":
        return False
    guest = getattr(event, "guest", None)
    if any((rule.vlan is not None or rule.isolated is not None) and rule.match.may_match(guest)
           for rule in host.rules):
        return True
    if bool(raw_xml) and NS_BYTES in raw_xml and (b"vlan" in raw_xml or b"isolated" in raw_xml):
        return True
    from . import isolation
    return isolation.recorded_in(raw_xml)  # a port our policy isolated may have to be turned off


def vlan_ports(domain, host, ports=None):
    """The guest's Linux bridge ports that have a VLAN policy."""
    from ..policy import resolve
    return [port for port in (resolve.resolve(domain, host) if ports is None else ports)
            if port.vlan is not None and not port.ovs and port.type in ("bridge", "network")]


def _port_result(ipr, port, check, cache):
    if not port.dev:
        raise KernelError("has no tap device (target dev) in the live XML", port.label)
    if not port.bridge:
        raise KernelError("the live XML names no bridge for this port", port.label)
    try:
        return vlanapply.set_port(ipr, port.dev, vlanapply.policy_table(port.vlan), exclusive=True,
                                  protect=frozenset([vlanapply.DEFAULT_VID]) if port.vlan.keep_default else frozenset(),
                                  check=check, bridge=port.bridge, need_filtering=True,
                                  all_links=cache["links"], tables=cache["tables"])
    except NetvirtError as err:
        raise type(err)(err.message, f"{port.label}: {err.where}" if err.where else port.label) from None


def apply_guest(domain, host, log, check=False, ipr=None):
    """Apply every VLAN port of ``domain``; returns the change results.

    Failures are collected per port (the others are still applied), then
    raised as one error, or logged as WARNING when vlan_failure is warn.
    """
    from ..policy import resolve
    from . import isolation
    resolved = resolve.resolve(domain, host)
    ports, isolate = vlan_ports(domain, host, resolved), isolation.candidates(resolved)
    if not ports and not isolate:
        return []
    changes, failures = [], []
    with _netlink(ipr) as nl:
        cache = _cache(nl, tables=bool(ports))
        for port in ports:
            try:
                result = _port_result(nl, port, check, cache)
            except NetvirtError as err:
                failures.append(err)
                continue
            if result["changed"]:
                log.info("%s: VLANs %s -> %s (%s)", port.label, _short(result["before"]),
                         _short(result["after"]), "; ".join(result["actions"]),
                         extra=logfields.port(port.dev, port.mac, "vlan", changed=len(result["actions"])))
                changes.append(result)
            else:
                log.debug("%s: VLANs already %s", port.label, _short(result["after"]),
                          extra=logfields.port(port.dev, port.mac, "vlan", changed=0))
        for port in isolate:
            try:
                result = isolation.set_port(nl, port, cache["links"], check)
            except NetvirtError as err:
                failures.append(type(err)(err.message, f"{port.label}: {err.where}" if err.where else port.label))
                continue
            if result["changed"]:
                log.info("%s: %s", port.label, "; ".join(result["actions"]),
                         extra=logfields.port(port.dev, port.mac, "isolate", changed=len(result["actions"])))
                changes.append(result)
    _report(domain.name, failures, host, log)
    return changes


def teardown_guest(domain, host, log, check=False):
    """Nothing to undo on the port (the tap goes away); dynamic uplinks shrink."""
    if _dynamic(host) and not check:
        return sync_uplinks(host, log, exclude=domain.uuid)
    return []


def _short(view):
    text = f"pvid {view['pvid']}" if view["pvid"] else "no pvid"
    return text + (f", tagged {view['tagged']}" if view["tagged"] else "")


def _report(guest, failures, host, log):
    if not failures:
        return
    warn = host.settings.vlan_failure == "warn"
    for err in failures:
        if warn:
            log.warning("guest %s: VLANs NOT applied, the port may reach the bridge's default VLAN "
                        "(settings.vlan_failure is warn): %s", guest, err)
        else:
            log.error("guest %s: VLANs cannot be applied, refusing: %s", guest, err)
    if not warn:
        raise KernelError("; ".join(str(err) for err in failures), f"guest {guest}")


def handle(event, domain, host, log):
    phase = _phase(event)
    if phase == "start":
        apply_guest(domain, host, log)
        if _dynamic(host):
            sync_uplinks(host, log, include=domain)
    elif phase == "stop" and _dynamic(host):
        sync_uplinks(host, log, exclude=domain.uuid)


# ------------------------------------------------------------- bridges

class _netlink:
    """``with _netlink(ipr) as nl``: use ``ipr``, or open and close a socket of our own.

    A class rather than contextlib: this module is imported on every qemu event.
    """

    def __init__(self, ipr=None):
        self.ipr, self.own = ipr, ipr is None

    def __enter__(self):
        if self.own:
            from ..kernel import netlink
            self.ipr = netlink.ipr()
        return self.ipr

    def __exit__(self, *exc):
        if self.own:
            self.ipr.close()


def _cache(nl, tables=True):
    """What a run reads once: every link by name and every VLAN table (later steps update it)."""
    return {"links": klinks.by_name(nl), "tables": kbridge.read_tables(nl) if tables else {}}


def uplink_lock(timeout=LOCK_TIMEOUT):
    """Serialise uplink changes between concurrent hook processes (bounded)."""
    from .. import locks
    return locks.flock(os.path.join(paths.run_dir(), "vlan-uplinks.lock"), timeout, "VLAN uplinks")


def running_domains(log):
    """Running guests from their status XML (never libvirt: a hook must not call it)."""
    from ..guests import running
    return running.domains(log)


def used_vids(host, domains):
    """{bridge: ids used by the given guests' VLAN ports on it}."""
    from ..policy import resolve
    used = {}
    for domain in domains:
        try:
            ports = resolve.resolve(domain, host)
        except PolicyError:
            continue                 # that guest's start reported it
        for port in ports:
            if port.ovs or port.type not in ("bridge", "network"):
                continue
            if port.vlan is not None:
                ids = set(port.vlan.tagged) | ({port.vlan.pvid} if port.vlan.pvid else set())
            elif port.owners.get("vlans") == "libvirt":      # libvirt's own <vlan>: its guests need the uplink too
                ids = {tag.id for tag in domain.interfaces[port.index].vlan.tags} - {0, 4095}
            else:
                continue
            used.setdefault(port.bridge, set()).update(ids)
    return used


def uplink_table(bridge_policy, used=None):
    """What each uplink should carry: static = uplink_vids; dynamic = what
    running guests use (limited to uplink_vids when those are given)."""
    ids = set(bridge_policy.uplink_vids)
    if used is not None:
        ids = (used & ids) if ids else set(used)
    return vlanapply.wish(vids=ids)


def _native(cache, name):
    """The untagged pvid (native VLAN) the device ``name`` carries now, as a set (empty: none)."""
    link = cache["links"].get(name)
    table = cache["tables"].get(link.index, {}) if link is not None else {}
    return frozenset(vid for vid, flags in table.items() if flags == NATIVE)


def _uplinks(nl, bridge_policy, used, cache, check):
    results = []
    for uplink in bridge_policy.uplinks:
        # the uplink's untagged native VLAN is the operator's: leave it (with default_pvid 0
        # too, where setup_bridge has kept it explicitly)
        protect = _native(cache, uplink)
        results.append(vlanapply.set_port(
            nl, uplink, uplink_table(bridge_policy, used), exclusive=True, protect=protect, check=check,
            bridge=bridge_policy.name, all_links=cache["links"], tables=cache["tables"]))
    return results


def _kept_natives(bridge_policy, cache):
    """Before default_pvid goes to 0: the bridge itself (unless self_pvid is given) and the uplinks
    that carry the old default VLAN as their native VLAN. The kernel drops it from them with the
    default; setup_bridge puts it back, so only ports no policy covers end up with nothing."""
    link = cache["links"].get(bridge_policy.name)
    if link is None or not link.default_pvid or bridge_policy.default_pvid:
        return [], None
    names = ([] if bridge_policy.self_pvid else [bridge_policy.name]) + list(bridge_policy.uplinks)
    return [name for name in names if link.default_pvid in _native(cache, name)], link.default_pvid


def _keep_natives(nl, bridge_policy, kept, cache):
    names, vid = kept
    results = []
    for name in names:
        if name == bridge_policy.name:
            results.append(vlanapply.set_self(nl, name, {vid: NATIVE}, exclusive=False,
                                              all_links=cache["links"], tables=cache["tables"]))
        else:
            results.append(vlanapply.set_port(nl, name, {vid: NATIVE}, exclusive=False, bridge=bridge_policy.name,
                                              all_links=cache["links"], tables=cache["tables"]))
    return results


def sync_uplinks(host, log, include=None, exclude=None, check=False, ipr=None):
    """Dynamic mode: uplinks carry the VLANs of running guests only."""
    results = []
    with uplink_lock(), _netlink(ipr) as nl:
        domains = [d for d in running_domains(log) if d.uuid != exclude and (include is None or d.uuid != include.uuid)]
        if include is not None:
            domains.append(include)
        used = used_vids(host, domains)
        cache = _cache(nl)
        for bridge_policy in host.bridges.values():
            if not bridge_policy.uplinks:
                continue
            for result in _uplinks(nl, bridge_policy, used.get(bridge_policy.name, set()), cache, check):
                if result["changed"]:
                    log.info("uplink %s: VLANs %s", result["port"], "; ".join(result["actions"]))
                    results.append(result)
    return results


def setup_bridge(nl, bridge_policy, host, cache, check=False, used=None):
    """One bridge from host policy: switches, its own VLANs, uplink trunks."""
    kept = _kept_natives(bridge_policy, cache)
    results = [vlanapply.set_bridge(nl, bridge_policy.name, vlan_filtering=bridge_policy.vlan_filtering,
                                    default_pvid=bridge_policy.default_pvid or 0, check=check,
                                    all_links=cache["links"])]
    if results[0]["changed"] and not check:
        cache["tables"] = kbridge.read_tables(nl)    # a new default pvid moves port VLANs
        if kept[0]:
            # check mode has nothing to predict here: the bridge and uplinks end as they were
            results += _keep_natives(nl, bridge_policy, kept, cache)
    if bridge_policy.self_vids or bridge_policy.self_pvid:
        want = vlanapply.wish(bridge_policy.self_pvid, True, bridge_policy.self_vids)
        protect = frozenset() if bridge_policy.self_pvid else _native(cache, bridge_policy.name)
        results.append(vlanapply.set_self(nl, bridge_policy.name, want, protect=protect, check=check,
                                          all_links=cache["links"], tables=cache["tables"]))
    if bridge_policy.uplinks:
        results += _uplinks(nl, bridge_policy, used, cache, check)
    return results


def bridge_init(host, log, check=False, ipr=None):
    """Daemon start/reload: bridges from host policy, then every running guest."""
    failures, changes = [], []
    domains = running_domains(log)
    used = used_vids(host, domains) if _dynamic(host) else {}
    with _netlink(ipr) as nl:
        cache = _cache(nl)
        for name, bridge_policy in sorted(host.bridges.items()):
            try:
                results = setup_bridge(nl, bridge_policy, host, cache, check,
                                       used.get(name, set()) if _dynamic(host) else None)
            except NetvirtError as err:
                log.error("bridge %s: %s", name, err)
                failures.append(str(err))
                continue
            except Exception as err:  # pylint: disable=broad-except
                # one bridge's bug must not stop the rest
                log.error("bridge %s: internal error: %r", name, err)
                failures.append(f"bridge {name}: internal error: {err!r}")
                continue
            for result in results:
                if result["changed"]:
                    log.info("bridge %s: %s", name, "; ".join(result["actions"]))
                    changes.append(result)
        for domain in domains:
            try:
                changes += apply_guest(domain, host, log, check=check, ipr=nl)
            except NetvirtError as err:
                # a running guest cannot be refused any more: say so loudly
                failures.append(str(err))
            except Exception as err:  # pylint: disable=broad-except
                # guest by guest, whatever happens
                log.error("guest %s: internal error: %r", domain.name, err)
                failures.append(f"guest {domain.name}: internal error: {err!r}")
    if failures:
        raise KernelError("; ".join(failures), "VLAN set-up at daemon start/reload")
    return changes


def isolation_check(port, ipr=None):
    """For `netvirt-hooks status`: the port's isolated flag now vs its policy (check mode; raises NetvirtError)."""
    from . import isolation
    with _netlink(ipr) as nl:
        return isolation.set_port(nl, port, klinks.by_name(nl), check=True)


def port_check(port, ipr=None):
    """For `netvirt-hooks status`: the port's VLANs now vs its policy (check mode; raises NetvirtError)."""
    with _netlink(ipr) as nl:
        cache = _cache(nl)
        return _port_result(nl, port, True, cache)
