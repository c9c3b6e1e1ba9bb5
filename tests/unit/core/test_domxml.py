"""nvhooks.domxml: every fixture in tests/fixtures/domains and every error path."""
import gzip
import os
import subprocess
import sys

import pytest

from nvhooks.policy import domxml
from nvhooks.policy.domxml import BandwidthSide, Vlan, VlanTag
from nvhooks.errors import NetvirtError, XmlError

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "domains")
UUID = "11111111-2222-4333-8444-555555555555"


def load(name):
    path = os.path.join(FIXTURES, name)
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rb") as f:
        return f.read()


def parse(name):
    return domxml.parse_domain(load(name), name)


def minimal(devices="", extra=""):
    return (f"<domain type='kvm'><name>g</name><uuid>{UUID}</uuid>{extra}"
            f"<devices>{devices}</devices></domain>")


def bridge_port(inner="", mac="52:54:00:00:00:01"):
    return f"<interface type='bridge'><mac address='{mac}'/><source bridge='br0'/>{inner}</interface>"


# ---------------------------------------------------------------- real libvirt fixtures

def _real_pairs():
    """(live, status) fixture pairs written by regenerate.py from a real libvirtd."""
    names = sorted(os.listdir(FIXTURES))
    return [n for n in names if n.startswith("libvirt") and n.endswith("_live.xml")]


def test_real_fixtures_exist():
    # Written by tests/fixtures/domains/regenerate.py; must be committed.
    assert _real_pairs(), "no libvirt*_live.xml fixtures: run tests/fixtures/domains/regenerate.py"


@pytest.mark.parametrize("live_name", _real_pairs())
def test_real_live_and_status(live_name):
    live = parse(live_name)
    status = parse(live_name.replace("_live.xml", "_status.xml"))
    assert not live.is_status and status.is_status
    assert status.state == "running" and status.pid > 1
    assert live.state is None and live.pid is None
    assert (live.name, live.uuid, live.id) == (status.name, status.uuid, status.id)
    assert live.id is not None and live.type == "qemu"
    assert [i.type for i in live.interfaces] == ["bridge", "ethernet"]
    for a, b in zip(live.interfaces, status.interfaces):
        assert (a.mac, a.target_dev, a.source_bridge, a.inbound, a.outbound) == \
               (b.mac, b.target_dev, b.source_bridge, b.inbound, b.outbound)
    br, eth = status.interfaces
    assert br.target_dev.startswith("nvt") and eth.target_dev.startswith("nvt")
    assert br.source_bridge.startswith("nvt") and eth.source_bridge is None
    assert br.mac == "52:54:00:4e:56:01" and eth.mac == "52:54:00:4e:56:02"
    assert br.alias == "net0" and eth.alias == "net1"
    assert status.policy_element is not None
    assert status.policy_element.tag == "{%s}policy" % domxml.NS_NETVIRT
    assert status.interface_by_dev(eth.target_dev) is eth


@pytest.mark.parametrize("live_name", _real_pairs())
def test_real_inactive_keeps_native_bandwidth(live_name):
    # libvirt 9 on a kernel without sch_sfq/act_police cannot start this guest
    dom = parse(live_name.replace("_live.xml", "_inactive.xml"))
    assert dom.id is None and not dom.is_status
    br, eth = dom.interfaces
    assert br.target_dev is None or br.target_dev.startswith("nvt")
    assert br.inbound == BandwidthSide(average=1000, peak=2000, burst=512)
    assert br.outbound == BandwidthSide(average=500)
    assert eth.inbound is None and eth.outbound is None


# ---------------------------------------------------------------- hand-written fixtures

def test_nova_linuxbridge():
    dom = parse("nova_linuxbridge.xml")
    assert (dom.name, dom.type, dom.id) == ("instance-0000002a", "kvm", 7)
    assert dom.uuid == "8f6b1c4e-2d3a-4e5f-9a0b-1c2d3e4f5a6b"  # normalised to lower case
    assert dom.policy_element is None  # nova:instance is not ours
    br, eth = dom.interfaces
    assert (br.index, br.type, br.mac, br.target_dev, br.source_bridge) == \
           (0, "bridge", "fa:16:3e:5c:31:0a", "tap5c310a1d-2e", "brq7e3f1c2a-4b")
    # quota:vif_inbound_* / quota:vif_outbound_* of the flavor, KiB/s and KiB
    assert br.inbound == BandwidthSide(average=16384, peak=32768, burst=3276)
    assert br.outbound == BandwidthSide(average=32768, peak=65536, burst=6553)
    assert (br.model, br.mtu, br.alias) == ("virtio", 1450, "net0")
    assert (eth.type, eth.target_dev, eth.source_bridge) == ("ethernet", "tapa1b2c3d4-e5", None)
    assert eth.inbound == br.inbound and eth.mtu == 1500


def test_cloudstack():
    dom = parse("cloudstack_vm.xml")
    assert dom.name == "i-2-45-VM" and dom.description == "Debian GNU/Linux 12 (64-bit)"
    assert [i.source_bridge for i in dom.interfaces] == ["cloudbr0", "breth1-200", "brvx-5001"]
    assert [i.target_dev for i in dom.interfaces] == ["vnet7", "vnet8", "vnet9"]
    assert dom.interfaces[0].inbound == dom.interfaces[0].outbound == BandwidthSide(average=25000, peak=25000)
    assert dom.interfaces[1].inbound == BandwidthSide(average=12500, peak=12500)
    assert dom.interfaces[2].inbound is None and dom.interfaces[2].outbound is None
    assert {i.link_state for i in dom.interfaces} == {"up"}


def test_ovs_trunk_and_access():
    dom = parse("ovs_trunk.xml")
    trunk, access, net = dom.interfaces
    assert dom.title == "Edge firewall"
    assert {i.virtualport_type for i in dom.interfaces} == {"openvswitch"}
    assert trunk.vlan == Vlan(True, (VlanTag(42, "untagged"), VlanTag(47), VlanTag(50)))
    assert access.vlan == Vlan(False, (VlanTag(100),))
    assert access.link_state == "down"
    # several tags without trunk='yes' are a trunk for libvirt too
    assert net.vlan == Vlan(True, (VlanTag(200, "tagged"), VlanTag(201)))
    assert (net.type, net.source_network, net.source_bridge) == ("network", "ovs-net", "ovsbr1")


def test_virt_install_live():
    dom = parse("virt_install_live.xml")
    net, direct, br, user = dom.interfaces
    assert (net.source_network, net.source_bridge, net.target_dev) == ("default", "virbr0", "vnet0")
    assert (direct.type, direct.source_dev, direct.target_dev) == ("direct", "eno1", "macvtap0")
    assert (br.source_bridge, br.model) == ("br0", "e1000e")
    assert (user.type, user.target_dev, user.source_bridge) == ("user", None, None)
    assert dom.interface_by_mac("52:54:00:A4:07:E1") is br
    assert dom.interface_by_dev("nope") is None and dom.interface_by_mac("00:00:00:00:00:00") is None


def test_virt_install_inactive():
    dom = parse("virt_install_inactive.xml")
    assert dom.id is None
    assert [i.type for i in dom.interfaces] == ["network", "direct", "bridge", "vhostuser", "hostdev"]
    assert all(i.target_dev is None for i in dom.interfaces)
    assert dom.interfaces[0].source_bridge is None  # only live XML names the network's bridge
    assert dom.interfaces[4].source_dev is None


def test_netvirt_policy_metadata():
    dom = parse("netvirt_policy.xml")
    assert dom.title == "Web server & cache"
    assert dom.description.startswith("Shaped by netvirt") and dom.description.endswith("Second line.")
    pol = dom.policy_element
    assert pol is not None and pol.tag == "{%s}policy" % domxml.NS_NETVIRT
    assert len(pol.findall("{%s}interface" % domxml.NS_NETVIRT)) == 2
    first, second, third = dom.interfaces
    assert first.inbound == BandwidthSide(average=1000, peak=5000, burst=1024, floor=200)
    assert first.outbound == BandwidthSide(average=128)
    assert second.inbound is None and second.outbound is None  # empty <bandwidth/>
    assert (third.type, third.mac, third.target_dev) == ("ethernet", None, None)


def test_domain_equality_ignores_elements():
    assert parse("netvirt_policy.xml") == parse("netvirt_policy.xml")
    assert "policy_element" not in repr(parse("netvirt_policy.xml"))


# ---------------------------------------------------------------- hostile fixtures

@pytest.mark.parametrize("name, words", [
    ("hostile_billion_laughs.xml", "DOCTYPE with entity declarations"),
    ("hostile_external_entity.xml", "DOCTYPE with entity declarations"),
    ("hostile_external_dtd.xml", "refusing DOCTYPE"),
    ("hostile_malformed.xml", "malformed XML at line 7"),
    ("hostile_wrong_root.xml", "root element is <hookData>"),
    ("hostile_oversized.xml.gz", "4194305 bytes is above the limit of 4194304"),
])
def test_hostile(name, words):
    with pytest.raises(XmlError) as err:
        parse(name)
    assert words in str(err.value) and err.value.where == name
    assert isinstance(err.value, NetvirtError)
    with pytest.raises(XmlError):
        domxml.domain_name_uuid(load(name), name)


@pytest.mark.parametrize("name", ["hostile_billion_laughs.xml", "hostile_external_entity.xml",
                                  "hostile_external_dtd.xml"])
def test_hostile_utf16_still_refused(name):
    # The byte scan cannot see "<!DOCTYPE" in UTF-16; the parser-side check must.
    text = load(name).decode().replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>')
    with pytest.raises(XmlError, match="DOCTYPE|entity"):
        domxml.parse_xml(text.encode("utf-16"), name)


def test_external_entity_not_read(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("TOPSECRET")
    xml = (f'<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE domain [<!ENTITY s SYSTEM "file://{secret}">]>'
           f"<domain><name>&s;</name><uuid>{UUID}</uuid></domain>")
    with pytest.raises(XmlError) as err:
        domxml.parse_domain(xml.encode("utf-16"))
    assert "TOPSECRET" not in str(err.value)


def test_doctype_inside_text_is_fine():
    dom = domxml.parse_domain(minimal(extra="<description><![CDATA[<!DOCTYPE x>]]></description>"))
    assert dom.description == "<!DOCTYPE x>"


def test_oversized_str_and_limit_exact():
    pad = domxml.MAX_XML_BYTES - len(minimal(extra="<description></description>"))
    assert domxml.parse_domain(minimal(extra="<description>%s</description>" % ("y" * pad))).name == "g"
    with pytest.raises(XmlError, match="above the limit"):
        domxml.parse_domain(minimal(extra="<description>%s</description>" % ("y" * (pad + 1))))


# ---------------------------------------------------------------- error paths

@pytest.mark.parametrize("data, words", [
    (b"", "empty input"),
    ("  \n", "empty input"),
    ("<domain><name>g</name>", "malformed XML at line 1"),
    ("<domain>\n<name>g</name>\n<uuid>x</uuid>\n<oops>\n</domain>", "malformed XML at line 5"),
    ("<network><name>n</name></network>", "root element is <network>"),
    ("<x:domain xmlns:x='urn:x'/>", "root element is <{urn:x}domain>"),
    ("<domstatus state='running' pid='1'/>", "<domstatus> without <domain>"),
    (f"<domain><uuid>{UUID}</uuid></domain>", "domain has no <name>"),
    (f"<domain><name>  </name><uuid>{UUID}</uuid></domain>", "domain has no <name>"),
    ("<domain><name>g</name></domain>", "domain g has no <uuid>"),
    (f"<domain id='x'><name>g</name><uuid>{UUID}</uuid></domain>", "domain id='x' is not"),
    (f"<domstatus pid='-3'><domain><name>g</name><uuid>{UUID}</uuid></domain></domstatus>", "domstatus pid='-3'"),
])
def test_document_errors(data, words):
    with pytest.raises(XmlError) as err:
        domxml.parse_domain(data, "stdin")
    assert words in str(err.value)
    assert str(err.value).startswith("stdin: ") and err.value.where == "stdin"


def test_inactive_id_minus_one():
    assert domxml.parse_domain(f"<domain id='-1'><name>g</name><uuid>{UUID}</uuid></domain>").id is None


def test_not_bytes():
    with pytest.raises(XmlError, match="expected bytes or str, got int"):
        domxml.parse_xml(42, "stdin")


@pytest.mark.parametrize("side, attr, value", [
    ("inbound", "average", "1e3"),
    ("inbound", "peak", "-5"),
    ("outbound", "burst", ""),
    ("inbound", "floor", "10k"),
    ("outbound", "average", "\u0661\u0662"),  # Arabic-Indic digits: isdigit() but not libvirt's
])
def test_bad_bandwidth_names_port_and_attribute(side, attr, value):
    good = bridge_port(mac="52:54:00:00:00:01")
    bad = bridge_port(f"<bandwidth><{side} {attr}='{value}'/></bandwidth>", mac="52:54:00:00:00:AB")
    with pytest.raises(XmlError) as err:
        domxml.parse_domain(minimal(good + bad), "web1.xml")
    msg = str(err.value)
    assert "interface #1 (mac 52:54:00:00:00:ab)" in err.value.where and "web1.xml" in err.value.where
    assert f"bandwidth {side} {attr}=" in msg and "not a non-negative integer" in msg


def test_bandwidth_out_of_range():
    with pytest.raises(XmlError, match="bandwidth inbound average=18446744073709551616 is out of range"):
        domxml.parse_domain(minimal(bridge_port("<bandwidth><inbound average='18446744073709551616'/>"
                                                "</bandwidth>")))
    dom = domxml.parse_domain(minimal(bridge_port("<bandwidth><inbound average=' 18446744073709551615 '/>"
                                                  "</bandwidth>")))
    assert dom.interfaces[0].inbound.average == 2 ** 64 - 1


def test_bad_port_without_mac():
    with pytest.raises(XmlError) as err:
        domxml.parse_domain(minimal("<interface type='ethernet'><bandwidth><outbound average='x'/>"
                                    "</bandwidth></interface>"))
    assert "interface #0 (mac unset)" in str(err.value)


@pytest.mark.parametrize("inner, words", [
    ("<vlan><tag id='abc'/></vlan>", "vlan tag id='abc'"),
    ("<vlan><tag id='4096'/></vlan>", "vlan tag id=4096 is out of range (max 4095)"),
    ("<vlan><tag/></vlan>", "<vlan><tag> without id"),
    ("<vlan trunk='yes'/>", "<vlan> without <tag>"),
    ("<mtu size='big'/>", "mtu size='big'"),
])
def test_bad_port_elements(inner, words):
    with pytest.raises(XmlError) as err:
        domxml.parse_domain(minimal(bridge_port(inner)))
    assert words in str(err.value) and "interface #0 (mac 52:54:00:00:00:01)" in str(err.value)


def test_str_input_with_declaration_and_comments():
    dom = domxml.parse_domain('<?xml version="1.0" encoding="UTF-8"?>\n<!-- managed by x -->\n'
                              + minimal(bridge_port("<?pi x?><!-- c --><target dev='vnet0'/>")))
    assert dom.interfaces[0].target_dev == "vnet0" and dom.interfaces[0].source_bridge == "br0"


def test_empty_attributes_are_none():
    dom = domxml.parse_domain(minimal("<interface type='bridge'><mac address=''/><source bridge=''/>"
                                      "<target dev=''/></interface>"))
    iface = dom.interfaces[0]
    assert (iface.mac, iface.source_bridge, iface.target_dev) == (None, None, None)


# ---------------------------------------------------------------- helpers

def test_domain_name_uuid():
    assert domxml.domain_name_uuid(load("ovs_trunk.xml")) == ("fw-edge-1", "c0ffee00-1234-4abc-9def-0123456789ab")
    status = f"<domstatus state='running' pid='9'><domain><name>s</name><uuid>{UUID}</uuid></domain></domstatus>"
    assert domxml.domain_name_uuid(status) == ("s", UUID)
    with pytest.raises(XmlError, match="no <uuid>"):
        domxml.domain_name_uuid("<domain><name>g</name></domain>")


def test_read_status_xml(tmp_path):
    path = tmp_path / "g.xml"
    port = bridge_port("<target dev='vnet9'/>")
    path.write_text(f"<domstatus state='paused' reason='user' pid='4242'>"
                    f"<domain type='qemu' id='5'><name>g</name><uuid>{UUID}</uuid>"
                    f"<devices>{port}</devices></domain></domstatus>")
    dom = domxml.read_status_xml(str(path))
    assert (dom.is_status, dom.state, dom.pid, dom.id, dom.type) == (True, "paused", 4242, 5, "qemu")
    assert dom.interfaces[0].target_dev == "vnet9"
    assert dom.element.tag == "domain"


def test_read_status_xml_errors(tmp_path):
    missing = str(tmp_path / "gone.xml")
    with pytest.raises(XmlError) as err:
        domxml.read_status_xml(missing)
    assert err.value.where == missing and "No such file" in str(err.value)
    assert isinstance(err.value.__cause__, FileNotFoundError)
    big = tmp_path / "big.xml"
    big.write_bytes(load("hostile_oversized.xml.gz"))
    with pytest.raises(XmlError, match="above the limit") as err:
        domxml.read_status_xml(str(big))
    assert err.value.where == str(big)


def test_import_does_not_load_the_parser():
    # Hook events without XML work must not pay for the parser.
    code = "import sys, nvhooks.policy.domxml; print(any(m in sys.modules for m in ('pyexpat', 'lxml')))"
    here = os.path.dirname(os.path.dirname(domxml.__file__))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=os.path.dirname(here)))
    assert out.stdout.strip() == "False"


def test_parsing_needs_only_the_standard_library():
    # a hypervisor needs no python3-lxml: a domain parses with lxml unimportable
    code = ("import sys; sys.modules['lxml'] = None; from nvhooks.policy import domxml; "
            f"print(domxml.parse_domain({minimal()!r}).name)")
    here = os.path.dirname(os.path.dirname(domxml.__file__))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=os.path.dirname(here)))
    assert out.stdout.strip() == "g"


@pytest.mark.parametrize("prolog", [
    "<!-- <domain> -->",                                   # a tag inside a leading comment
    '<?xml version="1.0"?>\n<!-- a -->\n<?pi x?>\n',      # declaration, comment and PI
    "<!-- one --><!-- <two> -->",
])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_doctype_after_leading_comments_is_refused_before_the_parser(tmp_path, prolog, encoding):
    # Issue #11.8: a comment in front of the DOCTYPE got past the byte scan and
    # the parser (lxml then) opened the external subset (seen: "Content error in the external subset").
    dtd = tmp_path / "ext.dtd"
    dtd.write_text("TOPSECRET: not a DTD; a parser that reads it says so")
    text = (prolog + f'<!DOCTYPE domain SYSTEM "file://{dtd}"><domain><name>g</name><uuid>{UUID}</uuid></domain>')
    if encoding == "utf-16":
        text = text.replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>')
    with pytest.raises(XmlError) as err:
        domxml.parse_domain(text.encode(encoding))
    assert "refusing DOCTYPE" in str(err.value) and "external subset" not in str(err.value)


@pytest.mark.parametrize("doctype", [
    '<!DOCTYPE domain SYSTEM "file://{dtd}">',
    '<!DOCTYPE domain [<!ENTITY s SYSTEM "file://{dtd}">]>',
    '<!DOCTYPE domain [<!ENTITY % p SYSTEM "file://{dtd}"> %p;]>',
])
def test_parser_refuses_doctype_without_the_byte_scan(tmp_path, doctype):
    # second net, for encodings the byte scan cannot read: expat stops at the
    # declaration itself, and nothing external is opened
    dtd = tmp_path / "ext.dtd"
    dtd.write_text('<!ENTITY s "TOPSECRET">')
    data = (doctype.format(dtd=dtd) + f"<domain><name>&s;</name><uuid>{UUID}</uuid></domain>").encode()
    with pytest.raises(XmlError, match="refusing DOCTYPE") as err:
        domxml._expat_tree(data, "stdin")  # pylint: disable=protected-access
    assert "TOPSECRET" not in str(err.value) and err.value.where == "stdin"


def test_undeclared_entity_is_malformed():
    with pytest.raises(XmlError, match="malformed XML at line 1: undefined entity"):
        domxml.parse_domain(f"<domain><name>&ext;</name><uuid>{UUID}</uuid></domain>", "stdin")


def test_nesting_limit():
    deep = "<a>" * 300 + "</a>" * 300
    with pytest.raises(XmlError, match="elements nested deeper than 256") as err:
        domxml.parse_domain(minimal(extra=f"<description>{deep}</description>"), "stdin")
    assert err.value.where == "stdin"
    ok = "<a>" * 250 + "</a>" * 250
    assert domxml.parse_domain(minimal(extra=f"<metadata>{ok}</metadata>")).name == "g"


def test_namespaces_comments_and_entities():
    # ElementTree's names ({uri}local), attributes too; comments and PIs are dropped
    root = domxml.parse_xml('<?xml version="1.0"?><!-- c --><r xmlns:a="urn:a" a:k="v" k="w">'
                            "<!-- x --><?pi y?><a:c>1 &lt; 2 &#x41;</a:c></r>")
    assert root.tag == "r" and root.attrib == {"{urn:a}k": "v", "k": "w"}
    assert [child.tag for child in root] == ["{urn:a}c"] and root[0].text == "1 < 2 A"


def test_utf16_and_latin1_documents():
    text = f'<?xml version="1.0" encoding="%s"?><domain><name>g\u00e9</name><uuid>{UUID}</uuid></domain>'
    assert domxml.parse_domain((text % "UTF-16").encode("utf-16")).name == "g\u00e9"
    assert domxml.parse_domain((text % "ISO-8859-1").encode("latin-1")).name == "g\u00e9"
