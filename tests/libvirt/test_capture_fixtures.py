"""Real libvirt output for nvhooks.domxml: capture it, parse it, pin what libvirt does.

The guest has fixed name, uuid, MACs and taps so that regenerating the
fixtures (tests/fixtures/domains/regenerate.py, which sets NVT_FIXTURE_OUT)
changes only what libvirt itself changed.
"""
import os
import re
import subprocess

import pytest

from conftest import domain_xml
from nvhooks.policy import domxml

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "domains")
NAME = "nvt-fixture"
UUID = "6e7f0a1b-2c3d-4e5f-8a9b-0c1d2e3f4a5b"
BRIDGE = "nvtbrfx0"
TAPS = ("nvtfx0", "nvtfx1")
MACS = ("52:54:00:4e:56:01", "52:54:00:4e:56:02")
NATIVE_IN = "<inbound average='1000' peak='2000' burst='512'/>"
NATIVE_OUT = "<outbound average='500'/>"
# Valid policy the installed hooks (if any) accept without touching the kernel:
# VLAN policy on an ethernet port is ignored with a note.
POLICY = (f"<nv:policy xmlns:nv='{domxml.NS_NETVIRT}'>"
          "<nv:interface index='1'><nv:vlan pvid='100'/></nv:interface></nv:policy>")


def run(*argv, check=True):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if check and p.returncode:
        raise AssertionError(f"{' '.join(argv)} -> {p.returncode}: {p.stdout}{p.stderr}")
    return p


def guest_xml(bandwidth=""):
    ports = [f"""<interface type='bridge'>
      <mac address='{MACS[0]}'/><source bridge='{BRIDGE}'/><target dev='{TAPS[0]}'/>
      <model type='virtio'/>{bandwidth}
    </interface>""", f"""
    <interface type='ethernet'>
      <mac address='{MACS[1]}'/><target dev='{TAPS[1]}' managed='yes'/><model type='e1000'/>
    </interface>"""]
    return domain_xml(NAME, ports, metadata=POLICY, domain_uuid=UUID, title="netvirt domxml fixture",
                      description="Captured by tests/libvirt/test_capture_fixtures.py")


def fixture_prefix():
    out = run("libvirtd", "--version").stdout
    return "libvirt" + re.search(r"(\d+)\.\d+", out).group(1)


def save(name, text):
    """Write into NVT_FIXTURE_OUT when regenerating; no-op in a normal run."""
    out = os.environ.get("NVT_FIXTURE_OUT")
    if out:
        with open(os.path.join(out, name), "w") as f:
            f.write(text if text.endswith("\n") else text + "\n")


@pytest.fixture
def fx_bridge(host_bridge):
    run("ip", "link", "del", BRIDGE, check=False)  # left by a killed run
    return host_bridge(BRIDGE)


@pytest.fixture
def fx_guest(libvirtd, virsh):
    """Removes the fixed-name guest before and after the test."""
    def gone():
        virsh("destroy", NAME, check=False)
        virsh("undefine", NAME, check=False)
    gone()
    yield
    gone()


def test_capture_live_and_status(fx_bridge, fx_guest, virsh):
    virsh("create", "/dev/stdin", input=guest_xml())
    live_text = virsh("dumpxml", NAME).stdout
    with open(f"/run/libvirt/qemu/{NAME}.xml") as f:
        status_text = f.read()
    live = domxml.parse_domain(live_text, "virsh dumpxml")
    status = domxml.read_status_xml(f"/run/libvirt/qemu/{NAME}.xml")

    pid = int(open(f"/run/libvirt/qemu/{NAME}.pid").read())
    assert (status.is_status, status.state, status.pid) == (True, "running", pid)
    assert not live.is_status and live.id == status.id and live.id > 0
    for dom in (live, status):
        assert (dom.name, dom.uuid, dom.type) == (NAME, UUID, "qemu")
        assert dom.title == "netvirt domxml fixture"
        assert [i.type for i in dom.interfaces] == ["bridge", "ethernet"]
        assert tuple(i.target_dev for i in dom.interfaces) == TAPS
        assert tuple(i.mac for i in dom.interfaces) == MACS
        assert dom.interfaces[0].source_bridge == BRIDGE
        assert dom.policy_element is not None and dom.policy_element[0].get("index") == "1"
    # what the reader says is what the kernel has
    assert os.path.basename(os.readlink(f"/sys/class/net/{TAPS[0]}/master")) == BRIDGE
    assert os.path.exists(f"/sys/class/net/{TAPS[1]}")

    prefix = fixture_prefix()
    committed = os.path.join(FIXTURES, f"{prefix}_live.xml")
    if os.path.exists(committed) and not os.environ.get("NVT_FIXTURE_OUT"):
        with open(committed, "rb") as f:  # the committed fixture still says what libvirt says
            assert domxml.parse_domain(f.read(), committed).interfaces == live.interfaces
    save(f"{prefix}_live.xml", live_text)
    save(f"{prefix}_status.xml", status_text)


def _kernel_can(netns, *tc_args):
    return run("tc", "-n", netns, *tc_args, check=False).returncode == 0


@pytest.fixture
def kernel_caps():
    """Whether this kernel has what libvirt's native <bandwidth> uses (sfq, act_police)."""
    ns = "nvtfxcaps"
    run("ip", "netns", "del", ns, check=False)
    run("ip", "netns", "add", ns)
    try:
        run("ip", "-n", ns, "link", "add", "nvtca", "type", "veth", "peer", "name", "nvtcb")
        sfq = _kernel_can(ns, "qdisc", "add", "dev", "nvtca", "root", "sfq", "perturb", "10")
        run("tc", "-n", ns, "qdisc", "add", "dev", "nvtcb", "ingress")
        police = _kernel_can(ns, "filter", "add", "dev", "nvtcb", "parent", "ffff:", "protocol", "all", "u32",
                             "match", "u32", "0", "0", "police", "rate", "500kbps", "burst", "500kb",
                             "mtu", "64kb", "drop", "flowid", ":1")
        yield {"sfq": sfq, "police": police}
    finally:
        run("ip", "netns", "del", ns, check=False)


def test_native_bandwidth_inactive_xml(fx_bridge, fx_guest, virsh):
    virsh("define", "/dev/stdin", input=guest_xml(f"<bandwidth>{NATIVE_IN}{NATIVE_OUT}</bandwidth>"))
    text = virsh("dumpxml", "--inactive", NAME).stdout
    dom = domxml.parse_domain(text, "virsh dumpxml --inactive")
    assert dom.id is None and not dom.is_status
    assert dom.interfaces[0].inbound == domxml.BandwidthSide(average=1000, peak=2000, burst=512)
    assert dom.interfaces[0].outbound == domxml.BandwidthSide(average=500)
    save(f"{fixture_prefix()}_inactive.xml", text)


@pytest.mark.parametrize("side, needs, error", [
    (NATIVE_IN, "sfq", "sfq perturb 10) unexpected exit status 2: Error: Specified qdisc kind is unknown"),
    (NATIVE_OUT, "police", "police rate 500kbps burst 500kb mtu 64kb drop flowid :1) unexpected exit status 2"),
])
def test_native_bandwidth_start(fx_bridge, fx_guest, virsh, kernel_caps, side, needs, error):
    """libvirt 9 runs tc itself: inbound adds an sfq leaf, outbound an ingress police filter.

    Without sch_sfq / act_police the guest does not start at all, and libvirt
    leaves no tap behind.
    """
    started = virsh("create", "/dev/stdin", input=guest_xml(f"<bandwidth>{side}</bandwidth>"), check=False)
    if kernel_caps[needs]:
        assert started.returncode == 0, started.stderr
        qdiscs = run("tc", "qdisc", "show", "dev", TAPS[0]).stdout
        assert ("sfq" in qdiscs) if needs == "sfq" else ("ingress" in qdiscs)
    else:
        assert started.returncode != 0 and error in started.stderr, started.stderr
        assert not os.path.exists(f"/sys/class/net/{TAPS[0]}")
        assert virsh("domstate", NAME, check=False).returncode != 0
