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
    args = parser.parse_args()
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
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
