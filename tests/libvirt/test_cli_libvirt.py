"""netvirt-hooks against a real libvirtd and real guests (libvirt lane).

The command runs as the hook runs it: Debian's /usr/bin/python3 with the
core on sys.path, reading the guest's status XML under /run/libvirt/qemu
and a host policy given with --policy (so whatever hooks/policy other tests
left installed cannot decide the outcome: host rules win over everything).
"""
import json
import os
import socket
import subprocess

import pytest

from conftest import bridge_iface, ethernet_iface, sh, uid

PLUGINS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                       "plugins", "module_utils")
PY = "/usr/bin/python3"


def nvh(*args, policy):
    code = "import sys; sys.path.insert(0, sys.argv.pop(1)); from nvhooks.cli import main; sys.exit(main())"
    proc = subprocess.run([PY, "-c", code, PLUGINS, "--policy", str(policy), *args],
                          capture_output=True, text=True, timeout=120, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def nvh_json(*args, policy):
    code, out, err = nvh("--json", *args, policy=policy)
    assert out, err
    return code, json.loads(out)


def tc(dev, what="qdisc"):
    return sh("tc", what, "show", "dev", dev).stdout


@pytest.fixture
def shaped_guest(guest, host_bridge, tmp_path):
    br = host_bridge()
    tap0, tap1 = "nvtt" + uid(), "nvtt" + uid()
    g = guest(interfaces=[bridge_iface(br, target=tap0, mac="52:54:00:c1:00:01"),
                          ethernet_iface(target=tap1, mac="52:54:00:c1:00:02")])
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"version": 1, "rules": [
        {"match": {"guest": g.name, "index": 0}, "inbound": {"average": "10mbit", "peak": "20mbit"}},
        {"match": {"guest": g.name, "dev": tap1}, "outbound": {"average": "4mbit"}},
    ]}))
    return g, br, tap0, tap1, policy


def test_apply_status_teardown_cycle(shaped_guest):
    g, _br, tap0, tap1, policy = shaped_guest
    # whatever a previously installed hook did at start, our host rules differ: drift
    code, data = nvh_json("apply", g.name, "--check", policy=policy)
    assert code == 1 and data["changed"] and data["check"] is True
    assert "rate 10mbit ceil 20mbit" in tc(tap0, "class") or "htb" not in tc(tap0)  # check changed nothing

    code, out, err = nvh("apply", g.name, policy=policy)
    assert code == 0, err
    assert any(line.startswith("changed: ") for line in out.splitlines())
    classes = tc(tap0, "class")
    assert "class htb 1:1 root leaf 10: prio 0 rate 10Mbit ceil 20Mbit" in classes
    assert "ingress" in tc(tap1) or "clsact" in tc(tap1)

    code, out, _err = nvh("apply", g.name, policy=policy)
    assert (code, out) == (0, f"apply {g.name}: nothing to do\n")

    code, data = nvh_json("status", g.name, policy=policy)
    assert code == 0
    ports = data["ports"]
    assert [p["shaping"]["state"] for p in ports] == ["in sync", "in sync"]
    assert ports[0]["inbound"] == {"average": "10mbit", "peak": "20mbit", "source": "host policy rules[0]"}
    assert any(line.startswith("class htb 1:1 dev " + tap0) for line in ports[0]["shaping"]["objects"])

    code, out, err = nvh("teardown", g.name, policy=policy)
    assert code == 0, err
    assert "htb" not in tc(tap0) and "ingress" not in tc(tap1) and "clsact" not in tc(tap1)
    code, data = nvh_json("status", g.name, policy=policy)
    assert code == 1 and {p["shaping"]["state"] for p in data["ports"]} == {"drift"}


def test_status_counters_move_with_traffic(shaped_guest):
    g, _br, _tap0, tap1, policy = shaped_guest
    nvh("apply", g.name, policy=policy)
    # outbound is shaped on an ifb; inbound of port 1 is unshaped: shape it too for the counter
    policy.write_text(json.dumps({"version": 1, "rules": [
        {"match": {"guest": g.name, "dev": tap1}, "inbound": {"average": "8mbit"}}]}))
    assert nvh("apply", g.name, policy=policy)[0] == 0
    # 10 raw frames out of the tap = into the guest: they pass the tap's HTB
    frame = bytes.fromhex("525400c10002525400ffffff88b5") + b"nvt-cli-counter".ljust(46, b".")
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as raw:
        raw.bind((tap1, 0))
        for _frame in range(10):
            raw.send(frame)
    code, data = nvh_json("status", g.name, policy=policy)
    lines = data["ports"][1]["shaping"]["objects"]
    line = next(x for x in lines if x.startswith(f"class htb 1:1 dev {tap1}"))
    packets = int(line.split(" sent ")[1].split()[1].rstrip("p"))
    assert packets >= 10, line


def test_not_running_and_overview(shaped_guest):
    g, _br, tap0, _tap1, policy = shaped_guest
    code, out, err = nvh("status", "nvt-no-such-guest", policy=policy)
    assert code == 3 and out == "" and "is not running here" in err
    code, out, _err = nvh("status", policy=policy)
    mine = [line for line in out.splitlines() if line.startswith(g.name + " ")]
    assert mine[0].startswith(f"{g.name} 0 {tap0}: inb 10mbit; tc ")


def test_explain_from_live_status_xml(shaped_guest):
    g, br, tap0, _tap1, policy = shaped_guest
    code, data = nvh_json("explain", g.name, policy=policy)
    assert code == 0
    port = data["ports"][0]
    assert (port["dev"], port["bridge"], port["mac"]) == (tap0, br, "52:54:00:c1:00:01")
    assert port["values"]["inbound.peak"] == {"value": "20mbit", "source": "host policy rules[0]"}
