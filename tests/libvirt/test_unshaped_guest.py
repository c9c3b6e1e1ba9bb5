"""Issue #14.1 on the real libvirtd: settings.unshaped warn and abort, with real guests.

The roles render shaping_unshaped / shaping_unshaped_exempt. With warn, a guest
with one port no source limits and one on an exempt bridge starts, and the
start begin log holds one WARNING, for that port alone, naming tap, MAC and
guest; `netvirt-hooks status` lists it. With abort, the same guest is refused
at start begin: qemu never started (no "starting up" line), so no CPU of it ran.
"""
import json
import os

from conftest import bridge_iface, sh, uid, virsh

CLI = "/usr/local/sbin/netvirt-hooks"


def test_warn_names_the_port_then_abort_refuses_the_guest(restore_host, run_roles, guest, host_bridge):
    br, exempt = host_bridge(), host_bridge()
    variables = {"shaping_unshaped": "warn", "shaping_unshaped_exempt": {"bridges": [exempt]}}
    run_roles(["netvirt.libvirt_hooks.hooks", "netvirt.libvirt_hooks.shaping"], variables)
    mac, tap = "52:54:00:14:00:01", "nvtt" + uid()
    ports = [bridge_iface(br, target=tap, mac=mac), bridge_iface(exempt, target="nvtt" + uid())]
    warned = guest(interfaces=ports)
    assert warned.is_active()
    log = f"/var/log/libvirt/hooks/qemu_start_begin_{warned.name}_shapehook.log"
    with open(log, encoding="utf-8") as handle:
        lines = [line for line in handle.read().splitlines() if " WARNING " in line]
    assert len(lines) == 1 and lines[0].endswith(
        f"no bandwidth limit: tap={tap} mac={mac} guest={warned.name} (port 0) (settings.unshaped is warn)"), lines
    status = json.loads(sh(CLI, "--json", "status", check=False).stdout)
    assert status["unshaped"]["setting"] == "warn"
    assert f"no bandwidth limit: tap={tap} mac={mac} guest={warned.name} (port 0)" in status["unshaped"]["ports"]

    run_roles(["netvirt.libvirt_hooks.shaping"], dict(variables, shaping_unshaped="abort"))
    refused = guest(interfaces=[bridge_iface(br, target="nvtt" + uid()), bridge_iface(exempt, target="nvtt" + uid())],
                    start=False)
    qemu_log = f"/var/log/libvirt/qemu/{refused.name}.log"
    proc = virsh("create", "/dev/stdin", input=refused.xml, check=False)
    assert proc.returncode != 0 and "qemu/start/begin" in proc.stderr and "settings.unshaped is abort" in proc.stderr, \
        proc.stderr
    assert not refused.is_active()
    text = open(qemu_log, encoding="utf-8", errors="replace").read() if os.path.exists(qemu_log) else ""
    assert "starting up" not in text, text       # qemu was never spawned: no CPU of it ever ran
    assert warned.is_active()                     # running guests are left alone
