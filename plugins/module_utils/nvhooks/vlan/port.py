# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One bridge_vlan call: a port's or a bridge's VLANs, present/absent/query.

The rules of the module live here: ``state=present`` adds (``exclusive``:
and removes the rest), ``state=absent`` removes the listed ids or, with none
listed, every id; without a port the bridge's switches (vlan_filtering,
default_pvid) and its own VLANs (``self``). ``run`` opens one netlink socket
for the call (kernel.netlink.ipr) and returns a change.Change based result.
pyroute2 is imported lazily (by kernel/).
"""

from . import apply as vlanapply
from ..change import Change, Failed
from ..errors import NetvirtError
from ..kernel import netlink
from ..policy import vlanset

DIFF_KEYS = ("vlan_filtering", "default_pvid", "pvid", "untagged", "tagged")
FILTERING_OFF = ("bridge {bridge} does not filter VLANs (vlan_filtering off): the kernel keeps the port's "
                 "VLANs but does not enforce them")


def diff_text(view):
    """Diff text of a VLAN view: one key a line, empty sets as 'none'."""
    out = []
    for key in DIFF_KEYS:
        if key in view:
            value = view[key]
            out.append(f"{key}: {'none' if value in (None, '') else value}")
    return "\n".join(out) + "\n"


def ids(params):
    """(pvid or None, [vids]) from the module arguments, validated."""
    vids = vlanset.parse_vids(params["vids"], "vids")
    pvid = None
    if params["pvid"] is not None:
        (pvid,) = vlanset.parse_vids(params["pvid"], "pvid")
    if pvid is not None and pvid in vids:
        raise NetvirtError(f"VLAN {pvid} is both the pvid and in vids", "pvid")
    return pvid, vids


def _change(step, header):
    return Change(dict(step["before"]), dict(step["after"]), step["actions"], step["changed"], header=header,
                  text=diff_text)


def _set(setter, nl, name, params, pvid, vids, check, **kw):
    """set_port/set_self with the present/absent rules."""
    if params["state"] == "present":
        return setter(nl, name, vlanapply.wish(pvid, params["untagged"], vids), exclusive=params["exclusive"],
                      check=check, netns=params["netns"], **kw)
    remove = set(vids) | ({pvid} if pvid else set())
    return setter(nl, name, {}, exclusive=not remove, remove=remove, check=check, netns=params["netns"], **kw)


def port_change(nl, params, pvid, vids, check=False):
    """(Change, set_port's result) for ``params["port"]``."""
    if params["state"] == "present" and pvid is None and not vids:
        raise NetvirtError("state=present needs pvid or vids", f"port {params['port']}")
    step = _set(vlanapply.set_port, nl, params["port"], params, pvid, vids, check, bridge=params["bridge"])
    return _change(step, params["port"]), step


def bridge_change(nl, params, pvid, vids, check=False):
    """Change of the bridge itself: its switches, then its own VLANs."""
    bridge, state, found = params["bridge"], params["state"], None
    if state == "present" and (params["vlan_filtering"] is not None or params["default_pvid"] is not None):
        if params["default_pvid"]:
            vlanset.parse_vids(params["default_pvid"], "default_pvid")
        found = _change(vlanapply.set_bridge(nl, bridge, vlan_filtering=params["vlan_filtering"],
                                             default_pvid=params["default_pvid"], check=check,
                                             netns=params["netns"]), bridge)
    if pvid is not None or vids or state == "absent":
        own = _change(_set(vlanapply.set_self, nl, bridge, params, pvid, vids, check), bridge)
        found = own if found is None else found.merge(own)
    if found is None:
        raise NetvirtError("nothing to do: give vlan_filtering, default_pvid, pvid or vids", f"bridge {bridge}")
    return found


def socket(netns):
    """The call's netlink socket, a context manager (closed at the end)."""
    return netlink.ipr(netns)


def run(params, check=False, diff=False):
    """The bridge_vlan module's call: (result, warnings); errors are change.Failed.

    ``params``: the module's arguments (port, bridge, netns, pvid, untagged,
    vids, exclusive, state, vlan_filtering, default_pvid).
    """
    warnings = []
    try:
        pvid, vids = ids(params)
        with socket(params["netns"]) as nl:
            if params["state"] == "query":
                return dict(vlanapply.query(nl, port=params["port"], bridge=params["bridge"],
                                            netns=params["netns"]), changed=False), warnings
            if params["port"]:
                change, step = port_change(nl, params, pvid, vids, check)
                fields = {"port": step["port"], "bridge": step["bridge"], "before": change.before,
                          "after": change.after, "actions": change.actions, "vlan_filtering": step["vlan_filtering"]}
                if not step["vlan_filtering"]:
                    warnings.append(FILTERING_OFF.format(bridge=step["bridge"]))
            else:
                change = bridge_change(nl, params, pvid, vids, check)
                fields = {"bridge": params["bridge"], "before": change.before, "after": change.after,
                          "actions": change.actions}
    except NetvirtError as err:
        raise Failed.wrap(err) from None
    return change.result(diff=diff and change.changed, **fields), warnings
