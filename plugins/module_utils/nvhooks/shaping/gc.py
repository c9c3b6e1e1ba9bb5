# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Orphan collection: shaping objects of ours that no port uses any more.

They are left when a guest stops while our hook is not installed (hooks
removed, or a hook that failed) or when a process dies in the middle of a
batch. ``hook.reconcile_all`` collects them at daemon start and
reload; ``netvirt-hooks gc`` on demand. Each decision is made again under
the lock that every change to that object takes, so a guest starting at the
same moment keeps what it has just created.

Orphans:

* ifbs parked for deletion by a batch that never ended (session.py);
* port ifbs (alias ``netvirt port <tap> outbound``) that no redirect on
  <tap> uses: the tap is gone, or it no longer sends to that ifb;
* group ifbs without members;
* group members whose MAC no running guest has, when the caller can tell
  (``in_use``); their group ifb goes with the last member.
"""

import gc

from .. import locks
from ..kernel import netlink
from . import apply as tcapply, plan as tcplan, session as tcsession
from .live import Live, member_minors

_PORT = f"{tcplan.ALIAS_PREFIX}port "
_GROUP = f"{tcplan.ALIAS_PREFIX}group "
GC_EVERY = 16       # ifbs read between two runs of the cyclic GC


def collect(caps, netns=None, in_use=None, check_mode=False, log=None, lock_timeout=30.0):
    """Remove orphans (check mode: only find them); returns [text] of each, for the log and the CLI.

    ``in_use(mac)``: does a running guest have this MAC? None: group
    members are not judged (a module or a namespace without libvirt).
    """
    found = []
    with tcapply.session(netns) as batch:
        members = {}                         # mac -> a group it is in (its teardown covers every group)
        for count, (index, name, _kind, alias) in enumerate(netlink.ifb_links(batch.sock), 1):
            if count % GC_EVERY == 0:
                # each read leaves pyroute2 messages that refer to themselves: only the cyclic GC
                # frees them, and one pass over every ifb of a busy host would pile them up
                # (the agent's orphan collection with 50 guests: +0.4 MiB RSS with this, +0.7 without)
                gc.collect()
            alias = alias or ""
            if alias == tcsession.PARKED_ALIAS:
                _drop(batch, check_mode, found, index, name, alias, "parked by a batch that did not finish")
            elif alias.startswith(_PORT):
                tap = alias[len(_PORT):].rsplit(" ", 1)[0]
                with locks.group_locks([f"port-{netns or ''}-{tap}"], timeout=lock_timeout):
                    if not _redirects_to(batch.sock, caps, tap, name):
                        _drop(batch, check_mode, found, index, name, alias, f"no redirect on {tap} uses it")
            elif alias.startswith(_GROUP):
                group = tcplan.group_of(alias)
                with locks.group_locks([group], timeout=lock_timeout):
                    macs = _members(batch.sock, caps, name)
                    if not macs:
                        _drop(batch, check_mode, found, index, name, alias, "the group has no members")
                members.update((mac, group) for mac in macs)
        for mac, group in sorted(members.items()):
            if in_use is not None and not in_use(mac):
                _drop_member(batch, caps, netns, group, mac, in_use, check_mode, log, found, lock_timeout)
    for text in found:
        if log is not None:
            log.info("orphan %s: %s", "found" if check_mode else "removed", text)
    return found


def _drop(batch, check_mode, found, index, name, alias, why):
    found.append(f"ifb {name} ({alias}): {why}")
    if not check_mode:
        batch.park(index, name, alias)


def _read(sock, caps, dev, **how):
    live = Live(sock, caps.tick_in_usec, devs=[dev], all_ifbs=False)
    live.read_dev(dev, **how)
    return live


def _redirects_to(sock, caps, tap, ifb):
    live = _read(sock, caps, tap)
    return any(obj.kind == "filter" and obj.get("redirect") == ifb for obj in live.on(tap).values())


def _members(sock, caps, ifb):
    return sorted(member_minors(_read(sock, caps, ifb, scope="group", ifb=True), ifb)[0])


def _drop_member(batch, caps, netns, group, mac, in_use, check_mode, log, found, lock_timeout):
    """Teardown of one MAC's membership, cancelled if a guest with that MAC runs by the time the locks are held."""
    # the tap is unknown (its guest is gone): a name no device has, so only
    # the MAC's member objects (and a group ifb it leaves empty) are touched
    plan = tcplan.plan_absent(f"gone-{mac}", mac=mac, netns=netns, label=f"group {group} member {mac}")
    result = tcapply.apply(plan, caps, check_mode=check_mode, log=log, lock_timeout=lock_timeout, batch=batch,
                           unless=lambda: in_use(mac))
    if result.changed:
        found.append(f"group {group} member {mac}: no running guest has this MAC "
                     f"({len(result.actions)} object(s))")
