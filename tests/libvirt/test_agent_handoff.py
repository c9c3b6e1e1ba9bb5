"""The hook hands a guest event's built-in steps to a running agent (issue #13), on the real libvirtd.

The hooks role is installed onto this host (restored afterwards) and the host
policy written at /etc/libvirt/hooks/netvirt/policy.json, the file both the
hook and the agent read. The agent runs from this tree (Debian's python,
test_agent.Agent), managing only this test's guest. One guest, started the
same way without the agent, with it, and after the agent was SIGKILLed (its
socket file left behind): same tc state, same per-step logs, plus one line
naming the agent when it ran the step. Then policies that must refuse the
start still refuse it through the agent. No time is asserted.
"""
import glob
import json
import os
import re
import signal
import uuid

from conftest import bridge_iface, domain_xml, sh, uid, virsh
from test_agent import Agent

POLICY = "/etc/libvirt/hooks/netvirt/policy.json"
LOGS = "/var/log/libvirt/hooks"
SOCKET = "/run/netvirt-hooks/agent/agent.sock"
PREFIX = "52:54:00:b1"
AGENT_LINE = "run in the netvirt-hooks agent (pid"


def write_policy(doc):
    with open(POLICY + ".tmp", "w", encoding="utf-8") as handle:
        handle.write(doc if isinstance(doc, str) else json.dumps(doc))
    os.replace(POLICY + ".tmp", POLICY)


def tc_state(taps):
    """qdiscs, classes and filters of the taps and their ifbs, without per-run action indexes or counters.

    HTB's direct_packets_stat counts the host's own packets (IPv6 neighbour
    discovery as the tap comes up) that reach the root before its default
    class exists: a matter of microseconds that differs from start to start.
    """
    out = []
    devs = list(taps) + [line.split(":")[1].strip().split("@")[0] for line in
                         sh("ip", "-o", "link", "show", "type", "ifb").stdout.splitlines()
                         if any(tap in line for tap in taps)]
    for dev in devs:
        for kind in ("qdisc", "class", "filter"):
            text = sh("tc", kind, "show", "dev", dev, check=False).stdout
            text += sh("tc", kind, "show", "dev", dev, "ingress", check=False).stdout if kind == "filter" else ""
            text = re.sub(r"index \d+ ref \d+ bind \d+", "index", text)
            out.append(f"{dev} {kind}\n" + re.sub(r"direct_packets_stat \d+", "direct_packets_stat N", text))
    return "\n".join(out)


def step_logs(name):
    """The guest's per-step logs, without time stamp, pid and kernel-chosen handle; removed (the next start writes them anew)."""
    found = {}
    for path in sorted(glob.glob(f"{LOGS}/qemu_*_{name}_*.log")):
        with open(path, encoding="utf-8", errors="replace") as handle:
            # the kernel numbers a fresh tap's noqueue anew each time
            found[os.path.basename(path)] = [re.sub(r"noqueue [0-9a-f]+:", "noqueue N:", re.sub(r"^\S+ \d+ ", "", line))
                                             for line in handle.read().splitlines()]
        os.unlink(path)
    return found


def without(found, *texts):
    """``found`` (file -> lines) without the lines that contain any of ``texts``."""
    return {name: [line for line in lines if not any(text in line for text in texts)] for name, lines in found.items()}


def same_logs(got, want):
    """``got`` (agent line dropped) equals ``want``; else a diff per file.

    The kernel's shaping capabilities are probed once per boot, by whichever
    process shapes first, and logged by it: that line is not compared.
    """
    import difflib
    once = "shaping capabilities probed"
    got, want = without(got, AGENT_LINE, once), without(want, once)
    diff = [f"{name}:\n" + "\n".join(difflib.unified_diff(want.get(name, []), got.get(name, []), lineterm=""))
            for name in sorted(set(got) | set(want)) if got.get(name) != want.get(name)]
    assert not diff, "\n".join(diff)


def test_handoff_same_result_survives_sigkill_and_still_refuses(restore_host, run_roles, host_bridge, tmp_path):
    run_roles(["netvirt.libvirt_hooks.hooks"])
    write_policy({"rules": [{"match": {"mac": f"{PREFIX}:*"}, "inbound": {"average": "8mbit"},
                             "outbound": {"average": "4mbit"}}]})
    br = host_bridge()
    name, taps = "nvt-ho" + uid(), ["nvtt" + uid(), "nvtt" + uid()]
    xml = domain_xml(name, [bridge_iface(br, target=tap, mac=f"{PREFIX}:00:{n:02x}") for n, tap in enumerate(taps)],
                     domain_uuid=str(uuid.uuid4()))
    agent = Agent(POLICY, str(tmp_path / "agent.log"), name)

    def start():
        virsh("create", "/dev/stdin", input=xml)
        try:
            return tc_state(taps), step_logs(name)
        finally:
            virsh("destroy", name)
            step_logs(name)          # the stop's own logs: not compared

    try:
        alone_tc, alone_logs = start()
        assert "htb" in alone_tc and alone_logs
        assert not any(AGENT_LINE in line for lines in alone_logs.values() for line in lines)

        agent.start()
        agent_tc, agent_logs = start()
        assert agent_tc == alone_tc
        same_logs(agent_logs, alone_logs)
        handed = [n for n, lines in agent_logs.items() if any(AGENT_LINE in line for line in lines)]
        assert any(n.endswith("_shapehook.log") and "_start_begin_" in n for n in handed), agent_logs

        agent.stop(signal.SIGKILL)
        assert os.path.exists(SOCKET)          # a crashed agent's socket: refused, run in-process
        after_tc, after_logs = start()
        assert after_tc == alone_tc
        same_logs(after_logs, alone_logs)
        assert after_logs == without(after_logs, AGENT_LINE)     # nobody answered: all in-process

        agent.start()
        refused = domain_xml("nvt-ho" + uid(), [bridge_iface(br, target="nvtt" + uid(), mac="52:54:00:b2:00:01")])
        write_policy({"settings": {"unshaped": "abort"}, "rules": []})
        proc = virsh("create", "/dev/stdin", input=refused, check=False)
        assert proc.returncode != 0 and "settings.unshaped is abort" in proc.stderr, proc.stderr
        refused_logs = step_logs(re.search(r"<name>(.*)</name>", refused).group(1))
        assert any(AGENT_LINE in line for lines in refused_logs.values() for line in lines), refused_logs

        write_policy("{broken")
        proc = virsh("create", "/dev/stdin", input=xml, check=False)
        assert proc.returncode != 0 and "policy.json" in proc.stderr, proc.stderr
        assert any(AGENT_LINE in line for lines in step_logs(name).values() for line in lines)
        assert "hand-off socket" in agent.log()
    finally:
        if agent.proc is not None:
            agent.stop()
        virsh("destroy", name, check=False)
