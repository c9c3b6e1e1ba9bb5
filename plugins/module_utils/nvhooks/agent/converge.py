# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bring a running guest's ports to policy with the hook's own functions.

No logic of its own: VLANs through ``vlan.hook.apply_guest``, shaping through
``shaping.hook.apply_guest`` (VLANs first, as in the hook), orphans through
``shaping.gc.collect``. What it adds is the agent's view: which ports it saw
shaped last time (so a port whose policy went away is torn down), and the
changes as one line of text.
"""

import logging

from ..errors import NetvirtError


class _Quiet(logging.Handler):
    """Handlers log every port at INFO; the agent says only what changed. Warnings pass on."""

    def __init__(self, parent):
        super().__init__(logging.WARNING)
        self.parent = parent

    def emit(self, record):
        self.parent.log(record.levelno, "%s", record.getMessage())


def quiet_logger(parent):
    log = logging.Logger(f"{parent.name}.handlers")   # not registered: one per agent
    log.addHandler(_Quiet(parent))
    log.setLevel(logging.WARNING)
    return log


def shaped_devs(domain, host):
    """Tap names of the guest's ports our shaping owns under ``host``."""
    from ..policy import resolve
    return {p.dev for p in resolve.resolve(domain, host) if p.shaped and p.dev and not p.ovs}


def guest(domain, host, log, previous=frozenset()):
    """Apply the guest's VLANs and shaping; returns ([change text], shaped devs, [error text]).

    ``previous``: the devs shaped at the last converge; one no longer shaped
    (its policy was removed, e.g. by ``virsh metadata``) is torn down.
    """
    from ..vlan import hook as vlanhook
    from ..shaping import hook as shapehook
    quiet = quiet_logger(log)
    changes, errors = [], []
    try:
        for change in vlanhook.apply_guest(domain, host, quiet) or []:
            changes.append(f"{change.get('port')}: VLANs {'; '.join(change.get('actions', []))}")
    except NetvirtError as err:
        errors.append(f"VLANs: {err}")
    try:
        for label, result in shapehook.apply_guest(domain, host, quiet) or []:
            if result.changed:
                changes.append(f"{label}: {', '.join(a.text() for a in result.actions)}")
    except NetvirtError as err:
        errors.append(f"shaping: {err}")
    try:
        now = shaped_devs(domain, host)
    except NetvirtError as err:
        errors.append(str(err))
        return changes, set(previous), errors
    gone = [i for i in domain.interfaces if i.target_dev in set(previous) - now]
    if gone:
        changes.extend(_unshape(domain, gone, quiet, errors))
    return changes, now, errors


def _unshape(domain, ifaces, log, errors):
    from ..shaping import apply as tcapply, caps as capsmod, plan as tcplan
    out = []
    with tcapply.session() as batch:
        for iface in ifaces:
            label = f"{domain.name} port {iface.index} ({iface.target_dev}, {iface.mac or 'no mac'})"
            try:
                result = tcapply.apply(tcplan.plan_absent(iface.target_dev, mac=iface.mac, label=label),
                                       capsmod.get(log), log=log, batch=batch)
            except NetvirtError as err:
                errors.append(f"{label}: shaping teardown: {err}")
                continue
            if result.changed:
                out.append(f"{label}: no policy any more: {', '.join(a.text() for a in result.actions)}")
    return out


def collect(log, in_use):
    """Orphans (a detached NIC's ifb and group membership); returns [text]."""
    from ..shaping import caps as capsmod, gc as shapegc
    try:
        return shapegc.collect(capsmod.get(log), in_use=in_use, log=None)
    except NetvirtError as err:
        log.error("orphan collection: %s", err)
        return []
