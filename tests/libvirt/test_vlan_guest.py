"""VLAN fail-closed end to end on this machine's kernel (no bridge VLAN filtering).

The hooks role installs the dispatcher and the core, the vlan role writes the
host policy; both through ansible-playbook as an operator would. A real guest
whose bridge port has a VLAN policy must then be refused start, with an ERROR
naming guest, port and reason (security first: it would otherwise sit in the
bridge's default VLAN); with ``vlan_failure: warn`` it starts and the hook
logs a WARNING. What the roles change under /etc/libvirt/hooks,
/usr/lib/netvirt-hooks and /usr/local/sbin/netvirt-hooks is put back.

On a kernel WITH VLAN filtering these expectations do not hold (the VLANs
would simply be applied): the test fails there with that reason.
"""
import glob
import json
import os

import pytest

from conftest import bridge_iface, sh, virsh

LOG_DIR = "/var/log/libvirt/hooks"
NS = "https://github.com/netvirt/libvirt_hooks/xmlns/policy/1"
MAC = "52:54:00:5b:00:01"
ROLES = ("netvirt.libvirt_hooks.hooks", "netvirt.libvirt_hooks.vlan")


def kernel_lacks_vlan_filtering(bridge):
    return sh("ip", "link", "set", bridge, "type", "bridge", "vlan_filtering", "1", check=False).returncode != 0


def hook_logs(guest_name):
    text = ""
    for path in sorted(glob.glob(os.path.join(LOG_DIR, f"*{guest_name}*"))):
        with open(path, encoding="utf-8", errors="replace") as handle:
            text += handle.read()
    return text


def vlan_metadata():
    return (f"<nv:policy xmlns:nv='{NS}'><nv:interface mac='{MAC}'>"
            "<nv:vlan pvid='100' tagged='200-201'/></nv:interface></nv:policy>")


def test_vlan_policy_refused_then_warned(restore_host, run_roles, guest, host_bridge):
    br = host_bridge()
    if not kernel_lacks_vlan_filtering(br):
        pytest.fail("this kernel HAS bridge VLAN filtering: the fail-closed path cannot be shown here "
                    "(the real-kernel lane tests the applied path)", pytrace=False)
    tap = "nvtt" + os.urandom(3).hex()
    iface = bridge_iface(br, target=tap, mac=MAC)

    # 1. default (abort): the start is refused with the reason
    run_roles(ROLES, {"vlan_failure": "abort"})
    with open("/etc/libvirt/hooks/netvirt/policy.json", encoding="utf-8") as handle:
        assert json.load(handle)["settings"]["vlan_failure"] == "abort"
    refused = guest(interfaces=[iface], metadata=vlan_metadata(), start=False)
    proc = virsh("create", "/dev/stdin", input=refused.xml, check=False)
    assert proc.returncode != 0, "the guest started although its VLANs cannot be applied"
    assert not refused.is_active()
    said = proc.stderr + hook_logs(refused.name)
    assert "no bridge VLAN filtering" in said, said
    assert f"guest {refused.name}" in said and tap in said, said
    assert "ERROR" in hook_logs(refused.name)

    # 2. warn: it starts, the WARNING names the port
    run_roles(ROLES, {"vlan_failure": "warn"})
    warned = guest(interfaces=[iface], metadata=vlan_metadata(), start=False)
    warned.start()
    assert warned.is_active()
    logs = hook_logs(warned.name)
    assert "WARNING" in logs and "VLANs NOT applied" in logs and tap in logs, logs
    warned.destroy()
