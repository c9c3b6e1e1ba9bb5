"""Proves the libvirt lane: a guest with a bridge port and an ethernet tap."""
import os

from conftest import bridge_iface, ethernet_iface


def test_guest_taps_exist_while_running(guest, host_bridge, virsh):
    br = host_bridge()
    g = guest([bridge_iface(br), ethernet_iface()],
              metadata="<nv:smoke xmlns:nv='urn:nvt:smoke'>1</nv:smoke>")
    taps = g.taps()
    assert len(taps) == 2 and all(t.startswith("nvtt") for t in taps)
    assert all(os.path.exists(f"/sys/class/net/{t}") for t in taps)
    assert os.path.basename(os.readlink(f"/sys/class/net/{taps[0]}/master")) == br
    assert "urn:nvt:smoke" in g.dumpxml()
    g.destroy()
    assert not any(os.path.exists(f"/sys/class/net/{t}") for t in taps)


def test_persistent_guest(guest, virsh):
    g = guest([ethernet_iface()], persistent=True, start=False)
    assert g.name in virsh("list", "--all", "--name").stdout.split()
    assert not g.is_active()
    g.start()
    assert g.is_active()
