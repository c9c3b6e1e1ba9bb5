# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shaping as a built-in hook handler (registered in dispatch/handlers.py).

* qemu/lxc ``start begin``: apply every shaped port of the guest. libvirt
  has made the taps (and put them in their bridges) by then, and has not yet
  started the guest's process: the first packet is shaped. This is also the
  first event with taps of an incoming migration or a restore.
* ``started begin`` and ``reconnect begin``: the same, as an idempotent
  re-check (nothing changes when the ports are right).
* ``stopped end`` and ``release end``: tear down what we made for the guest,
  from names derived from the domain XML (taps may be gone already; the
  kernel is the truth, no state files needed).
* daemon start/reload: ``reconcile_all`` re-applies every running guest from
  its status XML (never calls libvirt: that would deadlock).
"""

from .. import logfields
from ..policy.xmlns import NS_BYTES

APPLY = frozenset((("start", "begin"), ("started", "begin"), ("reconnect", "begin")))
TEARDOWN = frozenset((("stopped", "end"), ("release", "end")))


def _phase(event):
    if getattr(event, "driver", None) not in ("qemu", "lxc"):
        return None
    pair = (getattr(event, "op", None), getattr(event, "subop", None))
    if pair in APPLY:
        return "apply"
    if pair in TEARDOWN:
        return "teardown"
    return None


def acts_on(event):
    """Stdin-free: could this handler do anything for the event? (ordering views)"""
    return _phase(event) is not None


def wants(event, raw_xml, host):
    """Cheap check: no XML parser, no pyroute2."""
    phase = _phase(event)
    if phase is None:
        return False
    raw = raw_xml or b""
    if NS_BYTES in raw or b"<bandwidth" in raw:
        return True
    if host is None:
        return False
    if phase == "teardown":                 # whatever policy said at start: clean up
        return bool(host.rules or host.groups)
    guest = getattr(event, "guest", None)
    if any((rule.inbound or rule.outbound or rule.group) and rule.match.may_match(guest) for rule in host.rules):
        return True
    # unshaped ports are looked for at start begin only: one warning per port, refusal before the CPUs run
    return _checks_unshaped(event, host)


def _checks_unshaped(event, host):
    if (getattr(event, "op", None), getattr(event, "subop", None)) != ("start", "begin"):
        return False
    return getattr(host.settings, "unshaped", "allow") != "allow"


def handle(event, domain, host, log):
    """Apply or tear down the guest's shaping; raise NetvirtError after trying every port."""
    phase = _phase(event)
    if phase == "apply":
        if _checks_unshaped(event, host):
            from ..policy import resolve, unshaped
            unshaped.enforce(domain, resolve.resolve(domain, host), host.settings, log)
        return apply_guest(domain, host, log)
    if phase == "teardown":
        return teardown_guest(domain, log)
    return []


def apply_guest(domain, host, log, check=False, caps=None):
    """Apply every shaped port; returns [(port label, apply.Result)]."""
    from ..policy import resolve
    from ..errors import NetvirtError
    results, failures, work = [], [], []
    for port in resolve.resolve(domain, host):
        for note in port.notes:
            # a policy we cannot honour is a warning; facts about a port nobody asked us about are not
            loud = port.sources or "not applied" in note or "ignored" in note
            log.log(30 if loud else 10,  # WARNING / DEBUG: no logging import on the hot path
                    "%s: %s", port.label, note)
        if not port.shaped or port.ovs or port.device is None:
            continue
        if not port.dev:
            log.warning("%s: has a shaping policy but no tap device name; not shaped", port.label)
            continue
        work.append(port)
    if not work:
        return results
    from . import apply as tcapply, plan as tcplan           # only now: most guests have no shaped port
    from . import caps as capsmod
    caps = caps or capsmod.get(log)
    with tcapply.session() as batch:        # one socket and one ifb deletion for all the ports
        for port in work:
            try:
                result = tcapply.apply(tcplan.plan_port(port, caps), caps, check_mode=check, log=log,
                                       batch=batch)
            except NetvirtError as err:
                log.error("%s: shaping failed: %s", port.label, err,
                          extra=logfields.port(port.dev, port.mac, "shape", changed=0))
                failures.append(err)
                continue
            _log_result(log, port, result)
            results.append((port.label, result))
    if failures:
        first = failures[0]
        more = f" (and {len(failures) - 1} more port(s), see the log)" if len(failures) > 1 else ""
        raise NetvirtError(f"{first.message}{more}", first.where)
    return results


def _log_result(log, port, result):
    what = ", ".join(f"{d} {v}" for d, v in _summary(port).items())
    fields = logfields.port(port.dev, port.mac, "shape", changed=len(result.actions) if result.changed else 0)
    if result.changed:
        log.info("%s: shaped (%s): %d change(s)", port.label, what, len(result.actions), extra=fields)
    else:
        log.info("%s: shaping already in place (%s)", port.label, what, extra=fields)


def _summary(port):
    out = {}
    for direction in ("inbound", "outbound"):
        rate = getattr(port, direction)
        if rate is not None:
            out[direction] = " ".join(f"{k}={v}" for k, v in rate.as_text().items())
    if port.group is not None:
        out["group"] = port.group.name
    return out


def teardown_guest(domain, log, check=False):
    """Remove our objects for every non-OVS port with a tap name; never needs the policy."""
    from . import apply as tcapply, plan as tcplan
    from . import caps as capsmod
    from ..errors import NetvirtError
    results, failures = [], []
    from ..policy.ifaces import device_of
    # only our kinds of kernel device: a vhostuser/hostdev target name is no netdev here
    ifaces = [i for i in domain.interfaces
              if i.target_dev and i.virtualport_type != "openvswitch" and device_of(i.kind)]
    if not ifaces:
        return results
    caps = capsmod.get(log)
    with tcapply.session() as batch:        # one socket and one ifb deletion for all the ports
        for iface in ifaces:
            label = f"{domain.name} port {iface.index} ({iface.target_dev}, {iface.mac or 'no mac'})"
            try:
                result = tcapply.apply(tcplan.plan_absent(iface.target_dev, mac=iface.mac, label=label), caps,
                                       check_mode=check, log=log, batch=batch)
            except NetvirtError as err:
                log.error("%s: shaping teardown failed: %s", label, err,
                          extra=logfields.port(iface.target_dev, iface.mac, "teardown", changed=0))
                failures.append(err)
                continue
            if result.changed:
                log.info("%s: shaping removed (%d change(s))", label, len(result.actions),
                         extra=logfields.port(iface.target_dev, iface.mac, "teardown", changed=len(result.actions)))
            results.append((label, result))
    if failures:
        raise NetvirtError(failures[0].message, failures[0].where)
    return results


def reconcile_all(host, log):
    """Re-apply shaping of every running guest from status XML, then collect orphans.

    Errors are logged, never raised. Returns the number of guests re-applied.
    """
    from ..policy import domxml
    from ..errors import NetvirtError
    from ..guests import running
    done = 0
    for _driver, _name, path in running.status_files():
        try:
            domain = domxml.read_status_xml(path)
            apply_guest(domain, host, log)
            done += 1
        except NetvirtError as err:
            log.error("reconcile %s: %s", path, err)
        except Exception as err:  # pylint: disable=broad-except
            # one guest's bug must not stop the others
            log.error("reconcile %s: internal error: %r", path, err)
    try:
        _collect_orphans(log)
    except Exception as err:  # pylint: disable=broad-except
        log.error("orphan collection: internal error: %r", err)
    return done


def _our_ifbs_exist():
    """Does any device of this namespace carry one of our aliases? (sysfs: no netlink library needed)"""
    import glob
    for path in glob.glob("/sys/class/net/*/ifalias"):
        try:
            with open(path, "rb") as handle:
                if handle.read(8) == b"netvirt ":     # plan.ALIAS_PREFIX (plan.py is not imported here)
                    return True
        except OSError:
            continue
    return False


def _collect_orphans(log):
    if not _our_ifbs_exist():
        return                                  # the common case, decided without importing pyroute2
    from . import caps as capsmod, gc as shapegc
    from ..errors import NetvirtError
    # without libvirt's state directories a running guest's MAC cannot be
    # told: group members are then left alone
    from ..guests import running
    known = running.known()
    try:
        shapegc.collect(capsmod.get(log), in_use=running.has_mac if known else None, log=log)
    except NetvirtError as err:
        log.error("orphan collection: %s", err)
