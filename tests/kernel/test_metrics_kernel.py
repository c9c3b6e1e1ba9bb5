"""`netvirt-hooks metrics` on real shaped veth ports: configured rates, counters that grow with traffic.

Two "guests" ports in a throwaway netns (their far ends, the guests' NICs,
in a second netns): port 0 shaped alone, port 1 a member of group web. The
command runs in a process of its own inside the first netns with the status
XML under NETVIRT_HOOKS_ROOT, as on a hypervisor: `apply` shapes, `metrics`
reads the kernel; no agent.
"""
import json
import os
import sys
import textwrap

from nvhooks.shaping import plan as tcplan

NS_URI = "https://github.com/netvirt/libvirt_hooks/xmlns/policy/1"
# One process runs the whole sequence (each python start costs seconds under TCG in the real-kernel
# lane): each step is `netvirt-hooks ARGS` through the command's main(), or a command line to run
# (traffic, tc), its output after a marker line.
CLI = textwrap.dedent("""
    import json, subprocess, sys
    sys.path.insert(0, sys.argv[1])
    from nvhooks.cli import command
    for kind, argv in json.loads(sys.argv[2]):
        print("@@step", flush=True)
        if kind == "cli":
            code = command.main(argv)
        else:
            code = subprocess.run(argv, check=False).returncode
        sys.stdout.flush()
        if code:
            sys.exit(f"{argv} exited {code}")
""")
MAC_A, MAC_B = "52:54:00:ab:00:01", "52:54:00:ab:00:02"
UUID = "6f1e3c6a-8d1e-4b7a-9c8e-0a5b2d1f7a01"


def _status_xml(tap_a, tap_b):
    meta = (f"<metadata><nv:policy xmlns:nv='{NS_URI}'><nv:interface mac='{MAC_B}'><nv:group name='web'/>"
            f"</nv:interface></nv:policy></metadata>")
    ifaces = (f"<interface type='ethernet'><mac address='{MAC_A}'/><target dev='{tap_a}'/>"
              f"<bandwidth><inbound average='1250'/><outbound average='625'/></bandwidth></interface>"
              f"<interface type='ethernet'><mac address='{MAC_B}'/><target dev='{tap_b}'/></interface>")
    return (f"<domstatus state='running' pid='1'><domain type='qemu' id='1'><name>web1</name><uuid>{UUID}</uuid>"
            f"<memory>65536</memory>{meta}<devices>{ifaces}</devices></domain></domstatus>")


def test_metrics_show_configured_rates_and_growing_counters(netns, veth, nsrun, tmp_path):
    host_ns, guest_ns = netns(), netns()
    a, b = veth(host_ns, peer_ns=guest_ns), veth(host_ns, peer_ns=guest_ns)
    for n, (port, mac) in enumerate(((a, MAC_A), (b, MAC_B))):
        nsrun(guest_ns, "ip", "link", "set", port.peer, "address", mac)
        nsrun(host_ns, "ip", "addr", "add", f"10.77.{n}.1/24", "dev", port.name)
        nsrun(guest_ns, "ip", "addr", "add", f"10.77.{n}.2/24", "dev", port.peer)
    root = tmp_path / "root"
    (root / "run/libvirt/qemu").mkdir(parents=True)
    (root / "run/libvirt/qemu/web1.xml").write_text(_status_xml(a.name, b.name))
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"groups": {"web": {"inbound": {"ceiling": "20mbit", "floor": "2mbit"},
                                                     "outbound": {"ceiling": "10mbit"}}}}))
    script = tmp_path / "cli.py"
    script.write_text(CLI)
    lib = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                       "plugins", "module_utils")

    pings = [["ping", "-q", "-c", "40", "-i", "0.002", "-s", "1000", f"10.77.{n}.2"] for n in (0, 1)]
    steps = ([["cli", ["apply", "web1"]], ["cli", ["--json", "metrics"]]] + [["run", p] for p in pings]
             + [["cli", ["--json", "metrics"]], ["cli", ["metrics"]],
                ["run", ["tc", "qdisc", "del", "dev", a.name, "root"]], ["cli", ["--json", "metrics"]]])
    steps = [[kind, argv if kind == "run" else ["--policy", str(policy)] + argv] for kind, argv in steps]
    out = nsrun(host_ns, "env", f"NETVIRT_HOOKS_ROOT={root}", sys.executable, str(script), lib,
                json.dumps(steps)).stdout.split("@@step\n")[1:]
    assert len(out) == len(steps), out

    def samples(text):
        data = json.loads(text)
        assert data["errors"] == [] and data["exit"] == 0
        return ({(p["dev"], p["direction"]): p for p in data["ports"]},
                {(g["group"], g["direction"]): g for g in data["groups"]})

    before, groups = samples(out[1])
    assert set(before) == {(a.name, "inbound"), (a.name, "outbound"), (b.name, "inbound"), (b.name, "outbound")}
    alone_in, alone_out = before[(a.name, "inbound")], before[(a.name, "outbound")]
    assert alone_in["rate"] == 1_280_000 and alone_in["floor"] is None and alone_in["device"] == a.name
    assert alone_out["rate"] == 640_000 and alone_out["device"] == tcplan.port_ifb(a.name)
    member = before[(b.name, "inbound")]
    assert (member["group"], member["device"]) == ("web", tcplan.group_ifb("web", "inbound"))
    assert (member["rate"], member["floor"]) == (2_500_000, 250_000)      # may use the ceiling, 2 Mbit/s sure
    assert groups[("web", "inbound")]["rate"] == 2_500_000 and groups[("web", "inbound")]["members"] == 1
    assert all(p["shaped"] and p["guest"] == "web1" and p["uuid"] == UUID for p in before.values())

    # after traffic both ways through both ports: requests are the guest's inbound, replies its outbound
    after, groups_after = samples(out[4])
    for key, old in before.items():
        new = after[key]
        assert new["packets"] >= old["packets"] + 40 and new["bytes"] >= old["bytes"] + 40 * 1000, key
    assert groups_after[("web", "outbound")]["bytes"] >= groups[("web", "outbound")]["bytes"] + 40 * 1000

    # the exposition itself, as a scraper reads it
    text = out[5]
    label = (f'dev="{b.name}",direction="inbound",group="web",guest="web1",index="1",mac="{MAC_B}",'
             f'uuid="{UUID}"')
    assert f"netvirt_port_rate_bytes_per_second{{{label}}} 2.5e+06" in text
    assert f"netvirt_port_floor_bytes_per_second{{{label}}} 250000.0" in text
    assert 'netvirt_group_rate_bytes_per_second{direction="outbound",group="web"} 1.25e+06' in text

    # our class removed behind our back: the port says so, and the others are still there
    gone, _groups = samples(out[7])
    assert not gone[(a.name, "inbound")]["shaped"] and gone[(a.name, "outbound")]["shaped"]
