# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`netvirt-hooks` commands: gather data as plain dicts (rendered by cli_text)."""

import os

from . import probe as cli_probe
from .. import paths
from .exits import EXIT_BAD_POLICY, EXIT_ENVIRONMENT, EXIT_NOT_RUNNING, EXIT_OK, EXIT_PROBLEM, CliError
from ..errors import NetvirtError, PolicyError, XmlError

# The events an operator asks about, in the order libvirt runs them.
STATUS_EVENTS = ("prepare/begin", "start/begin", "started/begin", "reconnect/begin",
                 "migrate/begin", "restore/begin", "stopped/end", "release/end")


def run(args):
    from . import agentcmd
    done = agentcmd.run(args)
    if done is not None:
        return done
    host = load_host(getattr(args, "policy", None))
    if args.command == "status":
        return status(args.guest, host) if args.guest else overview(host)
    if args.command == "explain":
        return explain(args.guest, host)
    if args.command == "gc":
        return collect(args.check, getattr(args, "only", None))
    if args.command == "metrics":
        return metrics(host, getattr(args, "textfile", None))
    return change(args.command, args.guest, host, args.check)


def load_host(path):
    from ..policy import model as policy
    try:
        return policy.load_host_policy(path or paths.policy_file())
    except NetvirtError as err:
        raise CliError(f"host policy: {err}", EXIT_BAD_POLICY) from None


def load_guest(guest):
    """The running guest's status XML (qemu or lxc), parsed."""
    if "/" in guest or guest in (".", "..") or not guest:
        raise CliError(f"{guest!r} is not a guest name", 2)
    from ..guests import running
    found = running.find(guest)
    if found is None:
        path = os.path.join(paths.qemu_status_dir(), f"{guest}.xml")
        raise CliError(f"guest {guest!r} is not running here (no {path})", EXIT_NOT_RUNNING)
    from ..policy import domxml
    try:
        return found[0], domxml.read_status_xml(found[1])
    except XmlError as err:
        raise CliError(str(err), EXIT_BAD_POLICY) from None


def resolve_ports(domain, host):
    from ..policy import resolve
    try:
        return resolve.resolve(domain, host)
    except PolicyError as err:
        raise CliError(str(err), EXIT_BAD_POLICY) from None


def port_summary(port):
    out = {"index": port.index, "dev": port.dev, "mac": port.mac, "type": port.type, "bridge": port.bridge}
    for direction in ("inbound", "outbound"):
        rate = getattr(port, direction)
        if rate:
            out[direction] = dict(rate.as_text(), source=port.sources.get(direction))
    if port.group:
        out["group"] = {"name": port.group.name, "source": port.sources.get("group")}
    if port.vlan:
        out["vlan"] = dict(port.vlan.as_text(), source=port.sources.get("vlan"))
    if port.isolated is not None:
        out["isolated"] = {"value": port.isolated, "source": port.sources.get("isolated")}
    if port.notes:
        out["notes"] = list(port.notes)
    for key in ("device", "network", "native_vlan", "owners"):     # interface kinds (issue #12)
        if getattr(port, key, None):
            out[key] = getattr(port, key)
    return out


def mark_unshaped(domain, ports, rows, host, found):
    """Rows of unshaped ports get ``unshaped`` (setting, exemption); ``found`` gets the others' labels."""
    from ..policy import unshaped
    for port, why in unshaped.offenders(domain, ports, host.settings):
        rows[ports.index(port)]["unshaped"] = {"setting": host.settings.unshaped, "exempt": why}
        if why is None:
            found.append(unshaped.message(port))


def overview(host):
    guests, code, found = [], EXIT_OK, []
    from ..guests import running
    for name in running.names():
        entry = {"guest": name, "ports": []}
        try:
            _driver, domain = load_guest(name)
            ports = resolve_ports(domain, host)
        except CliError as err:        # that guest alone: the others are still shown
            entry["error"], code = str(err), max(code, err.code)
            guests.append(entry)
            continue
        for port in ports:
            row = port_summary(port)
            row["shaping"] = cli_probe.shaping(domain, port, host, counters=False)
            row["vlan_state"] = cli_probe.vlan(domain, port, host)
            if row["shaping"].get("state") == "drift" or row["vlan_state"].get("state") == "drift":
                code = EXIT_PROBLEM
            entry["ports"].append(row)
        mark_unshaped(domain, ports, entry["ports"], host, found)
        guests.append(entry)
    from .. import holds
    return {"policy": host.source, "guests": guests, "holds": holds.listing(),
            "unshaped": {"setting": host.settings.unshaped, "ports": found}}, code


def status(guest, host):
    driver, domain = load_guest(guest)
    ports, code = [], EXIT_OK
    for port in resolve_ports(domain, host):
        row = port_summary(port)
        row["shaping"] = cli_probe.shaping(domain, port, host, counters=True)
        row["vlan_state"] = cli_probe.vlan(domain, port, host)
        row["isolation_state"] = cli_probe.isolation(port)
        if "drift" in (row["shaping"].get("state"), row["vlan_state"].get("state"), row["isolation_state"]["state"]):
            code = EXIT_PROBLEM
        ports.append(row)
    found = []
    mark_unshaped(domain, resolve_ports(domain, host), ports, host, found)
    hooks = {name: cli_probe.hook_order(guest, name, driver) for name in STATUS_EVENTS}
    from .. import holds
    return {"guest": domain.name, "uuid": domain.uuid, "state": domain.state, "policy": host.source,
            "hold": holds.why_held(domain.name),
            "settings": {"vlan_failure": host.settings.vlan_failure,
                         "native_bandwidth": host.settings.native_bandwidth,
                         "unshaped": host.settings.unshaped},
            "ports": ports, "hooks": hooks}, code


def explain(guest, host):
    from ..policy import resolve
    _driver, domain = load_guest(guest)
    try:
        return resolve.explain(domain, host), EXIT_OK
    except PolicyError as err:
        raise CliError(str(err), EXIT_BAD_POLICY) from None


def collect(check, only=None):
    """Shaping orphans and per-script logs of guests gone (dispatch.loggc); ``only``: logs | shaping."""
    found, logs = [], None
    if only != "shaping":
        from ..dispatch import conf as confmod, handlers, loggc
        try:
            logs = loggc.run(confmod.load_dispatcher(), handlers.names(), check_mode=check).as_dict()
        except NetvirtError as err:
            raise CliError(f"gc: logs: {err}", EXIT_PROBLEM) from None
    if only != "logs":
        from ..guests import running
        from ..shaping import caps, gc as shapegc
        try:
            found = shapegc.collect(caps.get(), in_use=running.has_mac, check_mode=check)
        except NetvirtError as err:
            raise CliError(f"gc: {err}", EXIT_PROBLEM) from None
    changed = bool(found or (logs and logs["removed"]))
    return {"action": "gc", "check": check, "changed": changed, "orphans": found, "logs": logs}, \
        EXIT_PROBLEM if check and changed else EXIT_OK


def change(action, guest, host, check):
    _driver, domain = load_guest(guest)
    resolve_ports(domain, host)  # bad policy: exit 4 before touching anything
    from ..dispatch import hooklog
    log = hooklog.stderr_logger("netvirt-hooks")
    result = cli_probe.run_handlers(action, domain, host, log, check)
    code = EXIT_OK
    if result.get("errors"):
        code = result.get("exit", EXIT_PROBLEM)
    elif check and result.get("changed"):
        code = EXIT_PROBLEM
    return dict(result, guest=domain.name, action=action, check=check), code


def metrics(host, textfile=None):
    """The metrics snapshot (docs/metrics.md); with ``textfile``, also written there atomically."""
    import importlib.util
    if importlib.util.find_spec("prometheus_client") is None:
        raise CliError("missing Python library prometheus_client: install python3-prometheus-client "
                       "(the hooks role does)", EXIT_ENVIRONMENT)
    from ..metrics import collect as metrics_collect, export as metrics_export
    snap = metrics_collect.snapshot(host)
    if textfile:
        try:
            metrics_export.write_textfile(textfile, lambda: snap)
        except OSError as err:
            raise CliError(f"cannot write {textfile}: {err}", EXIT_PROBLEM) from None
        snap["textfile"] = textfile
    return snap, EXIT_PROBLEM if snap["errors"] else EXIT_OK
