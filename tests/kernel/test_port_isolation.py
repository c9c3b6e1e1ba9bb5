"""Port isolation as policy on a real bridge, with traffic (both kernels: it needs no VLAN filtering).

A bridge in a throwaway netns; "guests" are netns whose veth peers are its
ports. The VLAN handler's apply_guest runs exactly as the hook calls it, on a
netlink socket bound to the bridge's netns. Two isolated ports cannot reach
each other, each still reaches a port that is not isolated, a port without
the flag keeps it off, and a flag our policy no longer asks for is turned off.
"""
import json
import logging

import pytest

from nvhooks.kernel import compat
from nvhooks.policy import domxml, model as policy
from nvhooks.vlan import hook as vlanhook, isolation

pytestmark = pytest.mark.usefixtures("scratch_root")
NS = "https://github.com/netvirt/libvirt_hooks/xmlns/policy/1"


def guest_xml(name, dev, bridge_name, meta=""):
    if meta:
        meta = f"<metadata><nv:policy xmlns:nv='{NS}'>{meta}</nv:policy></metadata>"
    return (f"<domain type='qemu' id='1'><name>{name}</name><uuid>00000000-0000-4000-8000-00000000000{name[-1]}"
            f"</uuid>{meta}<devices><interface type='bridge'><mac address='52:54:00:00:01:0{name[-1]}'/>"
            f"<source bridge='{bridge_name}'/><target dev='{dev}'/></interface></devices></domain>").encode()


def isolated(nsrun, ns, dev):
    data = json.loads(nsrun(ns, "ip", "-d", "-j", "link", "show", "dev", dev).stdout)
    return bool(data[0]["linkinfo"]["info_slave_data"].get("isolated"))


def test_isolated_ports_reach_only_non_isolated_ones(netns, veth, bridge, nsrun):
    log = logging.getLogger("nvt.isolation")
    core = netns()
    br = bridge(ns=core)
    ports, guests = {}, {}
    for i, name in enumerate(("g1", "g2", "g3", "r4"), start=1):
        guests[name] = netns()
        ports[name] = veth(core, guests[name], name=f"nvtp{name}", peer="eth0").name
        nsrun(core, "ip", "link", "set", ports[name], "master", br)
        nsrun(guests[name], "ip", "addr", "add", f"10.9.0.{i}/24", "dev", "eth0")
    # g1 asks in its own metadata, g2 by a host rule on its tap name; g3 and the "router" r4 say nothing
    host = policy.parse_host_policy({"rules": [{"match": {"dev": ports["g2"]}, "isolated": True}]})
    doms = {"g1": guest_xml("g1", ports["g1"], br, "<nv:interface index='0' isolated='yes'/>"),
            "g2": guest_xml("g2", ports["g2"], br), "g3": guest_xml("g3", ports["g3"], br)}
    with compat.open_in_netns(core) as nl:
        for name, xml in doms.items():
            vlanhook.apply_guest(domxml.parse_domain(xml), host, log, ipr=nl)
        assert [isolated(nsrun, core, ports[n]) for n in ("g1", "g2", "g3", "r4")] == [True, True, False, False]
        assert vlanhook.apply_guest(domxml.parse_domain(doms["g1"]), host, log, ipr=nl) == []   # idempotent

        def pings(src, address):
            return nsrun(guests[src], "busybox", "ping", "-c", "2", "-W", "1", address, check=False).returncode == 0

        assert not pings("g1", "10.9.0.2") and not pings("g2", "10.9.0.1")     # isolated <-> isolated
        assert pings("g1", "10.9.0.4") and pings("g2", "10.9.0.4")             # each reaches the router
        assert pings("g3", "10.9.0.1") and pings("g1", "10.9.0.3")             # and a port without the flag
        # the host rule goes away: the flag our policy set is turned off at the next re-check
        changes = vlanhook.apply_guest(domxml.parse_domain(doms["g2"]), policy.HostPolicy(), log, ipr=nl)
        assert [c["actions"] for c in changes] == [[f"set dev {ports['g2']} isolated off"]]
        assert not isolated(nsrun, core, ports["g2"]) and isolation.recorded(ports["g2"]) is None
        assert pings("g1", "10.9.0.2")
        # a flag set by someone else (libvirt's native <port isolated='yes'/>) is left alone
        nsrun(core, "ip", "link", "set", ports["g3"], "type", "bridge_slave", "isolated", "on")
        assert vlanhook.apply_guest(domxml.parse_domain(doms["g3"]), policy.HostPolicy(), log, ipr=nl) == []
        assert isolated(nsrun, core, ports["g3"])
