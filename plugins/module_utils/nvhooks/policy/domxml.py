# -*- coding: utf-8 -*-
# Copyright: netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Safe reader for libvirt domain XML (``<domain>`` and status ``<domstatus>``).

Only reads what the hooks need, with the standard library's expat (no lxml:
a hypervisor needs one less package, and the agent 5 MiB less memory). The
parser is imported inside functions: most hook events never look at XML.
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

from ..errors import XmlError
from .record import Record
from .xmlns import NS_NETVIRT

MAX_XML_BYTES = 4 * 1024 * 1024
MAX_XML_DEPTH = 256     # libxml2's own default; libvirt's XML is about 8 deep

_U64_MAX = 2 ** 64 - 1  # libvirt stores bandwidth values as unsigned long long


class BandwidthSide(Record):
    """One direction of ``<bandwidth>``, raw libvirt integers."""

    average: Optional[int] = None  # KiB/s
    peak: Optional[int] = None  # KiB/s
    burst: Optional[int] = None  # KiB
    floor: Optional[int] = None  # KiB/s (inbound only in libvirt)


class VlanTag(Record):
    id: int
    native_mode: Optional[str] = None  # 'tagged' | 'untagged' | None


class Vlan(Record):
    trunk: bool
    tags: Tuple[VlanTag, ...]


class Interface(Record):
    index: int
    type: str
    mac: Optional[str]
    target_dev: Optional[str]
    source_bridge: Optional[str]
    source_network: Optional[str]
    source_dev: Optional[str]
    model: Optional[str]
    virtualport_type: Optional[str]
    inbound: Optional[BandwidthSide]
    outbound: Optional[BandwidthSide]
    vlan: Optional[Vlan]
    alias: Optional[str]
    link_state: Optional[str] = None  # <link state='up|down'/>
    mtu: Optional[int] = None  # <mtu size=.../>
    # Status XML of a type='network' port: what the network gave it (<actual>).
    # source_bridge/source_dev/virtualport_type/inbound/outbound/vlan above are
    # the effective values (<actual>'s when it has them); these say where from.
    actual_type: Optional[str] = None
    portgroup: Optional[str] = None
    bandwidth_from: Optional[str] = None  # 'interface' | 'network' (the network or its portgroup)
    vlan_from: Optional[str] = None       # 'interface' | 'network'
    isolated: bool = False                # <port isolated='yes'/>
    floor_class: Optional[int] = None     # <actual><bandwidth classID>: libvirt's floor class on the bridge
    xml_notes: Tuple[str, ...] = ()       # what the reader decided about odd but accepted XML

    @property
    def kind(self) -> str:
        """The real connection type: <actual type> of a network port, else the type."""
        return self.actual_type or self.type

    @property
    def label(self) -> str:
        """How errors and logs name this port."""
        return f"interface #{int(self.index)} (mac {self.mac or 'unset'})"


class Domain(Record):
    name: str
    uuid: str
    type: Optional[str]
    id: Optional[int]
    title: Optional[str]
    description: Optional[str]
    interfaces: Tuple[Interface, ...]
    policy_element: object
    is_status: bool
    state: Optional[str] = None  # <domstatus state=...>
    pid: Optional[int] = None  # <domstatus pid=...>: the qemu process
    element: object = None  # <domain>
    # elements compare by identity: keep them out of ==, hash and repr
    _unequal = ("policy_element", "element")

    def interface_by_dev(self, dev: str) -> Optional[Interface]:
        for iface in self.interfaces:
            if iface.target_dev == dev:
                return iface
        return None

    def interface_by_mac(self, mac: str) -> Optional[Interface]:
        mac = mac.lower()
        for iface in self.interfaces:
            if iface.mac == mac:
                return iface
        return None


def _prolog_has_doctype(data):
    """Is there a DOCTYPE (or any other ``<!`` declaration) in the prolog?

    XML allows only blanks, comments and processing instructions before it,
    so those are skipped whole: a ``<`` inside a comment must not end the scan.
    UTF-16/32 markup is read as its ASCII, without the NUL bytes.
    """
    probe = data.replace(b"\x00", b"") if b"\x00" in data[:4] else data
    pos = 0
    while True:
        start = probe.find(b"<", pos)
        if start < 0:
            return False
        for opener, closer in ((b"<!--", b"-->"), (b"<?", b"?>")):
            if probe.startswith(opener, start):
                end = probe.find(closer, start + len(opener))
                if end < 0:
                    return False      # unterminated: the parser refuses it
                pos = end + len(closer)
                break
        else:
            return probe.startswith(b"<!", start)


def _doctype_error(source, data):
    what = "with entity declarations " if b"<!ENTITY" in data else ""
    return XmlError(
        f"refusing DOCTYPE {what}(entity expansion and external entities "
        "are not accepted; libvirt never writes a DOCTYPE)",
        where=source,
    )


def parse_xml(data: Union[bytes, str], source: str = "XML"):
    """Parse untrusted XML safely; return the root element (ElementTree API).

    Refuses input over MAX_XML_BYTES, nesting deeper than MAX_XML_DEPTH and
    any DOCTYPE (libvirt never writes one, and that is where entity bombs and
    external entities live).
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    elif not isinstance(data, (bytes, bytearray)):
        raise XmlError(f"expected bytes or str, got {type(data).__name__}", where=source)
    if len(data) > MAX_XML_BYTES:
        raise XmlError(f"{len(data)} bytes is above the limit of {int(MAX_XML_BYTES)} bytes", where=source)
    if not data.strip():
        raise XmlError("empty input, expected XML", where=source)
    # Before the parser sees entity declarations or an external subset at all.
    if _prolog_has_doctype(data):
        raise _doctype_error(source, data)

    return _expat_tree(bytes(data), source)


def _expat_tree(data, source):
    """Build the tree with the stdlib's expat and ElementTree's TreeBuilder.

    Second net for what the byte scan cannot read (UTF-16, 8-bit codecs): a
    DOCTYPE or entity declaration stops the parse where expat meets it, before
    any entity is defined; external references are never fetched; parameter
    entities are never parsed. Comments and processing instructions are dropped.
    """
    from xml.etree.ElementTree import TreeBuilder
    from xml.parsers import expat

    builder, depth = TreeBuilder(), [0]

    def refuse(*_args):
        raise _doctype_error(source, data)

    def start(name, attrs):
        depth[0] += 1
        if depth[0] > MAX_XML_DEPTH:
            raise XmlError(f"elements nested deeper than {int(MAX_XML_DEPTH)}", where=source)
        builder.start(_clark(name), {_clark(key): value for key, value in attrs.items()})

    def end(name):
        depth[0] -= 1
        builder.end(_clark(name))

    parser = expat.ParserCreate(None, "}")     # namespace URI and local name, joined by "}"
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = parser.EntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.StartElementHandler, parser.EndElementHandler = start, end
    parser.CharacterDataHandler = builder.data
    parser.buffer_text = True
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise XmlError(f"malformed XML at line {exc.lineno}: {expat.ErrorString(exc.code)}", where=source) from None
    return builder.close()


def _clark(name):
    """expat's "uri}local" as ElementTree's "{uri}local"; names without a namespace as they are."""
    return "{" + name if "}" in name else name


def _attr(elem, path, name):
    node = elem.find(path)
    if node is None:
        return None
    value = node.get(name)
    return value if value else None


def _text(elem, path):
    value = elem.findtext(path)
    if value is None:
        return None
    value = value.strip()
    return value or None


def _uint(value, what, where, limit=_U64_MAX):
    text = value.strip()
    if not text.isdigit() or not text.isascii():
        raise XmlError(f"{what}={value!r} is not a non-negative integer", where=where)
    number = int(text)
    if number > limit:
        raise XmlError(f"{what}={text} is out of range (max {int(limit)})", where=where)
    return number


def _bandwidth_side(node, where):
    if node is None:
        return None
    values = {}
    for attr in ("average", "peak", "burst", "floor"):
        raw = node.get(attr)
        if raw is not None:
            values[attr] = _uint(raw, f"bandwidth {node.tag} {attr}", where)
    return BandwidthSide(**values)


def _vlan(node, where):
    """libvirt's own rules (virNetDevVlanParse): what it refuses, we refuse, naming the port."""
    if node is None:
        return None
    tags, native = [], 0
    for tag in node.findall("tag"):
        raw = tag.get("id")
        if raw is None:
            raise XmlError("<vlan><tag> without id", where=where)
        mode = tag.get("nativeMode")
        if mode is not None:
            native += 1
            if mode not in ("tagged", "untagged"):
                raise XmlError(f"<vlan><tag nativeMode={mode!r}>: libvirt knows only tagged and untagged", where=where)
        tags.append(VlanTag(_uint(raw, "vlan tag id", where, 4095), mode))
    if not tags:
        raise XmlError("<vlan> without <tag>", where=where)
    if native > 1:
        raise XmlError("<vlan> has more than one native tag (nativeMode)", where=where)
    trunk = node.get("trunk")
    if trunk is not None and trunk.lower() not in ("yes", "no"):
        raise XmlError(f"<vlan trunk={trunk!r}>: must be yes or no", where=where)
    if trunk is not None and trunk.lower() == "no" and (len(tags) > 1 or native):
        raise XmlError("<vlan trunk='no'> with several tags or a native tag (libvirt refuses it too)", where=where)
    # libvirt: several tags imply a trunk even without trunk='yes'.
    return Vlan(trunk=(trunk or "").lower() == "yes" or len(tags) > 1, tags=tuple(tags))


def _bandwidth(node, where, notes):
    """(inbound, outbound) of a <bandwidth> element.

    Several <inbound> (or <outbound>): libvirt's parser takes the first
    (virXMLNodeGetSubelement), so do we, and say so in ``notes``.
    """
    if node is None:
        return None, None
    sides = []
    for name in ("inbound", "outbound"):
        found = node.findall(name)
        if len(found) > 1:
            notes.append(f"<bandwidth> has {len(found)} <{name}> elements: only the first counts "
                         "(as in libvirt's parser); the others are ignored")
        sides.append(_bandwidth_side(found[0] if found else None, where))
    return tuple(sides)


def _isolated(node):
    return (_attr(node, "port", "isolated") or "").lower() == "yes"


def _actual(node, where, own):
    """Fold a status XML <actual> into the port's effective values (own: the interface's)."""
    actual = node.find("actual")
    if actual is None:
        return dict(own, bandwidth_from="interface" if own["inbound"] or own["outbound"] else None,
                    vlan_from="interface" if own["vlan"] else None)
    notes = list(own["xml_notes"])
    inbound, outbound = _bandwidth(actual.find("bandwidth"), where, notes)
    klass = _attr(actual, "bandwidth", "classID")
    vlan = _vlan(actual.find("vlan"), where)
    # libvirt copies the interface's own <bandwidth>/<vlan> into <actual>, else the portgroup's/network's
    bw_own = (own["inbound"], own["outbound"]) == (inbound, outbound) and (inbound or outbound)
    out = dict(own, actual_type=actual.get("type") or None,
               source_bridge=_attr(actual, "source", "bridge") or own["source_bridge"],
               source_dev=_attr(actual, "source", "dev") or own["source_dev"],
               virtualport_type=_attr(actual, "virtualport", "type") or own["virtualport_type"],
               isolated=own["isolated"] or _isolated(actual), xml_notes=tuple(notes),
               floor_class=None if klass is None else _uint(klass, "bandwidth classID", where))
    if inbound or outbound:
        out.update(inbound=inbound, outbound=outbound, bandwidth_from="interface" if bw_own else "network")
    else:
        out["bandwidth_from"] = "interface" if own["inbound"] or own["outbound"] else None
    if vlan is not None:
        out.update(vlan=vlan, vlan_from="interface" if vlan == own["vlan"] else "network")
    else:
        out["vlan_from"] = "interface" if own["vlan"] else None
    return out


def _interface(index, node, source):
    mac = _attr(node, "mac", "address")
    mac = mac.lower() if mac else None
    where = f"{source}: interface #{int(index)} (mac {mac or 'unset'})"
    notes = []
    inbound, outbound = _bandwidth(node.find("bandwidth"), where, notes)
    mtu = _attr(node, "mtu", "size")
    own = dict(
        source_bridge=_attr(node, "source", "bridge"),
        source_dev=_attr(node, "source", "dev"),
        virtualport_type=_attr(node, "virtualport", "type"),
        inbound=inbound,
        outbound=outbound,
        vlan=_vlan(node.find("vlan"), where),
        isolated=_isolated(node),
        xml_notes=tuple(notes),
    )
    return Interface(
        index=index,
        type=node.get("type") or "",
        mac=mac,
        target_dev=_attr(node, "target", "dev"),
        source_network=_attr(node, "source", "network"),
        portgroup=_attr(node, "source", "portgroup"),
        model=_attr(node, "model", "type"),
        alias=_attr(node, "alias", "name"),
        link_state=_attr(node, "link", "state"),
        mtu=None if mtu is None else _uint(mtu, "mtu size", where),
        **_actual(node, where, own),
    )


def _domain_root(root, source):
    """Return (domain element, domstatus element or None)."""
    if root.tag == "domain":
        return root, None
    if root.tag == "domstatus":
        dom = root.find("domain")
        if dom is None:
            raise XmlError("<domstatus> without <domain>", where=source)
        return dom, root
    raise XmlError(f"root element is <{root.tag}>, expected <domain> or <domstatus>", where=source)


def _name_uuid(dom, source):
    name = _text(dom, "name")
    uuid = _text(dom, "uuid")
    if not name:
        raise XmlError("domain has no <name>", where=source)
    if not uuid:
        raise XmlError(f"domain {name} has no <uuid>", where=source)
    return name, uuid.lower()


def parse_domain(data: Union[bytes, str], source: str = "domain XML") -> Domain:
    """Parse domain XML (hook stdin, ``virsh dumpxml``) or status XML."""
    dom, status = _domain_root(parse_xml(data, source), source)
    name, uuid = _name_uuid(dom, source)
    dom_id = dom.get("id")
    if dom_id is not None and dom_id.strip() == "-1":  # libvirt's "not running"
        dom_id = None
    pid = status.get("pid") if status is not None else None
    return Domain(
        name=name,
        uuid=uuid,
        type=dom.get("type"),
        id=None if dom_id is None else _uint(dom_id, "domain id", source),
        title=_text(dom, "title"),
        description=_text(dom, "description"),
        interfaces=tuple(_interface(i, n, source) for i, n in enumerate(dom.findall("devices/interface"))),
        policy_element=dom.find(f"metadata/{{{NS_NETVIRT}}}policy"),
        is_status=status is not None,
        state=status.get("state") if status is not None else None,
        pid=None if pid is None else _uint(pid, "domstatus pid", source),
        element=dom,
    )


def read_status_xml(path: str) -> Domain:
    """Read a running guest's status XML (``/run/libvirt/qemu/NAME.xml``).

    Hooks must read this instead of asking libvirt (which would deadlock).
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_XML_BYTES + 1)
    except OSError as exc:
        raise XmlError(f"cannot read: {exc.strerror or exc}", where=path) from exc
    return parse_domain(data, source=path)


def domain_name_uuid(data: Union[bytes, str], source: str = "domain XML") -> Tuple[str, str]:
    """(name, uuid) only: for the migrate/restore XML filter checks."""
    dom, _status = _domain_root(parse_xml(data, source), source)
    return _name_uuid(dom, source)
