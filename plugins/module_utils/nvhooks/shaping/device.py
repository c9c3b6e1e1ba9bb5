# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One tc_shape call: shape one device, remove our shaping, or query it.

Module arguments -> plan.Plan (validated by the core: errors name the device
and the field), applied by shaping/apply.py, returned as a change.Change
based result. The query view names, per HTB class, the guest direction it
shapes and the group of a group's ifb, read from the ifb's alias
(plan.ALIAS_PREFIX + ``port <dev> outbound`` / ``group <name> <direction>``).
"""

from . import apply as tcapply, caps as nvcaps, plan as tcplan
from ..change import Change, Failed, line_text
from ..errors import NetvirtError
from ..policy import model as policy, units


def where(params):
    """How errors and diff headers name the device."""
    return f"device {params['device']}" + (f" (netns {params['netns']})" if params["netns"] else "")


def _given(data):
    return {k: v for k, v in (data or {}).items() if v is not None}


def build_plan(params, caps, label=None):
    """Module arguments -> plan.Plan, validated by the core (errors name device and field)."""
    label = label or where(params)
    if params["state"] == "absent":
        return tcplan.plan_absent(params["device"], mac=params["mac"], netns=params["netns"], label=label)
    rates = {}
    for direction in ("inbound", "outbound"):
        if params[direction] is not None:
            rates[direction] = policy.parse_rate(_given(params[direction]), f"{label}: {direction}")
    group = None
    if params["group"] is not None:
        spec = params["group"]
        sides = {d: _given(spec[d]) for d in ("inbound", "outbound") if spec.get(d) is not None}
        group = policy.parse_group(spec["name"], sides, f"{label}: group")
    return tcplan.plan_device(params["device"], caps, inbound=rates.get("inbound"), outbound=rates.get("outbound"),
                              group=group, mac=params["mac"], netns=params["netns"], label=label)


def alias_role(alias):
    """(group or None, direction or None) an ifb's alias names; (None, None) for an alias not of ours.

    ``netvirt port vnet3 outbound`` -> (None, "outbound"); ``netvirt group web
    inbound`` -> ("web", "inbound"). Inverse of plan.port_ifb_alias/group_ifb_alias.
    """
    if not alias or not alias.startswith(tcplan.ALIAS_PREFIX):
        return None, None
    words = alias[len(tcplan.ALIAS_PREFIX):].split()
    if not words:
        return None, None
    group = " ".join(words[1:-1]) if words[:1] == ["group"] else None
    return group, words[-1]


def class_view(dev, cls, direction, group):
    """One HTB class of the query, with readable rates and its counters."""
    classid = (tcplan.handle_text(cls["id"]) if isinstance(cls.get("id"), int)
               else cls.get("text", "").split()[2])
    return {"device": dev, "classid": classid, "direction": direction, "group": group,
            "rate": units.format_rate(cls["rate"] * 8), "ceil": units.format_rate(cls["ceil"] * 8),
            "burst": units.format_size(cls["burst"]),
            "bytes": cls.get("bytes", 0), "packets": cls.get("packets", 0),
            "drops": cls.get("drops", 0), "overlimits": cls.get("overlimits", 0)}


def query_view(device, live):
    """present/classes/devices of a tcapply.query answer for ``device``."""
    classes = []
    for dev, info in sorted(live["devices"].items()):
        group, direction = None, "inbound"
        if dev != device:
            group, direction = alias_role(info.get("alias"))
            direction = direction or "outbound"
        classes += [class_view(dev, cls, direction, group) for cls in info["classes"]]
    return {"present": bool(classes or len(live["devices"]) > 1), "classes": classes, "devices": live["devices"]}


def shape_text(per_dev):
    """Diff text of {device: [lines]}: every device's lines, devices sorted."""
    return "".join(line_text(per_dev[dev]) for dev in sorted(per_dev))


def shape(params, caps, check=False):
    """(Change, plan, warnings) of state present/absent."""
    label = where(params)
    planned = build_plan(params, caps, label)
    done = tcapply.apply(planned, caps, check_mode=check)
    change = Change(done.before, done.after, [action.text() for action in done.actions], done.changed,
                    header=f"{label} (live)", after_header=f"{label} (planned)", text=shape_text)
    return change, planned, list(done.warnings)


def run(params, check=False, diff=False):
    """The tc_shape module's call: (result, warnings); errors are change.Failed (with device, netns).

    ``params``: the module's arguments (device, netns, state, inbound,
    outbound, group, mac).
    """
    ident = {"device": params["device"], "netns": params["netns"]}
    try:
        caps = nvcaps.get()
        if params["state"] == "query":
            live = tcapply.query(params["device"], netns=params["netns"], caps=caps)
            return Change().result(**ident, **query_view(params["device"], live)), []
        change, planned, warnings = shape(params, caps, check)
    except NetvirtError as err:
        raise Failed.wrap(err, **ident) from None
    return change.result(diff=diff, **ident, changes=change.actions, plan=planned.describe(),
                         shaping=change.after), warnings
