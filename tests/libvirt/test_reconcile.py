"""Reconcile: libvirtd restarts and host "reboots" end in exactly one copy of our state.

Installed for real: playbooks/site.yml (hooks, shaping, vlan roles) from this
tree against localhost, with the example inventory plus this test's rules
as extra vars. What it changes under /etc/libvirt/hooks, /usr/lib/netvirt-hooks
and /usr/local/sbin/netvirt-hooks is put back afterwards.

State is compared as the kernel reports it (`tc qdisc/class/filter show`
on every tap and every ifb of ours, without counters), so "nothing
duplicated" means: the same objects, once each, as after a fresh start.
"""
import glob
import os
import re
import shutil
import time

import pytest

from conftest import bridge_iface, ethernet_iface, sh, uid, virsh

LOG_DIR = "/var/log/libvirt/hooks"

_COUNTERS, _MASK = re.compile(r"(index|direct_packets_stat) [0-9]+"), r"\1 N"


def our_ifbs():
    out = []
    for line in sh("ip", "-o", "link", "show", "type", "ifb").stdout.splitlines():
        if "alias netvirt " in line:
            out.append(line.split(":")[1].strip().split("@")[0])
    return sorted(out)


def related_ifbs(taps):
    """Our ifbs the taps redirect to (other guests on this host have their own)."""
    names = set()
    for tap in taps:
        for side in ("ingress", "egress"):
            out = sh("tc", "filter", "show", "dev", tap, side, check=False).stdout
            names.update(re.findall(r"Redirect to device (\S+?)\)", out))
    return sorted(name for name in names if name in our_ifbs())


def tc_state(taps):
    """{dev: sorted tc lines} for the taps and the ifbs they use; no counters."""
    state = {}
    for dev in sorted(taps) + related_ifbs(taps):
        lines = []
        for what, extra in (("qdisc", ()), ("class", ()), ("filter", ("ingress",)), ("filter", ("egress",)),
                            ("filter", ("parent", "1:"))):
            proc = sh("tc", what, "show", "dev", dev, *extra, check=False)
            # an action's index and HTB's direct_packets_stat are counters, not state: mask them
            lines += [f"{what} {' '.join(extra)}: {_COUNTERS.sub(_MASK, line.strip())}"
                      for line in proc.stdout.splitlines() if line.strip()]
        state[dev] = sorted(lines)
    return state


def wait_stable(taps, want, timeout=60):
    """Poll (bounded) until the tc state equals ``want``; return the last state."""
    deadline = time.monotonic() + timeout
    while True:
        got = tc_state(taps)
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(1)


def vlan_warnings(guest_name):
    count = 0
    for path in glob.glob(os.path.join(LOG_DIR, f"*_{guest_name}_vlanhook.log")):
        with open(path, encoding="utf-8", errors="replace") as handle:
            count += handle.read().count("VLANs NOT applied")
    return count


@pytest.fixture
def fleet(restore_host, guest, host_bridge, run_roles):
    """Three persistent guests: a group of two, one with per-port rates both ways and a VLAN policy.

    restore_host comes first so it is torn down last: the guests are destroyed
    while our hooks are still installed and clean up their ifbs."""
    br = host_bridge()
    tag = uid(4)
    names = [f"nvt-rc{tag}-{i}" for i in range(3)]
    extra = {
        "vlan_failure": "warn",
        "shaping_groups": {"rcgrp": {"inbound": {"ceiling": "50mbit", "floor": "5mbit"},
                                     "outbound": {"ceiling": "40mbit", "floor": "4mbit"}}},
        "shaping_rules": [
            {"match": {"guest": f"nvt-rc{tag}-[01]"}, "group": "rcgrp"},
            {"match": {"guest": names[2], "index": 0}, "inbound": {"average": "12mbit", "peak": "24mbit"},
             "outbound": {"average": "6mbit"}},
            {"match": {"guest": names[2], "index": 1}, "inbound": {"average": "3mbit"}},
        ],
        "vlan_rules": [{"match": {"guest": names[2], "index": 0}, "vlan": {"pvid": 100, "tagged": "200-201"}}],
    }
    run_roles(playbook="netvirt.libvirt_hooks.site", variables=extra)   # examples/inventory of this tree
    guests = []
    for i, name in enumerate(names):
        ifaces = [bridge_iface(br, mac=f"52:54:00:7c:0{i}:01")]
        if i == 2:
            ifaces.append(ethernet_iface(mac="52:54:00:7c:02:02"))
        guests.append(guest(interfaces=ifaces, name=name, persistent=True, start=True))
    taps = [t for g in guests for t in g.taps()]
    return guests, taps


def counts(state, taps):
    """Numbers a duplicate would change: qdiscs, classes, filters per device, and ifbs."""
    out = {"ifbs": len([d for d in state if d not in taps])}
    for dev, lines in state.items():
        for kind in ("qdisc", "class", "filter"):
            out[f"{dev} {kind}"] = sum(1 for line in lines if line.startswith(kind))
    return out


def test_libvirtd_restart_reapplies_once(fleet, libvirtd):
    guests, taps = fleet
    fresh = tc_state(taps)
    assert len([d for d in fresh if d not in taps]) == 3, fresh   # 2 group ifbs + 1 port ifb
    assert any("rate 12Mbit ceil 24Mbit" in line for line in fresh[taps[2]]), fresh[taps[2]]
    warned = vlan_warnings(guests[2].name)
    assert warned >= 1                                           # at start: warn-only, this kernel
    # lose one guest's shaping behind our back: the restart must bring it back
    sh("tc", "qdisc", "del", "dev", taps[2], "root")
    sh("tc", "qdisc", "del", "dev", taps[2], "clsact", check=False)
    assert tc_state(taps) != fresh

    libvirtd.restart()

    after = wait_stable(taps, fresh)
    assert all(g.is_active() for g in guests), "a reconnect must never kill a guest"
    assert counts(after, taps) == counts(fresh, taps)
    assert after == fresh
    assert vlan_warnings(guests[2].name) > warned                # re-checked at reconnect, still warned

    libvirtd.restart()                                           # a second restart changes nothing
    assert wait_stable(taps, fresh, timeout=20) == fresh


def test_reboot_and_autostart_equals_fresh_start(fleet, libvirtd):
    guests, taps = fleet
    fresh = tc_state(taps)
    assert len([d for d in fresh if d not in taps]) == 3, fresh
    for g in guests:
        virsh("autostart", g.name)
    # "reboot": guests gone, our run state and every ifb gone (as after a power cycle), and
    # libvirt's own marker removed so its next start autostarts again (it lives on tmpfs /run).
    for g in guests:
        g.destroy()
    mine = [dev for dev in fresh if dev not in taps]
    for ifb in mine:
        sh("ip", "link", "del", ifb, check=False)
    shutil.rmtree("/run/netvirt-hooks", ignore_errors=True)
    for path in glob.glob("/run/libvirt/qemu/autostarted"):
        os.unlink(path)
    assert not set(mine) & set(our_ifbs())

    libvirtd.restart()

    deadline = time.monotonic() + 60
    while not all(g.is_active() for g in guests):
        assert time.monotonic() < deadline, "autostart did not start every guest within 60 s"
        time.sleep(1)
    after = wait_stable(taps, fresh)
    assert counts(after, taps) == counts(fresh, taps)
    assert after == fresh
    for g in guests:
        virsh("autostart", "--disable", g.name)


def group_member_keys(ifb):
    """The second u32 key (MAC bytes 5-6) of each member filter on a group ifb."""
    out = sh("tc", "filter", "show", "dev", ifb, "parent", "1:", check=False).stdout
    return sorted(re.findall(r"match (\w{4})0000/ffff0000", out))


def test_orphans_of_guests_stopped_without_our_hook_are_collected(fleet, libvirtd, tmp_path):
    """Guests stop while our qemu hook is not installed: their ifbs and group
    memberships stay behind; `netvirt-hooks gc --check` lists them and the
    next libvirtd start removes exactly those."""
    from nvhooks.shaping import plan as tcplan                                   # names only; the hook does the work
    guests, taps = fleet
    gone_port_ifb = tcplan.port_ifb(guests[2].taps()[0])
    gi, go = tcplan.group_ifb("rcgrp", "inbound"), tcplan.group_ifb("rcgrp", "outbound")
    assert {gone_port_ifb, gi, go} <= set(our_ifbs())
    assert group_member_keys(gi) == ["0001", "0101"]             # guests 0 and 1 (MACs ..:00:01, ..:01:01)
    survivor = guests[1].taps()
    kept = {tap: lines for tap, lines in tc_state(survivor).items() if tap in survivor}

    entry = "/etc/libvirt/hooks/qemu"
    shutil.move(entry, tmp_path / "qemu")
    try:
        with open(entry, "w", encoding="utf-8") as handle:      # a hook that does nothing
            handle.write("#!/bin/sh\ncat >/dev/null\nexit 0\n")
        os.chmod(entry, 0o755)
        guests[0].destroy()
        guests[2].destroy()
    finally:
        os.unlink(entry)
        shutil.move(tmp_path / "qemu", entry)
    assert gone_port_ifb in our_ifbs() and group_member_keys(gi) == ["0001", "0101"]

    check = sh("/usr/local/sbin/netvirt-hooks", "gc", "--check", check=False)
    assert check.returncode == 1, check.stdout + check.stderr
    assert f"orphan: ifb {gone_port_ifb}" in check.stdout
    assert "orphan: group rcgrp member 52:54:00:7c:00:01" in check.stdout
    assert "52:54:00:7c:01:01" not in check.stdout
    assert gone_port_ifb in our_ifbs()                            # --check changes nothing

    libvirtd.restart()                                            # daemon start: reconcile, then collect

    deadline = time.monotonic() + 30                              # the daemon hook may still be running
    while gone_port_ifb in our_ifbs() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert gone_port_ifb not in our_ifbs()
    assert group_member_keys(gi) == ["0101"] and group_member_keys(go) == ["0101"]
    assert not [line for line in sh("ip", "-o", "link", "show", "type", "ifb").stdout.splitlines()
                if "netvirt deleting" in line]
    assert guests[1].is_active()
    assert {tap: lines for tap, lines in tc_state(survivor).items() if tap in survivor} == kept
    again = sh("/usr/local/sbin/netvirt-hooks", "gc", "--check", check=False)
    assert again.returncode == 0 and again.stdout.strip() == "gc: no orphans", again.stdout + again.stderr
