"""Issue #12, interfaces: network-backed ports and a macvtap on the real libvirtd, shaped by the installed hook.

One guest, three ports, each a kind this machine can run:

* ``type='network'`` on a network with ``<forward mode='bridge'/>`` to a host
  bridge (status XML: ``<actual type='bridge'>``);
* ``type='network'`` on an isolated network with a libvirt-made bridge
  (``<actual type='network'>``; nat and route need dnsmasq and an address,
  which this lane does not install);
* ``type='direct'`` (macvtap, mode bridge) over one end of a veth pair.

The hooks and shaping roles install the hook and a host policy; after
``virsh start`` the hook has shaped every port. The tc state is asserted,
`netvirt-hooks status` must name each network port's bridge (read from
``<actual>``), and frames sent to the guest's MAC from the veth's other end
must pass the macvtap's guest-inbound class (on its ifb, reached from the
macvtap's ingress), not its egress HTB: the guest-inbound limit sits on the
path to the guest.
"""
import json
import os
import socket
import subprocess

import pytest

from conftest import sh, uid, virsh

PLUGINS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                       "plugins", "module_utils")
MAC_NB, MAC_NI, MAC_MV = "52:54:00:12:a0:01", "52:54:00:12:a0:02", "52:54:00:12:a0:03"
FRAMES = 300
# NVT_CORPUS_OUT=tests/fixtures/corpus: also save this guest's status XML and the XML
# libvirt pipes to `start begin` (tests/fixtures/corpus/SOURCES: libvirt9_*_network_direct.xml)
CORPUS_OUT = os.environ.get("NVT_CORPUS_OUT")
CAPTURE = """#!/bin/sh
cat > /run/nvt-corpus-start-begin.xml
"""


def nvh_json(*args, policy):
    """`netvirt-hooks --json ...` from this tree, run by Debian's python as the hook is."""
    code = "import sys; sys.path.insert(0, sys.argv.pop(1)); from nvhooks.cli import main; sys.exit(main())"
    proc = subprocess.run(["/usr/bin/python3", "-c", code, PLUGINS, "--json", "--policy", policy, *args],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def class_stats(dev):
    """{classid: packets} of the HTB classes on dev (tc -s)."""
    out, stats, current = sh("tc", "-s", "class", "show", "dev", dev).stdout, {}, None
    for line in out.splitlines():
        words = line.split()
        if words[:2] == ["class", "htb"]:
            current = words[2]
        elif words[:1] == ["Sent"] and current:
            stats[current] = int(words[3])
    return stats


def send_frames(dev, dst_mac, count):
    """Raw Ethernet frames (local experimental ethertype) out of dev."""
    frame = bytes.fromhex(dst_mac.replace(":", "")) + bytes.fromhex("020000aa0001") + b"\x88\xb5" + bytes(100)
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
        sock.bind((dev, 0))
        for _unused in range(count):
            sock.send(frame)


@pytest.fixture
def networks(libvirtd, host_bridge):
    """A forward-bridge network onto a host bridge, and an isolated one (libvirt-made bridge)."""
    made, br = [], host_bridge()
    fwd, iso, iso_br = "nvtn" + uid(), "nvtn" + uid(), "nvtnb" + uid()
    for xml, name in ((f"<network><name>{fwd}</name><forward mode='bridge'/><bridge name='{br}'/>"
                       "<portgroup name='web' default='yes'/></network>", fwd),
                      (f"<network><name>{iso}</name><bridge name='{iso_br}'/></network>", iso)):
        virsh("net-create", "/dev/stdin", input=xml)
        made.append(name)
    yield {"fwd": (fwd, br), "iso": (iso, iso_br)}
    for name in made:
        virsh("net-destroy", name, check=False)


@pytest.fixture
def veth():
    lower, peer = "nvtv" + uid(), "nvtv" + uid()
    sh("ip", "link", "add", lower, "type", "veth", "peer", "name", peer)
    for dev in (lower, peer):
        sh("ip", "link", "set", dev, "up")
    yield lower, peer
    sh("ip", "link", "del", lower, check=False)


def test_network_ports_and_macvtap_shaped_by_the_hook(restore_host, run_roles, guest, networks, veth, tmp_path):
    (fwd, fwd_br), (iso, iso_br) = networks["fwd"], networks["iso"]
    lower, peer = veth
    taps = {"fwd": "nvtt" + uid(), "iso": "nvtt" + uid(), "mv": "nvtm" + uid()}
    rules = [{"match": {"dev": taps["fwd"]}, "inbound": {"average": "8mbit"}},
             {"match": {"dev": taps["iso"]}, "inbound": {"average": "6mbit"}},
             {"match": {"dev": taps["mv"]}, "inbound": {"average": "4mbit"}, "outbound": {"average": "2mbit"}}]
    variables = {"shaping_rules": rules}
    if CORPUS_OUT:
        variables["hooks_scripts"] = [{"name": "nvt-corpus", "content": CAPTURE, "events": ["qemu/start/begin"]}]
    run_roles(["netvirt.libvirt_hooks.hooks", "netvirt.libvirt_hooks.shaping"], variables)
    g = guest(interfaces=[
        f"<interface type='network'><mac address='{MAC_NB}'/><source network='{fwd}'/>"
        f"<target dev='{taps['fwd']}'/><model type='virtio'/></interface>",
        f"<interface type='network'><mac address='{MAC_NI}'/><source network='{iso}'/>"
        f"<target dev='{taps['iso']}'/><model type='virtio'/></interface>",
        f"<interface type='direct'><mac address='{MAC_MV}'/><source dev='{lower}' mode='bridge'/>"
        f"<target dev='{taps['mv']}'/><model type='virtio'/></interface>"])
    assert g.is_active()
    if CORPUS_OUT:
        for name, path in (("libvirt9_status_network_direct.xml", f"/run/libvirt/qemu/{g.name}.xml"),
                           ("libvirt9_start_begin_network_direct.xml", "/run/nvt-corpus-start-begin.xml")):
            with open(path, encoding="utf-8") as src, open(os.path.join(CORPUS_OUT, name), "w") as dst:
                dst.write(src.read())

    # the hook shaped each port at start: network ports like taps
    assert "rate 8Mbit" in sh("tc", "class", "show", "dev", taps["fwd"]).stdout
    assert "rate 6Mbit" in sh("tc", "class", "show", "dev", taps["iso"]).stdout
    # the macvtap the other way round: guest outbound on its egress, guest inbound on its ifb
    from nvhooks.shaping import plan as tcplan
    ifb = tcplan.port_ifb(taps["mv"])
    assert "rate 2Mbit" in sh("tc", "class", "show", "dev", taps["mv"]).stdout
    assert "rate 4Mbit" in sh("tc", "class", "show", "dev", ifb).stdout
    assert f"Redirect to device {ifb}" in sh("tc", "filter", "show", "dev", taps["mv"], "ingress").stdout

    # status names the bridges, read from <actual> in the status XML
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"version": 1, "rules": rules}))
    code, data = nvh_json("status", g.name, policy=str(policy))
    ports = {p["dev"]: p for p in data["ports"]}
    assert ports[taps["fwd"]]["bridge"] == fwd_br and ports[taps["fwd"]]["type"] == "bridge"
    assert ports[taps["iso"]]["bridge"] == iso_br and ports[taps["iso"]]["type"] == "network"
    assert ports[taps["mv"]]["device"] == "macvtap"
    assert code == 0 and all(p["shaping"]["state"] == "in sync" for p in ports.values()), ports

    # frames to the guest's MAC from the veth's far end go through the guest-inbound class
    before_ifb, before_mv = class_stats(ifb), class_stats(taps["mv"])
    send_frames(peer, MAC_MV, FRAMES)
    after_ifb, after_mv = class_stats(ifb), class_stats(taps["mv"])
    assert after_ifb["1:1"] - before_ifb["1:1"] >= FRAMES, (before_ifb, after_ifb)
    assert after_mv["1:1"] - before_mv["1:1"] < FRAMES, (before_mv, after_mv)   # not the egress HTB

    g.destroy()
    assert ifb not in sh("ip", "-o", "link", "show", "type", "ifb").stdout
