# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`netvirt-hooks` text output: short, aligned, exact (units as configured)."""


def render(command, data):
    if command in ("agent", "hold", "release"):
        from . import agentcmd
        return agentcmd.text(command, data)
    if command == "status" and (data.get("holds") or data.get("hold")):
        from . import agentcmd
        return "\n".join([_status(data)] + agentcmd.hold_lines(data))
    return {"status": _status, "explain": _explain, "gc": _gc, "metrics": _metrics}.get(command, _change)(data)


def _metrics(data):
    """The Prometheus exposition itself (errors also go to stderr by the caller's exit code)."""
    if data.get("textfile"):
        return f"metrics written to {data['textfile']}" + "".join(f"\nerror: {e}" for e in data["errors"])
    from ..metrics import export
    # errors as exposition comments: the output stays valid for a scraper
    notes = "".join(f"# error: {' '.join(str(e).split())}\n" for e in data["errors"])
    return (notes + export.exposition(data).decode("utf-8")).rstrip("\n")


def _rate(text):
    keys = ("average", "peak", "burst", "floor")
    return " ".join(f"{k} {text[k]}" for k in keys if k in text)


def _vlan(text):
    parts = []
    if text.get("pvid"):
        parts.append(f"pvid {text['pvid']}{'' if text.get('untagged', True) else ' (tagged)'}")
    if text.get("tagged"):
        parts.append(f"tagged {text['tagged']}")
    if text.get("keep_default"):
        parts.append("keeps default VLAN")
    return ", ".join(parts)


def _state(probe):
    state = probe.get("state", "?")
    why = probe.get("why")
    return f"{state}: {why}" if why else state


def _status(data):
    if "guests" in data:
        return _overview(data)
    lines = [f"guest {data['guest']} ({data.get('state') or 'running'}) policy {data['policy']}"]
    for port in data["ports"]:
        lines.extend(_port_lines(port, detail=True))
    lines.append("hooks (in run order):")
    for event, entries in data["hooks"].items():
        names = [e.get("what") or e.get("name") or "?" for e in entries]
        lines.append(f"  {event:<16} {' > '.join(names) if names else '(nothing)'}")
    return "\n".join(lines)


def _port_lines(port, detail):
    head = f"port {port['index']} {port.get('dev') or '-'} {port.get('mac') or '-'}"
    if port.get("bridge"):
        head += f" bridge {port['bridge']}"
    lines = [head]
    for direction in ("inbound", "outbound"):
        if direction in port:
            lines.append(f"  {direction:<9}{_rate(port[direction])}  [{port[direction]['source']}]")
    if "group" in port:
        lines.append(f"  {'group':<9}{port['group']['name']}  [{port['group']['source']}]")
    if "vlan" in port:
        lines.append(f"  {'vlan':<9}{_vlan(port['vlan'])}  [{port['vlan']['source']}]")
    if "isolated" in port:
        lines.append(f"  {'isolated':<9}{'yes' if port['isolated']['value'] else 'no'}  [{port['isolated']['source']}]")
    lines.append(f"  {'tc':<9}{_state(port['shaping'])}")
    if "unshaped" in port:
        why = port["unshaped"]["exempt"]
        lines.append(f"  {'unshaped':<9}no bandwidth limit ({f'exempt: {why}' if why else 'settings.unshaped is ' + port['unshaped']['setting']})")
    if detail:
        for obj in port["shaping"].get("objects", []):
            lines.append(f"    {obj}")
        for diff in port["shaping"].get("diff", []):
            lines.append(f"    ! {diff}")
    lines.append(f"  {'vlans':<9}{_state(port['vlan_state'])}")
    if detail:
        for diff in port["vlan_state"].get("diff", []):
            lines.append(f"    ! {diff}")
    if "isolation_state" in port:
        lines.append(f"  {'isolation':<9} {_state(port['isolation_state'])}")
        for diff in port["isolation_state"].get("diff", []):
            lines.append(f"    ! {diff}")
    for note in port.get("notes", []):
        lines.append(f"  note: {note}")
    lines.extend(_owner_lines(port))
    return lines


def _overview(data):
    if not data["guests"]:
        return f"no running guests (policy {data['policy']})"
    lines = [f"policy {data['policy']}"]
    for guest in data["guests"]:
        if "error" in guest:
            error = guest["error"]
            named = error.startswith(f"{guest['guest']}:")     # policy errors name the guest already
            lines.append(error if named else f"{guest['guest']}: {error}")
            continue
        if not guest["ports"]:
            lines.append(f"{guest['guest']}: no interfaces")
        for port in guest["ports"]:
            shaped = []
            for direction in ("inbound", "outbound"):
                if direction in port:
                    shaped.append(f"{direction[:3]} {port[direction].get('average') or '-'}")
            if "group" in port:
                shaped.append(f"group {port['group']['name']}")
            if "vlan" in port:
                shaped.append(f"vlan {_vlan(port['vlan'])}")
            if port.get("isolated", {}).get("value"):
                shaped.append("isolated")
            lines.append(f"{guest['guest']} {port['index']} {port.get('dev') or '-'}: "
                         f"{', '.join(shaped) or 'no policy'}; tc {port['shaping']['state']}, "
                         f"vlans {port['vlan_state']['state']}")
    unshaped = data.get("unshaped") or {}
    if unshaped.get("ports") and unshaped.get("setting") != "allow":
        lines.append(f"unshaped ports (settings.unshaped is {unshaped['setting']}):")
        lines.extend(f"  {text}" for text in unshaped["ports"])
    return "\n".join(lines)


def _explain(data):
    lines = [f"guest {data['guest']} policy {data['host_policy']}",
             f"precedence: {' > '.join(data['precedence'])}"]
    for port in data["ports"]:
        lines.append(f"port {port['index']} {port.get('dev') or '-'} {port.get('mac') or '-'} "
                     f"({port['type']}{', bridge ' + port['bridge'] if port.get('bridge') else ''})")
        if not port["values"]:
            lines.append("  (no policy)")
        width = max((len(k) for k in port["values"]), default=0)
        for key, value in port["values"].items():
            lines.append(f"  {key:<{width}}  {value['value']!s:<12} {value['source']}")
        for note in port["notes"]:
            lines.append(f"  note: {note}")
        lines.extend(_owner_lines(port))
    return "\n".join(lines)


def _owner_lines(port):
    """Who owns the port's qdiscs and VLANs (docs/vlan.md "Who owns a port"), and its network."""
    lines = []
    if port.get("network"):
        lines.append(f"  network: {port['network']} ({port.get('device') or 'no kernel device'})")
    owners = port.get("owners") or {}
    if any(owners.values()):
        lines.append("  owners: " + ", ".join(f"{k} {v or 'nobody'}" for k, v in sorted(owners.items())))
    return lines


def _change(data):
    verb = "would change" if data.get("check") else "changed"
    lines = []
    for change in data.get("changes", []):
        lines.append(f"{verb}: {change}")
    for error in data.get("errors", []):
        lines.append(f"error: {error}")
    if not lines:
        lines.append(f"{data['action']} {data['guest']}: nothing to do")
    return "\n".join(lines)


def _gc(data):
    verb = "orphan" if data.get("check") else "removed"
    lines = [f"{verb}: {text}" for text in data["orphans"]]
    logs = data.get("logs")
    if logs is not None:
        lines += [f"{'old log' if data.get('check') else 'removed log'}: {text}" for text in logs["removed"]]
        if logs["age_skipped"]:
            lines.append(f"logs by age: skipped, {logs['age_skipped']}")
        if logs["removed"]:
            lines.append(f"logs: {len(logs['removed'])} of {logs['files']} files "
                         f"{'to remove' if data.get('check') else 'removed'} ({logs['guests']} guests with logs)")
    return "\n".join(lines) or "gc: no orphans"
