"""Hook latency: what one libvirt hook call costs, as ratios to a bare interpreter.

Runs, interleaved in one process so machine load hits all alike:
  base     /usr/bin/python3 -c pass
  empty    the qemu entry program for qemu/prepare/begin with nothing to do
           (no scripts, built-in handlers on: neither wants the event)
  empty-started  the same for qemu/started/begin, where the handlers' wants()
           must look at the host policy (no policy file: empty policy)
  policy-started  qemu/started/begin with a host policy whose rules name
           other guests (a shaped fleet, this guest not in it)
  scripts  the same event with 20 trivial scripts (#!/bin/sh, exit 0)
  shaped   qemu/started/begin of a guest with two shaped ports (veths; the
           hook applies tc for real, an idempotent re-apply each round; root)
  shaped-agent  the same with a `netvirt-hooks agent` from this tree running
           on that scratch tree: the hook hands the steps to it (--shaped)
in a scratch tree (NETVIRT_HOOKS_ROOT), using the core from this checkout.
Prints medians and ratios; asserts nothing (target: empty <= 3x base).
Run: /usr/bin/python3 bench/hook_latency.py [-n ROUNDS]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = "/usr/bin/python3"
XML = (b"<domain type='qemu'><name>bench</name><uuid>1b4e28ba-2fa1-11d2-883f-0016d3cca427</uuid>"
       b"<devices><interface type='ethernet'><target dev='nvtbench0'/></interface></devices></domain>")
ENTRY = """#!/usr/bin/python3 -I
import sys
sys.path.insert(0, %r)
from nvhooks.dispatch.dispatcher import main
sys.exit(main("qemu", sys.argv[1:]))
""" % os.path.join(REPO, "plugins", "module_utils")


POLICY = json.dumps({
    "groups": {"web": {"inbound": {"ceiling": "1gbit"}, "outbound": {"ceiling": "500mbit"}}},
    "rules": [{"match": {"guest": "web-*"}, "group": "web", "inbound": {"average": "100mbit", "floor": "10mbit"}},
              {"match": {"guest": "db?"}, "inbound": {"average": "200mbit"}, "outbound": {"average": "200mbit"}},
              {"match": {"guest": "lab[0-9]*"}, "vlan": {"pvid": 100}}]})


def tree(root, scripts, policy=False):
    hooks = root + "/etc/libvirt/hooks"
    os.makedirs(hooks + "/netvirt")
    if policy:
        with open(hooks + "/netvirt/policy.json", "w") as handle:
            handle.write(POLICY)
    with open(hooks + "/netvirt/dispatcher.conf", "w") as handle:
        handle.write("syslog: no\n")
    with open(hooks + "/qemu", "w") as handle:
        handle.write(ENTRY)
    os.chmod(hooks + "/qemu", 0o755)
    folder = hooks + "/qemu_started_begin.d"
    os.makedirs(folder)
    for n in range(scripts):
        path = "%s/%02d-trivial" % (folder, n)
        with open(path, "w") as handle:
            handle.write("#!/bin/sh\nexit 0\n")
        os.chmod(path, 0o755)
    return hooks + "/qemu"


SHAPED_POLICY = json.dumps({"rules": [
    {"match": {"guest": "bench"}, "inbound": {"average": "100mbit"}, "outbound": {"average": "50mbit"}}]})
LAUNCH = ("import sys; sys.path.insert(0, sys.argv.pop(1)); from nvhooks.cli import main; "
          "sys.exit(main(sys.argv[1:]))")


def shaped_xml(devs):
    ports = "".join("<interface type='ethernet'><mac address='52:54:00:be:00:%02x'/><target dev='%s'/></interface>"
                    % (n, dev) for n, dev in enumerate(devs))
    return ("<domain type='qemu'><name>bench</name><uuid>1b4e28ba-2fa1-11d2-883f-0016d3cca427</uuid>"
            "<devices>%s</devices></domain>" % ports).encode()


def shaped_tree(root, devs):
    entry = tree(root, 0)
    with open(root + "/etc/libvirt/hooks/netvirt/policy.json", "w") as handle:
        handle.write(SHAPED_POLICY)
    for dev in devs:
        subprocess.run(["ip", "link", "add", dev, "type", "veth", "peer", "name", dev + "p"], check=True)
        subprocess.run(["ip", "link", "set", dev, "up"], check=True)
    return entry


def start_agent(root, log):
    """An agent on the scratch tree (its policy, run dir); it manages no running guest (--only)."""
    env = dict(os.environ, NETVIRT_HOOKS_ROOT=root)
    proc = subprocess.Popen([PY, "-c", LAUNCH, os.path.join(REPO, "plugins", "module_utils"), "agent",
                             "--only", "nvt-bench-none-*"], env=env, stdout=log, stderr=subprocess.STDOUT)
    sock = root + "/run/netvirt-hooks/agent/agent.sock"
    deadline = time.monotonic() + 60
    while not os.path.exists(sock):
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit("the agent did not start (log: %s)" % log.name)
        time.sleep(0.05)
    return proc


def once(argv, env=None, stdin=b""):
    start = time.perf_counter()
    proc = subprocess.run(argv, input=stdin, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          check=False)
    took = time.perf_counter() - start
    if proc.returncode:
        sys.exit("%s failed: %s" % (argv[0], proc.stderr.decode()))
    return took


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--rounds", type=int, default=30)
    parser.add_argument("--shaped", action="store_true", help="add the shaped cases (root, python3-libvirt)")
    args = parser.parse_args()
    agent = None
    devs = {"shaped": ["nvtbl0", "nvtbl1"], "shaped-agent": ["nvtba0", "nvtba1"]} if args.shaped else {}
    scratch = tempfile.mkdtemp(prefix="nvt-bench-")
    os.chmod(scratch, 0o755)
    try:
        cases = {"base": ([PY, "-c", "pass"], None, b"")}
        for label, count, op in (("empty", 0, "prepare"), ("empty-started", 0, "started"),
                                 ("policy-started", 0, "started"), ("scripts", 20, "started")):
            root = os.path.join(scratch, label)
            entry = tree(root, count, policy=label.startswith("policy"))
            env = dict(os.environ, NETVIRT_HOOKS_ROOT=root)
            cases[label] = ([entry, "bench", op, "begin", "-"], env, XML)
        for label, names in devs.items():
            root = os.path.join(scratch, label)
            entry = shaped_tree(root, names)
            if label == "shaped-agent":
                # pylint: disable-next=consider-using-with
                agent = start_agent(root, open(os.path.join(scratch, "agent.log"), "w"))
            cases[label] = ([entry, "bench", "started", "begin", "-"], dict(os.environ, NETVIRT_HOOKS_ROOT=root),
                            shaped_xml(names))
        for argv, env, stdin in cases.values():   # warm caches (and .pyc) once
            once(argv, env, stdin)
        times = {label: [] for label in cases}
        for _round in range(args.rounds):
            for label, (argv, env, stdin) in cases.items():
                times[label].append(once(argv, env, stdin))
        med = {label: statistics.median(values) for label, values in times.items()}
        print("hook latency, median of %d interleaved rounds (one run, same machine)" % args.rounds)
        for label in cases:
            print("  %-14s %8.1f ms   %5.2fx base" % (label, med[label] * 1000, med[label] / med["base"]))
        per_script = (med["scripts"] - med["empty-started"]) / 20
        print("  per trivial script: %.1f ms (%.2fx base)" % (per_script * 1000, per_script / med["base"]))
        if agent is not None:
            with open(os.path.join(scratch, "shaped-agent", "var/log/libvirt/hooks",
                                   "qemu_started_begin_bench_shapehook.log")) as handle:
                handed = handle.read().count("run in the netvirt-hooks agent")
            print("  shaped-agent: %d of %d events handed to the agent" % (handed, args.rounds + 1))
    finally:
        if agent is not None:
            agent.terminate()
            agent.wait(30)
        for names in devs.values():
            for dev in names:
                subprocess.run(["ip", "link", "del", dev], check=False, stderr=subprocess.DEVNULL)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
