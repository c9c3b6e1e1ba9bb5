# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`netvirt-hooks` adapters onto the shaping, VLAN and dispatcher cores.

Each returns a plain dict with a ``state`` the operator can act on:
``in sync``, ``drift`` (live kernel differs from policy), ``none`` (no
policy for this port), ``skipped`` (policy cannot apply here, with why), or
``unavailable`` (this part of the core or the kernel cannot answer).
"""

import importlib

from ..errors import KernelError, NetvirtError


def _core(name):
    try:
        return importlib.import_module(name, __package__)
    except ImportError as err:
        return err


def _unavailable(what, err):
    return {"state": "unavailable", "why": f"{what}: {err}"}


def shaping(domain, port, host, counters):
    """Live tc state of a port vs its plan (tcapply.apply in check mode)."""
    if getattr(port, "device", "tap") is None:      # vhostuser, hostdev, user...: no kernel device here
        from ..policy import ifaces
        return {"state": "skipped", "why": ifaces.not_a_device(port.type)}
    if port.ovs:
        return {"state": "skipped", "why": "Open vSwitch port: shaping is left to OVS, never tc"} \
            if port.shaped or port.native else {"state": "none"}
    if not port.dev:
        return {"state": "skipped", "why": "port has no tap device"} if port.shaped else {"state": "none"}
    mods = [_core(name) for name in ("..shaping.caps", "..shaping.plan", "..shaping.apply")]
    for mod in mods:
        if isinstance(mod, ImportError):
            return _unavailable("shaping core", mod)
    caps, tcplan, tcapply = mods
    try:
        kernel = caps.get()
        plan = tcplan.plan_port(port, kernel) if port.shaped else tcplan.plan_port_absent(port)
        result = tcapply.apply(plan, kernel, check_mode=True)
        out = {"state": "drift" if result.changed else ("in sync" if port.shaped else "none")}
        if result.changed:
            out["diff"] = [action.text() for action in result.actions]
            if not port.shaped:
                out["state"], out["why"] = "drift", "tc state of ours left on a port without policy"
        if counters and port.shaped:
            out["objects"] = _tc_lines(tcapply.query(port.dev, caps=kernel))
    except KernelError as err:
        return {"state": "error", "why": str(err)}
    except NetvirtError as err:
        return {"state": "error", "why": str(err)}
    return out


def _tc_lines(query):
    """Each of our qdiscs/classes with its counters, one line each."""
    lines = []
    for dev, info in query["devices"].items():
        for item in info["qdiscs"] + info["classes"]:
            text = item["text"]
            if "bytes" in item:
                text += (f"  sent {item['bytes']}B {item['packets']}p drops {item['drops']}"
                         f" overlimits {item['overlimits']}")
            lines.append(text)
        for item in info["filters"]:
            if not item.get("foreign"):
                lines.append(item["text"])
    return lines


def vlan(domain, port, host):
    """Live VLANs of a bridge port vs its policy (vlanapply.set_port, check mode)."""
    if port.vlan is None:
        return {"state": "none"}
    if port.ovs or port.type not in ("bridge", "network"):
        return {"state": "skipped", "why": "not a Linux bridge port"}
    if not port.dev or not port.bridge:
        return {"state": "skipped", "why": "no tap device or bridge in the status XML"}
    vlanhook = _core("..vlan.hook")
    if isinstance(vlanhook, ImportError):
        return _unavailable("VLAN core", vlanhook)
    try:
        result = vlanhook.port_check(port)         # the hook's own per-port step, in check mode
    except KernelError as err:
        # The guest runs anyway only when the host said warn: say so plainly.
        effect = ("guest runs unfiltered in the bridge's default VLAN (settings.vlan_failure: warn)"
                  if host.settings.vlan_failure == "warn" else
                  "a start would be refused (settings.vlan_failure: abort)")
        return {"state": "not applied", "why": f"{err.message}; {effect}",
                "vlan_failure": host.settings.vlan_failure}
    except NetvirtError as err:
        return {"state": "error", "why": str(err)}
    out = {"state": "drift" if result["changed"] else "in sync", "live": result["before"]}
    if result["changed"]:
        out["diff"] = list(result["actions"])
    return out


def isolation(port):
    """Live isolated flag of a bridge port vs its policy (the hook's own step, check mode)."""
    mods = [_core(name) for name in ("..vlan.isolation", "..vlan.hook")]
    for mod in mods:
        if isinstance(mod, ImportError):
            return _unavailable("isolation core", mod)
    if not mods[0].candidates([port]):
        return {"state": "none"}
    try:
        result = mods[1].isolation_check(port)
    except NetvirtError as err:
        return {"state": "error", "why": str(err)}
    out = {"state": "drift" if result["changed"] else "in sync", "live": result["before"]["isolated"]}
    if result["changed"]:
        out["diff"] = list(result["actions"])
    return out


def hook_order(guest, name, driver="qemu"):
    """What runs for <driver>/<name>, in the dispatcher's one total order (scripts.plan)."""
    scripts = _core("..dispatch.scripts")
    if isinstance(scripts, ImportError):
        return [{"what": f"(dispatcher not installed: {scripts})"}]
    from ..dispatch import conf
    from .. import paths
    from ..dispatch.event import Event
    op, subop = name.split("/")
    event = Event(driver, [guest, op, subop, "-"])
    try:
        steps = scripts.plan(event, conf.load_dispatcher(), paths.hooks_dir(), paths.originals_dir())
        steps = [step.as_dict() for step in steps] + scripts.libvirt_tail(event, paths.hooks_dir())
    except NetvirtError as err:
        return [{"what": f"(cannot list: {err})"}]
    for step in steps:
        label = step["name"] if step["kind"] != "script" else f"{step['source']}{'' if step['source'].endswith('/') else '/'}{step['name']}"
        if step["kind"] == "builtin":
            label = step["name"]
        elif step["kind"] == "libvirt":
            label = f"({step['source'].split()[0]}{step['name']})"
        if not step["status"].startswith("runs") and step["kind"] != "libvirt":
            label += f" [{step['status'].split(':')[0]}]"
        step["what"] = label
    return steps


def run_handlers(action, domain, host, log, check):
    """apply = the built-in handlers as at `started`; teardown = as at `release`.

    VLANs first on apply (a port must not pass traffic before it is in its
    VLAN), shaping first on teardown. A failing part does not stop the other.
    """
    changes, errors = [], []
    parts = (_vlan_part, _shaping_part) if action == "apply" else (_shaping_part, _vlan_part)
    for part in parts:
        try:
            changes.extend(part(action, domain, host, log, check))
        except ImportError as err:
            return {"changed": False, "changes": [], "errors": [str(err)], "exit": 5}
        except NetvirtError as err:
            errors.append(str(err))
    return {"changed": bool(changes), "changes": changes, "errors": errors}


def _vlan_part(action, domain, host, log, check):
    from ..vlan import hook as vlanhook
    if action == "apply":
        done = vlanhook.apply_guest(domain, host, log, check=check)
    else:
        done = vlanhook.teardown_guest(domain, host, log, check=check)
    return [_change_text(c) for c in done or []]


def _shaping_part(action, domain, host, log, check):
    from ..shaping import hook as shapehook
    if action == "apply":
        done = shapehook.apply_guest(domain, host, log, check=check)
    else:
        done = shapehook.teardown_guest(domain, log, check=check)
    return [f"{label}: {a.text()}" for label, result in done or [] for a in result.actions]


def _change_text(change):
    """The handlers' result dicts as one line each."""
    if isinstance(change, str):
        return change
    if "actions" in change:
        return f"{change.get('port')}: VLANs {'; '.join(change['actions'])}"
    if "text" in change:
        return change["text"]
    return ", ".join(f"{k} {v}" for k, v in sorted(change.items()))
