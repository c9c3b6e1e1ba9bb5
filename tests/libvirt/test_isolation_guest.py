"""Port isolation as policy on a real guest (issue #12): the tap is isolated at ``start begin``.

The hooks and vlan roles install everything as an operator would; the vlan
role's ``vlan_rules`` isolate one port by tap name, the guest's own metadata
(``isolated="yes"``) the other; a third port has no policy. A script in
qemu_start_begin.d runs after the built-in handlers and records each tap's
brport/isolated flag then, before qemu is spawned. ``netvirt-hooks status``
and ``explain`` show the flag, its source, and that the kernel matches.
Bridge isolation needs no VLAN filtering, so this runs on this host's kernel.
"""
import json
import os

from conftest import bridge_iface, sh, uid

NS = "https://github.com/netvirt/libvirt_hooks/xmlns/policy/1"
PROBE = """#!/bin/sh
out="/run/nvt-isoprobe-$1"
for tap in $(sed -n "s/.*<target dev='\\([^']*\\)'.*/\\1/p"); do
    echo "$tap $(cat /sys/class/net/$tap/brport/isolated 2>/dev/null || echo none)"
done > "$out"
"""


def test_guest_tap_isolated_at_start_begin(restore_host, run_roles, guest, host_bridge):
    br = host_bridge()
    taps = ["nvtt" + uid() for _i in range(3)]
    macs = [f"52:54:00:5d:00:0{i}" for i in range(3)]
    run_roles(["netvirt.libvirt_hooks.hooks", "netvirt.libvirt_hooks.vlan"], {
        "hooks_scripts": [{"name": "nvt-isoprobe", "content": PROBE, "events": ["qemu/start/begin"]}],
        "vlan_rules": [{"match": {"dev": taps[0]}, "isolated": True, "comment": "by host rule"}],
    })
    metadata = (f"<nv:policy xmlns:nv='{NS}'><nv:interface mac='{macs[1]}' isolated='yes'/></nv:policy>")
    g = guest(interfaces=[bridge_iface(br, target=tap, mac=mac) for tap, mac in zip(taps, macs)], metadata=metadata)
    probe = f"/run/nvt-isoprobe-{g.name}"
    try:
        assert g.is_active()
        with open(probe, encoding="utf-8") as handle:
            at_start = dict(line.split() for line in handle.read().splitlines())
        assert at_start == {taps[0]: "1", taps[1]: "1", taps[2]: "0"}, at_start
        status = json.loads(sh("/usr/local/sbin/netvirt-hooks", "--json", "status", g.name).stdout)
        ports = {p["dev"]: p for p in status["ports"]}
        assert ports[taps[0]]["isolated"] == {"value": True, "source": "host policy rules[0]"}
        assert ports[taps[1]]["isolated"] == {"value": True, "source": "metadata interface[0]"}
        assert "isolated" not in ports[taps[2]]
        assert [ports[t]["isolation_state"]["state"] for t in taps] == ["in sync", "in sync", "none"]
        explained = sh("/usr/local/sbin/netvirt-hooks", "explain", g.name).stdout
        assert explained.count("isolated") >= 2 and "host policy rules[0]" in explained, explained
    finally:
        if os.path.exists(probe):
            os.unlink(probe)
