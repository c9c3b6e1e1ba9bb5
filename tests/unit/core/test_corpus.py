"""Every file of the XML corpus through the reader, explain and the shaping planner (issue #12).

tests/fixtures/corpus/SOURCES says where each file comes from; the real
captures of tests/fixtures/domains run too. No file may raise anything but a
NetvirtError, and none of these does; where it matters the result is pinned.
"""
import glob
import os

import pytest

from nvhooks.policy import domxml, model as policy, resolve
from nvhooks.shaping import plan as tcplan
from nvhooks.shaping.caps import Caps
from nvhooks.vlan import hook as vlanhook

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "fixtures")
CORPUS = os.path.join(FIXTURES, "corpus")
FILES = sorted(glob.glob(os.path.join(CORPUS, "*.xml")) +
               [p for p in glob.glob(os.path.join(FIXTURES, "domains", "*.xml"))
                if not os.path.basename(p).startswith("hostile_")])
CAPS = Caps(leaf="fq_codel", tick_in_usec=15.625)
# a host that speaks about every port: a MAC rule matching all, with shaping and a VLAN
GROUPS = {"web": {"inbound": {"ceiling": "100mbit"}, "outbound": {"ceiling": "50mbit"}}}   # the fixtures' metadata
EVERYTHING = policy.parse_host_policy({"groups": GROUPS, "rules": [
    {"match": {"mac": "*"}, "inbound": {"average": "8mbit"}, "outbound": {"average": "4mbit"},
     "vlan": {"pvid": 100}}]})
GROUPS_ONLY = policy.parse_host_policy({"groups": GROUPS})


def _name(path):
    return os.path.relpath(path, FIXTURES)


def test_every_file_has_a_source():
    with open(os.path.join(CORPUS, "SOURCES"), encoding="utf-8") as handle:
        sources = handle.read()
    for path in glob.glob(os.path.join(CORPUS, "*.xml")):
        assert f"\n{os.path.basename(path)} |" in sources, path


@pytest.mark.parametrize("path", FILES, ids=_name)
@pytest.mark.parametrize("host", [GROUPS_ONLY, EVERYTHING], ids=["groups-only", "policy-for-all"])
def test_reader_explain_and_planner(path, host):
    with open(path, "rb") as handle:
        dom = domxml.parse_domain(handle.read(), source=path)
    explained = resolve.explain(dom, host)
    assert len(explained["ports"]) == len(dom.interfaces)
    for port in resolve.resolve(dom, host):
        plan = tcplan.plan_port(port, CAPS)
        if plan is not None:
            assert port.device in ("tap", "macvtap") and plan.dev == port.dev and plan.objects
        if port.device is None:
            assert not port.shaped and port.vlan is None
    # the VLAN hook's own choices (which ports, which bridge) need no kernel
    for port in vlanhook.vlan_ports(dom, host):
        assert port.device == "tap" and not port.ovs and port.type in ("bridge", "network")
        assert port.bridge or dom.id is None, port.label       # a running guest's port names its bridge
    vlanhook.used_vids(host, [dom])


def _ports(name, host=EVERYTHING):
    with open(os.path.join(CORPUS, name), "rb") as handle:
        dom = domxml.parse_domain(handle.read(), source=name)
    return resolve.resolve(dom, host)


def test_status_portgroup_expectations():
    net, ovs, macvtap, hostdev, isolated = _ports("libvirt_testdata_status_network_portgroup.xml",
                                                  policy.HostPolicy())
    assert (net.type, net.bridge, net.network) == ("network", "virbr0", "default portgroup engineering")
    assert net.sources["inbound"] == f"{resolve.NATIVE} from network default portgroup engineering"
    assert any("class 1:3 on the network's bridge virbr0" in n for n in net.notes)
    assert ovs.ovs and ovs.owners == {"qdiscs": None, "vlans": "openvswitch"} and ovs.native_vlan == "access 42"
    assert macvtap.device == "macvtap" and macvtap.type == "direct"
    assert hostdev.device is None and hostdev.type == "hostdev"
    assert isolated.native_isolated and isolated.bridge == "virbr5"


def test_non_devices_in_the_libvirt_kinds_file_are_never_planned():
    kinds = {p.type: p for p in _ports("libvirt_testdata_net_kinds.xml")}
    for kind in ("user", "vhostuser", "server", "client", "mcast", "udp", "null", "vdpa", "hostdev"):
        assert kinds[kind].device is None and tcplan.plan_port(kinds[kind], CAPS) is None, kind
    trunk = kinds["bridge"]
    assert trunk.native_vlan == "trunk 42 (native untagged), 48, 456" and trunk.native_isolated
    assert trunk.vlan is None and trunk.owners["vlans"] == "libvirt"       # never fight libvirt's <vlan>


def test_floor_only_network_port_never_fails():
    breth, floor = _ports("cloudstack_floor_network.xml", policy.HostPolicy())     # default: takeover
    assert breth.inbound.average == 25600 * 8192 and breth.sources["inbound"] == resolve.NATIVE
    assert not floor.shaped and tcplan.plan_port(floor, CAPS) is None
    assert any("floor only, no average" in n for n in floor.notes)
    assert any("only if that network has an inbound <bandwidth>" in n for n in floor.notes)


@pytest.mark.skipif(not os.path.exists(os.path.join(CORPUS, "libvirt9_status_network_direct.xml")),
                    reason="real capture not present")
def test_real_capture_status_and_hook_xml_agree():
    status = {p.index: p for p in _ports("libvirt9_status_network_direct.xml", policy.HostPolicy())}
    hook = {p.index: p for p in _ports("libvirt9_start_begin_network_direct.xml", policy.HostPolicy())}
    for index in status:
        assert (status[index].type, status[index].bridge, status[index].device) == \
            (hook[index].type, hook[index].bridge, hook[index].device), index
    assert [status[i].type for i in sorted(status)] == ["bridge", "network", "direct"]
    assert all(status[i].bridge for i in (0, 1))
