"""Shaping at scale: apply and remove policies on 50 and 500 ports.

Each port is a veth in a namespace this script creates. Both directions are
shaped (HTB on the port, ingress redirected to a per-port ifb with HTB).
Two executors of the very same plan (nvhooks.tcplan.plan_device):

* ours: the core's netlink path (tcapply.apply, one call per port, each
  reading that port's state, diffing and changing; one tcapply.session for
  the whole batch, as a caller with many ports does: one socket, and the
  ifbs removed are parked and deleted by one kernel request at its end;
  opening and closing it are inside the timed span);
* tc:   the plan as ``tc``/``ip`` subprocess calls, one per object (what
  libvirt and Proxmox do).

Prints seconds per phase, the speedup at the largest size and the per-port
cost ratio (largest/smallest) of ours. Targets: >= 5x at 500 ports, per-port
ratio <= 1.3. Ratios come from one run; no wall-clock assertions anywhere.

Usage (root): python3 bench/shape_scale.py [--sizes 50,500]
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shape_common as sc  # noqa: E402  pylint: disable=wrong-import-position


def make_ports(ns, count):
    """``count`` veth pairs p<i>a/p<i>b in ``ns``, up (one ip -batch: setup is not measured)."""
    with tempfile.NamedTemporaryFile("w", suffix=".ip", delete=False) as batch:
        for i in range(count):
            batch.write(f"link add p{i}a type veth peer name p{i}b\n")
            batch.write(f"link set p{i}a up\nlink set p{i}b up\n")
    try:
        sc.sh("ip", "-n", ns, "-batch", batch.name, timeout=600)
    finally:
        os.unlink(batch.name)
    return [f"p{i}a" for i in range(count)]


def plans(ns, devs, caps):
    rate_in = sc.rate(average="100mbit", peak="200mbit", burst="64k")
    rate_out = sc.rate(average="50mbit")
    return [sc.tcplan.plan_device(dev, caps, inbound=rate_in, outbound=rate_out, netns=ns) for dev in devs]


def ours(ns, devs, caps):
    todo = plans(ns, devs, caps)            # planning is pure and not what we compare
    start = time.perf_counter()
    with sc.tcapply.session(ns) as batch:
        for plan in todo:
            sc.apply_ours(plan, caps, batch=batch)
    applied = time.perf_counter() - start
    gone = [sc.tcplan.plan_absent(dev, netns=ns) for dev in devs]
    start = time.perf_counter()
    with sc.tcapply.session(ns) as batch:
        for plan in gone:
            sc.apply_ours(plan, caps, batch=batch)
    removed = time.perf_counter() - start
    return applied, removed


def with_tc(ns, devs, caps):
    todo = [sc.plan_to_tc(plan) for plan in plans(ns, devs, caps)]
    undo = [sc.remove_tc(plan) for plan in plans(ns, devs, caps)]
    start = time.perf_counter()
    for cmds in todo:
        sc.run_in(ns, cmds)
    applied = time.perf_counter() - start
    start = time.perf_counter()
    for cmds in undo:
        sc.run_in(ns, cmds)
    removed = time.perf_counter() - start
    return applied, removed


def check_clean(ns, devs):
    """Nothing of ours left: no ifb, no root/ingress qdisc on the ports."""
    ifbs = sc.sh("ip", "-n", ns, "-o", "link", "show", "type", "ifb").stdout.strip()
    qdiscs = sc.sh("tc", "-n", ns, "qdisc", "show").stdout
    leftovers = [line for line in qdiscs.splitlines() if " htb " in line or "ingress" in line or "clsact" in line]
    if ifbs or leftovers:
        raise SystemExit(f"leftovers after removal:\n{ifbs}\n" + "\n".join(leftovers[:5]))
    return len(devs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--sizes", default="50,500")
    args = parser.parse_args()
    sc.need_root()
    caps = sc.kernel_caps()
    print(f"kernel {os.uname().release}; {caps.summary()}")
    sizes = [int(x) for x in args.sizes.split(",")]
    results = {}
    for count in sizes:
        for name, run in (("ours", ours), ("tc", with_tc)):
            ns = sc.netns("s")
            devs = make_ports(ns, count)
            applied, removed = run(ns, devs, caps)
            check_clean(ns, devs)
            sc.sh("ip", "netns", "del", ns)
            sc._MADE.remove(ns)          # pylint: disable=protected-access
            results[(name, count)] = (applied, removed)
            print(f"{name:>4} {count:>4} ports: apply {applied:8.3f} s ({applied / count * 1000:7.2f} ms/port), "
                  f"remove {removed:8.3f} s ({removed / count * 1000:7.2f} ms/port)")
    small, large = min(sizes), max(sizes)
    total = {k: sum(v) for k, v in results.items()}
    print()
    print(f"speedup at {large} ports (tc / ours, apply+remove): {total[('tc', large)] / total[('ours', large)]:.1f}x "
          f"(apply {results[('tc', large)][0] / results[('ours', large)][0]:.1f}x, "
          f"remove {results[('tc', large)][1] / results[('ours', large)][1]:.1f}x)")
    if small != large:
        ratio = (total[("ours", large)] / large) / (total[("ours", small)] / small)
        print(f"ours per-port cost {large} / {small}: {ratio:.2f} "
              f"(apply {(results[('ours', large)][0] / large) / (results[('ours', small)][0] / small):.2f}, "
              f"remove {(results[('ours', large)][1] / large) / (results[('ours', small)][1] / small):.2f})")
        ratio_tc = (total[("tc", large)] / large) / (total[("tc", small)] / small)
        print(f"tc   per-port cost {large} / {small}: {ratio_tc:.2f}")


if __name__ == "__main__":
    main()
