"""shapehook end to end on a real kernel: started -> tc state, stopped -> nothing, reconcile.

The handler runs as a separate process inside the test's netns (as the hook
runs inside the host's), on a domain XML naming veth "taps" the test made.
"""
import json
import os
import sys
import textwrap

import pytest

from nvhooks.shaping import plan as tcplan

RUNNER = textwrap.dedent("""
    import logging, sys
    sys.path.insert(0, sys.argv[1])
    from nvhooks.policy import domxml, model as policy
    from nvhooks.shaping import hook as shapehook
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    log = logging.getLogger("t")
    host = policy.load_host_policy(sys.argv[3])
    if sys.argv[2] == "reconcile":
        print("reconciled", shapehook.reconcile_all(host, log))
        sys.exit(0)
    driver, op, subop = sys.argv[2].split("/")
    class Ev: pass
    ev = Ev(); ev.driver, ev.op, ev.subop = driver, op, subop
    raw = open(sys.argv[4], "rb").read()
    print("wants", shapehook.wants(ev, raw, host))
    shapehook.handle(ev, domxml.parse_domain(raw), host, log)
""")

NS_URI = "https://github.com/netvirt/libvirt_hooks/xmlns/policy/1"


def domain_xml(name, ports):
    """ports: [(tap, mac, extra xml inside <interface>)]"""
    ifaces = "".join(f"<interface type='ethernet'><mac address='{mac}'/><target dev='{tap}'/>"
                     f"<model type='virtio'/>{extra}</interface>" for tap, mac, extra in ports)
    meta = (f"<metadata><nv:policy xmlns:nv='{NS_URI}'><nv:interface mac='{ports[1][1]}'>"
            f"<nv:inbound average='4mbit'/><nv:group name='web'/></nv:interface></nv:policy></metadata>")
    return (f"<domain type='qemu'><name>{name}</name><uuid>6f1e3c6a-8d1e-4b7a-9c8e-0a5b2d1f{name[-4:]}</uuid>"
            f"<memory>65536</memory>{meta}<devices>{ifaces}</devices></domain>")


@pytest.fixture
def hook(tmp_path, nsrun):
    root = tmp_path / "root"
    (root / "run/libvirt/qemu").mkdir(parents=True)
    policy_path = tmp_path / "policy.json"
    policy_path.write_text(json.dumps({"groups": {"web": {"inbound": {"ceiling": "20mbit", "floor": "2mbit"},
                                                          "outbound": {"ceiling": "10mbit"}}}}))
    script = tmp_path / "run_hook.py"
    script.write_text(RUNNER)
    lib = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                       "plugins", "module_utils")

    def run(ns, event, xml_path=""):
        env = f"NETVIRT_HOOKS_ROOT={root}"
        return nsrun(ns, "env", env, sys.executable, str(script), lib, event, str(policy_path), str(xml_path))
    run.root = root
    return run


def tc(nsrun, ns, *args):
    return nsrun(ns, "tc", *args).stdout


def test_started_stopped_and_reconcile(netns, veth, nsrun, hook, tmp_path):
    ns = netns()
    a, b = veth(ns, peer_ns=ns), veth(ns, peer_ns=ns)
    mac_a, mac_b = "52:54:00:aa:00:01", "52:54:00:aa:00:02"
    xml = tmp_path / "web1.xml"
    native = "<bandwidth><inbound average='1250'/><outbound average='625'/></bandwidth>"
    xml.write_text(domain_xml("web1", [(a.name, mac_a, native), (b.name, mac_b, "")]))

    out = hook(ns, "qemu/started/begin", xml)
    assert "wants True" in out.stdout
    # port 0: native <bandwidth> taken over (1250 KiB/s = 10.24 Mbit/s), outbound via its ifb
    assert "rate 10240Kbit" in tc(nsrun, ns, "class", "show", "dev", a.name)
    ifb = tcplan.port_ifb(a.name)
    assert "rate 5120Kbit" in tc(nsrun, ns, "class", "show", "dev", ifb)
    # port 1: metadata policy + host group: member of both group ifbs
    gi = tcplan.group_ifb("web", "inbound")
    assert "Redirect to device " + gi in tc(nsrun, ns, "filter", "show", "dev", b.name, "egress")
    assert "rate 2Mbit ceil 4Mbit" in tc(nsrun, ns, "class", "show", "dev", gi)
    assert "INFO" in out.stderr and "web1 port 0" in out.stderr

    # reconnect: nothing to change
    again = hook(ns, "qemu/reconnect/begin", xml)
    assert "already in place" in again.stderr

    # reconcile from status XML after someone removed our state
    nsrun(ns, "tc", "qdisc", "del", "dev", a.name, "root")
    status = hook.root / "run/libvirt/qemu/web1.xml"
    status.write_text(f"<domstatus state='running' pid='1'>{xml.read_text()}</domstatus>")
    # and the ifb of a guest that stopped while our hook was not installed
    orphan = tcplan.port_ifb("nvtgone0")
    nsrun(ns, "ip", "link", "add", orphan, "type", "ifb")
    nsrun(ns, "ip", "link", "set", orphan, "alias", tcplan.port_ifb_alias("nvtgone0"))
    reconciled = hook(ns, "reconcile")
    assert "reconciled 1" in reconciled.stdout
    assert "rate 10240Kbit" in tc(nsrun, ns, "class", "show", "dev", a.name)
    assert f"orphan removed: ifb {orphan}" in reconciled.stderr
    names = {link["ifname"] for link in json.loads(nsrun(ns, "ip", "-j", "link", "show").stdout)}
    assert orphan not in names and ifb in names and gi in names     # the running guest's ifbs stay

    hook(ns, "qemu/stopped/end", xml)
    for dev in (a.name, b.name):
        assert "htb" not in tc(nsrun, ns, "qdisc", "show", "dev", dev)
        assert "clsact" not in tc(nsrun, ns, "qdisc", "show", "dev", dev)
    names = {link["ifname"] for link in json.loads(nsrun(ns, "ip", "-j", "link", "show").stdout)}
    assert not {n for n in names if n.startswith(("nvo", "nvg"))}
    # release after the taps are gone: nothing to do, no error
    nsrun(ns, "ip", "link", "del", a.name)
    hook(ns, "qemu/release/end", xml)
