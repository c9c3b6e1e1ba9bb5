"""VLAN core on whatever kernel runs the lane: detection and clear errors.

On a kernel without bridge VLAN filtering (the build host) every VLAN call
must fail closed with the same clear error and change nothing; on a kernel
with it (the real-kernel lane) the same calls succeed. Expectations come
from the kernel probe, never from the test's host name.
"""
import logging

import pytest

from nvhooks.policy import domxml, model as policy
from nvhooks.kernel import links as klinks, netlink
from nvhooks.vlan import apply as vlanapply, hook as vlanhook
from nvhooks.errors import KernelError, PolicyError


@pytest.fixture
def lan(netns, veth, bridge, kprobe, nsrun):
    """A netns with bridge b0 (VLAN filtering when the kernel has it), port p0 in it."""
    ns = netns()
    capable = kprobe.bridge_vlan_filtering()
    br = bridge(ns=ns, name="nvtb0", **({"vlan_filtering": "1"} if capable else {}))
    port = veth(ns, ns, name="nvtp0", peer="nvtq0")
    other = veth(ns, ns, name="nvtp1", peer="nvtq1")
    nsrun(ns, "ip", "link", "set", port.name, "master", br)
    with netlink.ipr(ns) as nl:
        yield ns, br, nl, capable


def _bridge_table(nsrun, ns, dev):
    out = nsrun(ns, "bridge", "vlan", "show", "dev", dev).stdout
    return out


def test_capability_matches_probe(lan):
    ns, br, nl, capable = lan
    link = klinks.by_name(nl)[br]
    assert link.vlan_capable is capable
    assert link.vlan_filtering is capable


def test_missing_port_is_named(lan):
    ns, br, nl, capable = lan
    with pytest.raises(KernelError, match=r"port nvtnope: no such interface \(netns nvt"):
        vlanapply.set_port(nl, "nvtnope", vlanapply.wish(100), netns=ns)


def test_port_outside_any_bridge(lan):
    ns, br, nl, capable = lan
    with pytest.raises(PolicyError, match=r"port nvtp1: is not a port of any bridge"):
        vlanapply.set_port(nl, "nvtp1", vlanapply.wish(100), bridge=br, netns=ns)


def test_port_in_another_bridge(lan, bridge, nsrun):
    ns, br, nl, capable = lan
    bridge(ns=ns, name="nvtb1")
    with pytest.raises(PolicyError, match="port nvtp0: is a port of bridge nvtb0, not of bridge nvtb1"):
        vlanapply.set_port(nl, "nvtp0", vlanapply.wish(100), bridge="nvtb1", netns=ns)


def test_no_filtering_fails_closed_or_applies(lan, nsrun):
    """Without kernel support: the clear error and no change; with it: applied."""
    ns, br, nl, capable = lan
    before = _bridge_table(nsrun, ns, "nvtp0")
    if not capable:
        with pytest.raises(KernelError, match="bridge nvtb0: this kernel has no bridge VLAN filtering"):
            vlanapply.set_port(nl, "nvtp0", vlanapply.wish(100), bridge=br, netns=ns)
        with pytest.raises(KernelError, match="no bridge VLAN filtering"):
            vlanapply.set_bridge(nl, br, vlan_filtering=True)
        with pytest.raises(KernelError, match="no bridge VLAN filtering"):
            vlanapply.query(nl, port="nvtp0")
        # the raw kernel answer behind the detection, seen on the build host
        from pyroute2.netlink.exceptions import NetlinkError
        with pytest.raises(NetlinkError) as err:
            nl.link("set", index=klinks.by_name(nl)[br].index, kind="bridge", br_vlan_filtering=1)
        assert err.value.code == 95          # EOPNOTSUPP
        assert _bridge_table(nsrun, ns, "nvtp0") == before
        assert klinks.by_name(nl)[br].vlan_filtering is False
    else:
        result = vlanapply.set_port(nl, "nvtp0", vlanapply.wish(100), bridge=br, netns=ns)
        assert result["changed"] and result["after"]["pvid"] == 100
        assert "100" in _bridge_table(nsrun, ns, "nvtp0")


GUEST = b"""<domain type='qemu'><name>nvtguest</name><uuid>4f1ad3a6-5b9e-4c61-9d7e-0f5c1b1a2b3c</uuid>
<metadata><nv:policy xmlns:nv='https://github.com/netvirt/libvirt_hooks/xmlns/policy/1'>
<nv:interface mac='52:54:00:00:00:01'><nv:vlan pvid='100' tagged='200-201'/></nv:interface>
</nv:policy></metadata>
<devices><interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='nvtb0'/>
<target dev='nvtp0'/></interface></devices></domain>"""


class _Ev:
    driver, op, subop = "qemu", "started", "begin"


@pytest.mark.parametrize("failure", ["abort", "warn"])
def test_handler_fails_closed_or_warns(lan, caplog, failure):
    ns, br, nl, capable = lan
    host = policy.parse_host_policy({"settings": {"vlan_failure": failure}})
    assert vlanhook.wants(_Ev, GUEST, host)
    domain = domxml.parse_domain(GUEST)
    log = logging.getLogger("nvt.vlan")
    caplog.set_level(logging.DEBUG, "nvt.vlan")
    if capable:
        changes = vlanhook.apply_guest(domain, host, log, ipr=nl)
        assert changes and changes[0]["after"]["tagged"] == "200-201"
        return
    if failure == "abort":
        with pytest.raises(KernelError) as err:
            vlanhook.apply_guest(domain, host, log, ipr=nl)
        text = str(err.value)
        assert "guest nvtguest" in text and "nvtp0" in text and "no bridge VLAN filtering" in text
        assert [r.levelname for r in caplog.records] == ["ERROR"]
    else:
        assert vlanhook.apply_guest(domain, host, log, ipr=nl) == []
        assert [r.levelname for r in caplog.records] == ["WARNING"]
        assert "NOT applied" in caplog.records[0].getMessage() and "nvtp0" in caplog.records[0].getMessage()
