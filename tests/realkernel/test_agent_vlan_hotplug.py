"""Issue #13: a NIC hot-plugged onto a deny-by-default VLAN bridge, through the agent's own path.

Real-kernel lane only (bridge VLAN filtering). Real: Debian's kernel, the
bridge set up by our bridge set-up (``vlan.hook.bridge_init``, default_pvid 0),
a tap created over /dev/net/tun and enslaved as libvirt does on hot-plug
(``fe:`` MAC, bridge MTU, master, up; the fd this test holds stands in for
qemu's), ARP through the bridge between that fd and an uplink in a netns on
VLAN 100, and the agent's ``Agent.process`` with libvirt's "device attached" /
"device detached" events, applying VLANs, shaping and orphan collection.

Replaced: libvirtd, which cannot run in the lane VM. The agent reads the guest
from its status XML under NETVIRT_HOOKS_ROOT's /run/libvirt/qemu (``link`` is
None, so ``Agent._domain`` falls back to ``guests.running``), which this test
writes as libvirt would: with the NIC after the attach, without it after the
detach. The libvirt lane's tests/libvirt/test_agent.py covers the real events.
"""
import fcntl
import json
import logging
import os
import select
import socket
import struct
import time
import types

import pytest

from nvhooks.agent import main as agentmain
from nvhooks.kernel import links as klinks, netlink
from nvhooks.policy import model as policy
from nvhooks.shaping import plan as tcplan
from nvhooks.vlan import hook as vlanhook

from test_vlan_traffic import _fx, kernel_vids, remove_status, vlan_bridge, write_status  # noqa: F401  pylint: disable=unused-import

sh, nsrun = _fx.sh, _fx.nsrun
GUEST, UUID, MAC = "nvthot", "44444444-4444-4444-8444-444444444444", "52:54:00:13:00:07"
TUNSETIFF, IFF_TAP, IFF_NO_PI = 0x400454CA, 0x0002, 0x1000
GUEST_IP, UPLINK_IP = "10.100.0.7", "10.100.0.9"


def domain_xml(bridge_name, tap=None):
    nic = (f"<interface type='bridge'><mac address='{MAC}'/><source bridge='{bridge_name}'/>"
           f"<target dev='{tap}'/><model type='virtio'/><alias name='net0'/></interface>") if tap else ""
    return (f"<domain type='qemu' id='1'><name>{GUEST}</name><uuid>{UUID}</uuid>"
            f"<devices>{nic}</devices></domain>").encode()


def hotplug_tap(name, bridge_name):
    """A tap as libvirt makes one for ``attach-interface --live``; returns the fd (closing it removes the tap)."""
    sh("modprobe", "tun")
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    mtu = json.loads(sh("ip", "-j", "link", "show", bridge_name).stdout)[0]["mtu"]
    sh("ip", "link", "set", name, "address", "fe" + MAC[2:], "mtu", mtu, "master", bridge_name, "up")
    return fd


def arp_answered(fd, tries=3):
    """Does the uplink's 10.100.0.9 answer an ARP request the 'guest' writes to its tap?"""
    mac = bytes.fromhex(MAC.replace(":", ""))
    frame = (b"\xff" * 6 + mac + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac
             + socket.inet_aton(GUEST_IP) + b"\x00" * 6 + socket.inet_aton(UPLINK_IP)).ljust(60, b"\x00")
    for _attempt in range(tries):
        os.write(fd, frame)
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            if not select.select([fd], [], [], max(0.0, end - time.monotonic()))[0]:
                break
            got = os.read(fd, 2048)
            if got[12:14] == b"\x08\x06" and got[20:22] == b"\x00\x02" and got[28:32] == socket.inet_aton(UPLINK_IP):
                return True
    return False


def our_ifbs():
    return {link["ifname"] for link in json.loads(sh("ip", "-j", "-d", "link", "show", "type", "ifb").stdout or "[]")
            if (link.get("ifalias") or "").startswith(tcplan.ALIAS_PREFIX)}


@pytest.fixture
def site(netns, veth, vlan_bridge, tmp_path):
    br = vlan_bridge
    uplink_ns = netns()
    up = veth(None, uplink_ns, name="nvtup" + _fx.uid(4), peer="eth0")
    sh("ip", "link", "set", up.name, "master", br)
    nsrun(uplink_ns, "ip", "link", "add", "link", "eth0", "name", "eth0.100", "type", "vlan", "id", "100")
    nsrun(uplink_ns, "ip", "addr", "add", f"{UPLINK_IP}/24", "dev", "eth0.100")
    nsrun(uplink_ns, "ip", "link", "set", "eth0.100", "up")
    group = "nvthot" + _fx.uid(4)
    # the bridge policy says nothing of default_pvid: deny by default (default_pvid 0)
    host = policy.parse_host_policy({
        "groups": {group: {"inbound": {"ceiling": "20mbit"}}},
        "bridges": {br: {"vlan_filtering": True, "uplinks": [up.name], "uplink_vids": "100"}},
        "rules": [{"match": {"mac": MAC}, "vlan": {"pvid": 100}, "inbound": {"average": "10mbit"},
                   "outbound": {"average": "5mbit"}, "group": group}]})
    vlanhook.bridge_init(host, logging.getLogger("nvt.vlan"))
    with netlink.ipr() as nl:
        assert klinks.by_name(nl)[br].default_pvid == 0
    agent = agentmain.Agent(types.SimpleNamespace(only=None, policy=str(tmp_path / "policy.json"), uri=None,
                                                  textfile=None), logging.getLogger("nvt.agent"))
    agent.host = host
    tap = "nvttap" + _fx.uid(4)
    fds = []
    yield {"bridge": br, "root": tmp_path, "agent": agent, "tap": tap, "group": group, "fds": fds}
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def events(caplog):
    out = [r.getMessage() for r in caplog.records if r.name == "nvt.agent"]
    caplog.clear()
    return out


def test_hotplug_on_a_deny_by_default_bridge_then_detach(site, caplog):
    caplog.set_level(logging.INFO, "nvt.agent")
    agent, tap, br, root = site["agent"], site["tap"], site["bridge"], site["root"]
    fd = hotplug_tap(tap, br)
    site["fds"].append(fd)
    write_status(root, GUEST, domain_xml(br, tap))        # libvirt's status XML with the new NIC
    # before the agent acts: the new port carries nothing
    assert kernel_vids(tap) == {}
    assert not arp_answered(fd, tries=2)

    agent.process([("guest", GUEST, "device net0 attached", time.monotonic())])
    assert kernel_vids(tap) == {100: ["Egress Untagged", "PVID"]}
    qdiscs = sh("tc", "qdisc", "show", "dev", tap).stdout
    assert "clsact" in qdiscs, qdiscs                    # group member: redirected to the group's ifbs
    port_ifb, group_ifb = tcplan.port_ifb(tap), tcplan.group_ifb(site["group"], "inbound")
    assert {port_ifb, group_ifb} <= our_ifbs()
    said = events(caplog)
    assert len(said) == 1 and said[0].startswith(f"guest {GUEST} (device net0 attached): ") and tap in said[0], said
    assert arp_answered(fd)

    # a second converge changes nothing and says nothing
    before = (kernel_vids(tap), sh("tc", "-s", "-d", "class", "show", "dev", tap).stdout.count("class"))
    agent.process([("guest", GUEST, "device net0 attached", time.monotonic())])
    assert events(caplog) == []
    assert (kernel_vids(tap), sh("tc", "-s", "-d", "class", "show", "dev", tap).stdout.count("class")) == before

    # detach: qemu closes the tap (the kernel removes it), libvirt rewrites the status XML without the NIC
    os.close(site["fds"].pop())
    write_status(root, GUEST, domain_xml(br))
    agent.process([("guest", GUEST, "device net0 detached", time.monotonic()),
                   ("gc", None, f"device net0 of {GUEST} detached", time.monotonic())])
    assert tap not in sh("ip", "-j", "link", "show").stdout
    assert not {port_ifb, group_ifb} & our_ifbs()           # no ifb, no group membership left
    assert any("orphan removed" in text for text in events(caplog))
    remove_status(root, GUEST)
