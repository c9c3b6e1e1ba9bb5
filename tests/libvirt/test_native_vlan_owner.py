"""Issue #12: libvirt's own <vlan> on a Linux bridge port is libvirt's; our hook never fights it.

libvirt >= 11.0 applies <vlan> on Linux bridge ports itself (older libvirt
refuses to start such a guest: "vlan tag not supported"), so this test needs
libvirt 11 and skips below (the libvirt 11.3 lane runs it). The host policy
has a VLAN rule for the same port and ``vlan_failure: abort``: our VLAN hook
must leave the port alone (the owner is libvirt), so whatever happens to the
start is libvirt's doing, never a refusal from our ``start begin`` hook, and
explain says who owns the port.
"""
import json
import os
import re
import subprocess

import pytest

from conftest import REPO, bridge_iface, sh, uid, virsh

PLUGINS = os.path.join(REPO, "plugins", "module_utils")


def libvirt_major():
    try:
        out = subprocess.run(["libvirtd", "--version"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return 0
    found = re.search(r"(\d+)\.\d+", out)
    return int(found.group(1)) if found else 0


pytestmark = pytest.mark.skipif(libvirt_major() < 11, reason="libvirt < 11 refuses <vlan> on a Linux bridge port")


def test_native_vlan_port_is_left_to_libvirt(restore_host, run_roles, guest, host_bridge, tmp_path):
    br, tap = host_bridge(), "nvtt" + uid()
    run_roles(["netvirt.libvirt_hooks.hooks", "netvirt.libvirt_hooks.vlan"], {
        "vlan_failure": "abort", "vlan_rules": [{"match": {"dev": tap}, "vlan": {"pvid": 100}}]})
    g = guest(interfaces=[bridge_iface(br, target=tap, extra="<vlan><tag id='42'/></vlan>")], start=False)
    proc = virsh("create", "/dev/stdin", input=g.xml, check=False)
    # a failure may only be libvirt's own (e.g. a kernel without bridge VLAN filtering), never our hook's
    assert "qemu/start/begin" not in proc.stderr, proc.stderr
    if proc.returncode == 0:
        policy = tmp_path / "policy.json"
        policy.write_text(json.dumps({"version": 1, "rules": [{"match": {"dev": tap}, "vlan": {"pvid": 100}}]}))
        code = "import sys; sys.path.insert(0, sys.argv.pop(1)); from nvhooks.cli import main; sys.exit(main())"
        out = sh("/usr/bin/python3", "-c", code, PLUGINS, "--json", "--policy", str(policy), "explain", g.name).stdout
        port = json.loads(out)["ports"][0]
        assert port["owners"]["vlans"] == "libvirt" and port["values"]["native.vlan"]["value"] == "access 42"
