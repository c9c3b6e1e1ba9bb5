"""Issue #11.1: policy is in place before the guest's CPUs run, on the real libvirtd.

libvirt (qemu_process.c, qemuProcessLaunch) builds the command line, which
creates every tap and puts it in its bridge (qemuBuildInterfaceConnect ->
virNetDevTapCreateInBridgePort), then runs the ``start begin`` hook, and only
then spawns qemu; the vCPUs are started before ``started begin``. So the
built-in handlers apply at ``start begin``; ``started`` and ``reconnect`` only
re-check. A custom script in qemu_start_begin.d runs after the built-in
handlers and records what it finds; one in qemu_prepare_begin.d records that
the taps do not exist yet. For each interface kind this machine can run
(``bridge``, ``network`` on a libvirt-made bridge, ``ethernet``) the tap must
exist at ``start begin``, sit in its bridge, and already carry our HTB.

With ``vlan_failure: abort`` on this kernel (no bridge VLAN filtering), a
guest with VLAN policy is refused at ``start begin``: qemu never started (its
log has no "starting up" line for that attempt), so the guest never ran.
"""
import glob
import json
import os

import pytest

from conftest import bridge_iface, ethernet_iface, sh, uid, virsh

NS = "https://github.com/netvirt/libvirt_hooks/xmlns/policy/1"
PROBE = """#!/bin/sh
# records, for each tap of the guest, whether it exists, its master and its root qdisc
out="/run/nvt-probe-$1-$NETVIRT_HOOK_OP"
for tap in $(sed -n "s/.*<target dev='\\([^']*\\)'.*/\\1/p"); do
    if [ -e "/sys/class/net/$tap" ]; then
        master=$(basename "$(readlink "/sys/class/net/$tap/master" 2>/dev/null)" 2>/dev/null)
        qdisc=$(tc qdisc show dev "$tap" root | head -n1 | cut -d' ' -f2)
        echo "$tap exists master=${master:-none} root=$qdisc"
    else
        echo "$tap missing"
    fi
done > "$out"
"""


def _probe(guest_name, op):
    with open(f"/run/nvt-probe-{guest_name}-{op}", encoding="utf-8") as handle:
        return {line.split()[0]: line.split()[1:] for line in handle.read().splitlines()}


@pytest.fixture
def libvirt_network(libvirtd):
    """Factory: an isolated libvirt network with a libvirt-made bridge -> (network name, bridge name)."""
    made = []

    def make():
        name, bridge = "nvtn" + uid(), "nvtnb" + uid()
        virsh("net-create", "/dev/stdin", input=f"<network><name>{name}</name><bridge name='{bridge}'/></network>")
        made.append(name)
        return name, bridge

    yield make
    for name in made:
        virsh("net-destroy", name, check=False)


def test_every_tap_exists_in_its_bridge_and_is_shaped_at_start_begin(
        restore_host, run_roles, guest, host_bridge, libvirt_network):
    br = host_bridge()
    net, net_bridge = libvirt_network()
    taps = {"bridge": "nvtt" + uid(), "network": "nvtt" + uid(), "ethernet": "nvtt" + uid()}
    run_roles(["netvirt.libvirt_hooks.hooks", "netvirt.libvirt_hooks.shaping"], {
        "hooks_scripts": [{"name": "nvt-probe", "content": PROBE,
                           "events": ["qemu/prepare/begin", "qemu/start/begin"]}],
        "shaping_rules": [{"match": {"dev": tap}, "inbound": {"average": "8mbit"}} for tap in taps.values()],
    })
    network_iface = (f"<interface type='network'><source network='{net}'/><target dev='{taps['network']}'/>"
                     "<model type='virtio'/></interface>")
    g = guest(interfaces=[bridge_iface(br, target=taps["bridge"]), network_iface,
                          ethernet_iface(target=taps["ethernet"])])
    try:
        assert g.is_active()
        before = _probe(g.name, "prepare")
        assert all(before[tap] == ["missing"] for tap in taps.values()), before
        at_start = _probe(g.name, "start")
        assert at_start[taps["bridge"]] == ["exists", f"master={br}", "root=htb"], at_start
        assert at_start[taps["network"]] == ["exists", f"master={net_bridge}", "root=htb"], at_start
        assert at_start[taps["ethernet"]] == ["exists", "master=none", "root=htb"], at_start
        # start shaped the ports; started re-checked and changed nothing
        logs = {op: "".join(open(p, encoding="utf-8", errors="replace").read() for p in
                            glob.glob(f"/var/log/libvirt/hooks/qemu_{op}_begin_{g.name}_shapehook.log"))
                for op in ("start", "started")}
        assert logs["start"].count(": shaped (") == 3, logs
        assert logs["started"].count("shaping already in place") == 3 and ": shaped (" not in logs["started"], logs
    finally:
        for path in glob.glob(f"/run/nvt-probe-{g.name}-*"):
            os.unlink(path)


def test_vlan_abort_means_the_guest_never_ran(restore_host, run_roles, guest, host_bridge):
    br = host_bridge()
    if sh("ip", "link", "set", br, "type", "bridge", "vlan_filtering", "1", check=False).returncode == 0:
        pytest.fail("this kernel HAS bridge VLAN filtering: the refusal cannot be shown here", pytrace=False)
    mac, tap = "52:54:00:5c:00:01", "nvtt" + uid()
    run_roles(["netvirt.libvirt_hooks.hooks", "netvirt.libvirt_hooks.vlan"], {"vlan_failure": "abort"})
    metadata = (f"<nv:policy xmlns:nv='{NS}'><nv:interface mac='{mac}'><nv:vlan pvid='100'/></nv:interface>"
                "</nv:policy>")
    refused = guest(interfaces=[bridge_iface(br, target=tap, mac=mac)], metadata=metadata, start=False)
    qemu_log = f"/var/log/libvirt/qemu/{refused.name}.log"
    proc = virsh("create", "/dev/stdin", input=refused.xml, check=False)
    assert proc.returncode != 0 and "qemu/start/begin" in proc.stderr, proc.stderr
    assert not refused.is_active()
    text = open(qemu_log, encoding="utf-8", errors="replace").read() if os.path.exists(qemu_log) else ""
    assert "starting up" not in text, text       # qemu was never spawned: no CPU of it ever ran
    with open("/etc/libvirt/hooks/netvirt/policy.json", encoding="utf-8") as handle:
        assert json.load(handle)["settings"]["vlan_failure"] == "abort"
