"""Shaping accuracy: achieved wire rate / configured rate, with iperf3.

Topology (all in namespaces this script creates and removes):

    ns H ("hypervisor")  t0 ==veth== g0  ns G ("guest")

t0 plays the guest's tap: guest inbound = t0 egress, guest outbound = t0
ingress. Ours: the core's plan (HTB on t0; ingress redirected to an ifb with
HTB). libvirt's method: HTB on t0 for inbound, ingress ``police ... drop`` for
outbound (needs act_police: on a kernel without it the column says so).

Rates compared are link-layer (what tc counts): iperf3's receiver goodput
plus the per-packet headers (TCP: 66 bytes per 1448-byte segment; UDP: 42
bytes per 1400-byte datagram). Target for ours: 0.97-1.02. A group of three
members (floors 15/5/5 % of a shared ceiling) shows each member gets at least
its floor and the sum stays within the ceiling.

Usage (root): python3 bench/shape_accuracy.py [--seconds 6] [--rates 10,100,1000]
"""
import argparse
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shape_common as sc  # noqa: E402  pylint: disable=wrong-import-position

TCP_PAYLOAD, TCP_HDR = 1448, 66
UDP_PAYLOAD, UDP_HDR = 1400, 42
GUEST_MAC = "52:54:00:00:b0:{:02x}"


def wire(goodput, proto):
    payload, hdr = (TCP_PAYLOAD, TCP_HDR) if proto == "tcp" else (UDP_PAYLOAD, UDP_HDR)
    return goodput * (payload + hdr) / payload


class Pair:
    """Namespaces H and G joined by veth t0/g0 (IPs 10.97.<n>.1/.2)."""

    def __init__(self, host_ns, n, guest_ns=None):
        self.h, self.n = host_ns, n
        self.g = guest_ns or sc.netns("g")
        self.tap, self.peer = f"t{n}", f"g{n}"
        self.mac = GUEST_MAC.format(n)
        sc.sh("ip", "-n", self.h, "link", "add", self.tap, "type", "veth", "peer", "name", self.peer,
              "netns", self.g)
        sc.sh("ip", "-n", self.g, "link", "set", self.peer, "address", self.mac)
        sc.sh("ip", "-n", self.h, "addr", "add", f"10.97.{n}.1/24", "dev", self.tap)
        sc.sh("ip", "-n", self.g, "addr", "add", f"10.97.{n}.2/24", "dev", self.peer)
        for ns, dev in ((self.h, self.tap), (self.g, self.peer)):
            sc.sh("ip", "-n", ns, "link", "set", dev, "up")

    def ip(self, side):
        return f"10.97.{self.n}.{1 if side == 'h' else 2}"


def iperf_start_server(ns, port):
    sc.sh("ip", "netns", "exec", ns, "iperf3", "-s", "-1", "-D", "-p", str(port))
    time.sleep(0.3)


def iperf_client(ns, dst, port, proto, mbit, seconds):
    """Run a client; return receiver goodput in bit/s."""
    args = ["ip", "netns", "exec", ns, "iperf3", "-c", dst, "-p", str(port), "-t", str(seconds), "-O", "1", "-J"]
    if proto == "udp":
        args += ["-u", "-l", str(UDP_PAYLOAD), "-b", f"{int(mbit * 2)}M"]
    proc = sc.sh(*args, timeout=seconds * 4 + 30)
    data = json.loads(proc.stdout)
    return data["end"]["sum_received"]["bits_per_second"]


def measure(pair, direction, proto, mbit, seconds, port, counter=None):
    """Inbound: H sends to G through t0 egress. Outbound: G sends to H through t0 ingress.

    Returns (goodput-based ratio, counter-based ratio or None). ``counter`` =
    (ns, dev, classid) of the HTB class that carries exactly the shaped
    traffic: its byte counter over a window in the middle of the run is the
    link-layer rate the shaper let through, untouched by receiver losses.
    """
    if direction == "inbound":
        iperf_start_server(pair.g, port)
        args = (pair.h, pair.ip("g"), port, proto, mbit, seconds + (3 if counter else 0))
    else:
        iperf_start_server(pair.h, port)
        args = (pair.g, pair.ip("h"), port, proto, mbit, seconds + (3 if counter else 0))
    if counter is None:
        return wire(iperf_client(*args), proto) / (mbit * 1e6), None
    got = []
    thread = threading.Thread(target=lambda: got.append(iperf_client(*args)))
    thread.start()
    time.sleep(2)
    ns, dev, classid = counter
    before, t0 = class_bytes(ns, dev).get(classid, 0), time.monotonic()
    time.sleep(seconds)
    after, t1 = class_bytes(ns, dev).get(classid, 0), time.monotonic()
    thread.join(seconds * 4 + 60)
    if not got:
        raise RuntimeError(f"iperf3 {proto} {direction} at {mbit} Mbit/s gave no result")
    return wire(got[0], proto) / (mbit * 1e6), (after - before) * 8 / (t1 - t0) / (mbit * 1e6)


def shape_ours(pair, caps, mbit):
    rate = sc.rate(average=f"{mbit}mbit")
    plan = sc.tcplan.plan_device(pair.tap, caps, inbound=rate, outbound=rate, netns=pair.h)
    sc.apply_ours(plan, caps)
    return plan


def unshape_ours(pair, caps):
    sc.apply_ours(sc.tcplan.plan_absent(pair.tap, netns=pair.h), caps)


def shape_libvirt(pair, caps, mbit):
    """libvirt's commands (virnetdevbandwidth.c) at the same bit rate; burst
    defaults as libvirt's (police burst = one second's worth in KiB)."""
    rate_bytes = mbit * 1_000_000 // 8
    leaf = "sfq" if caps.leaf in ("sfq", "fq_codel") else "pfifo"   # libvirt uses sfq (fails without it)
    cmds = [["tc", "qdisc", "add", "dev", pair.tap, "root", "handle", "1:", "htb", "default", "1"],
            ["tc", "class", "add", "dev", pair.tap, "parent", "1:", "classid", "1:1", "htb",
             "rate", f"{mbit}mbit", "ceil", f"{mbit}mbit", "quantum", str(max(1600, rate_bytes // 10))],
            ["tc", "qdisc", "add", "dev", pair.tap, "parent", "1:1", "handle", "2:", leaf],
            ["tc", "qdisc", "add", "dev", pair.tap, "ingress"],
            ["tc", "filter", "add", "dev", pair.tap, "parent", "ffff:", "protocol", "all", "u32", "match", "u32",
             "0", "0", "police", "rate", f"{mbit}mbit", "burst", f"{max(1, rate_bytes // 1024)}kb",
             "mtu", "64kb", "drop", "flowid", ":1"]]
    sc.run_in(pair.h, cmds)


def unshape_libvirt(pair, caps):  # pylint: disable=unused-argument
    sc.sh("tc", "-n", pair.h, "qdisc", "del", "dev", pair.tap, "root", check=False)
    sc.sh("tc", "-n", pair.h, "qdisc", "del", "dev", pair.tap, "ingress", check=False)


def accuracy_table(caps, rates, seconds, police):
    host = sc.netns("h")
    pair = Pair(host, 1)
    rows = []
    port = 5400
    for mbit in rates:
        methods = [("ours", shape_ours, unshape_ours)]
        if police:
            methods.append(("libvirt", shape_libvirt, unshape_libvirt))
        results = {}
        for name, shape, unshape in methods:
            shape(pair, caps, mbit)
            try:
                for direction in ("inbound", "outbound"):
                    for proto in ("tcp", "udp"):
                        port += 1
                        dev = pair.tap if direction == "inbound" else sc.tcplan.port_ifb(pair.tap)
                        counter = (pair.h, dev, "1:1") if name == "ours" else None
                        results[(name, direction, proto)] = measure(pair, direction, proto, mbit, seconds, port,
                                                                    counter)
            finally:
                unshape(pair, caps)
        for direction in ("inbound", "outbound"):
            for proto in ("tcp", "udp"):
                ours, ours_counted = results[("ours", direction, proto)]
                theirs = results.get(("libvirt", direction, proto), (None, None))[0]
                rows.append((mbit, direction, proto, ours, ours_counted, theirs))
    return rows


def class_bytes(ns, dev):
    """{classid: bytes sent} of every HTB class on dev (tc -s class show)."""
    out, current = {}, None
    for line in sc.sh("tc", "-n", ns, "-s", "class", "show", "dev", dev).stdout.splitlines():
        words = line.split()
        if words[:1] == ["class"]:
            current = words[2]
        elif words[:1] == ["Sent"] and current:
            out[current] = int(words[1])
    return out


def group_test(caps, seconds, ceiling_mbit=30):
    """Three members share ``ceiling_mbit`` with floors 1/2, 1/6, 1/6 of it; all send UDP at once.

    Rates come from the group ifb's HTB class counters over one window common
    to all members (link-layer bytes, exactly what the ceiling limits).
    """
    host = sc.netns("h")
    floors = (ceiling_mbit // 2, ceiling_mbit // 6, ceiling_mbit // 6)
    members = [Pair(host, n + 10) for n in range(3)]
    group = sc.policy.parse_group("benchgrp", {d: {"ceiling": f"{ceiling_mbit}mbit"} for d in ("inbound", "outbound")},
                                  "bench group")
    for pair, floor in zip(members, floors):
        rate = sc.rate(average=f"{ceiling_mbit}mbit", floor=f"{floor}mbit")
        sc.apply_ours(sc.tcplan.plan_device(pair.tap, caps, inbound=rate, outbound=rate, group=group,
                                            mac=pair.mac, netns=host), caps)
    out = []
    try:
        for direction in ("inbound", "outbound"):
            ifb = sc.tcplan.group_ifb("benchgrp", direction)
            threads = []
            for i, pair in enumerate(members):
                port = 5500 + i + (10 if direction == "outbound" else 0)
                if direction == "inbound":
                    iperf_start_server(pair.g, port)
                    args = (host, pair.ip("g"), port, "udp", ceiling_mbit, seconds + 3)
                else:
                    iperf_start_server(host, port)
                    args = (pair.g, pair.ip("h"), port, "udp", ceiling_mbit, seconds + 3)
                threads.append(threading.Thread(target=iperf_client, args=args))
            for thread in threads:
                thread.start()
            time.sleep(2)                                  # all senders running
            before, t0 = class_bytes(host, ifb), time.monotonic()
            time.sleep(seconds)
            after, t1 = class_bytes(host, ifb), time.monotonic()
            for thread in threads:
                thread.join(seconds * 4 + 60)
            rates = {cid: (after[cid] - before.get(cid, 0)) * 8 / (t1 - t0) for cid in after}
            member_ids = sorted(cid for cid in rates if cid not in ("1:1", "1:2"))
            # members got their class numbers in join order (lowest free), i.e. members[0] first
            got = [rates[cid] for cid in member_ids]
            out.append((direction, floors, got, ceiling_mbit, rates["1:1"]))
    finally:
        for pair in members:
            sc.apply_ours(sc.tcplan.plan_absent(pair.tap, mac=pair.mac, netns=host), caps)
    return out


def capacity(seconds):
    """What the veth path carries without any shaping (this machine's CPU limit)."""
    host = sc.netns("h")
    pair = Pair(host, 2)
    out = {}
    for proto in ("tcp", "udp"):
        for direction in ("inbound", "outbound"):
            out[(direction, proto)] = measure(pair, direction, proto, 3000, seconds, 5600 + len(out))[0] * 3000e6
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--rates", default="10,100,1000", help="Mbit/s, comma separated")
    parser.add_argument("--no-group", action="store_true")
    args = parser.parse_args()
    sc.need_root()
    caps = sc.kernel_caps()
    police = sc.has_police()
    print(f"kernel {os.uname().release}; {caps.summary()}")
    if not police:
        print("libvirt's method: act_police is missing on this kernel (CONFIG_NET_ACT_POLICE): "
              "its outbound policing cannot run here; run in the real-kernel lane for that column")
    rates = [int(x) for x in args.rates.split(",")]
    cap = capacity(max(3, args.seconds // 2))
    print("path capacity without shaping (Mbit/s, wire): " +
          ", ".join(f"{d} {p} {v / 1e6:.0f}" for (d, p), v in sorted(cap.items())))
    rows = accuracy_table(caps, rates, args.seconds, police)
    print()
    print("wire rate / configured; goodput = iperf3 receiver goodput + headers, counted = our HTB class's bytes")
    print(f"{'Mbit/s':>7} {'direction':<9} {'proto':<5} {'ours':>7} {'counted':>8} {'libvirt':>8}")
    worst = []
    for mbit, direction, proto, ours, counted, theirs in rows:
        flag = "" if 0.97 <= ours <= 1.02 else "  <- outside 0.97-1.02"
        if cap[(direction, proto)] < 1.05 * mbit * 1e6:
            flag += f" (unshaped path carries only {cap[(direction, proto)] / 1e6:.0f}: CPU-bound here)"
        print(f"{mbit:>7} {direction:<9} {proto:<5} {ours:>7.3f} {counted:>8.3f} "
              f"{(f'{theirs:.3f}' if theirs is not None else 'n/a'):>8}{flag}")
        worst.append(ours)
    print(f"ours (goodput): min {min(worst):.3f} max {max(worst):.3f} over {len(worst)} runs; "
          f"ours (counted): min {min(r[4] for r in rows):.3f} max {max(r[4] for r in rows):.3f}")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
          "(figures from a shared machine under load are lower bounds)")
    if not args.no_group:
        print()
        for direction, floors, got, ceiling, shared in group_test(caps, args.seconds):
            total = sum(got) / 1e6
            parts = ", ".join(f"member{i} {g / 1e6:.2f} (floor {f})" for i, (g, f) in enumerate(zip(got, floors)))
            ok_floor = len(got) == 3 and all(g / 1e6 >= f * 0.97 for g, f in zip(got, floors))
            print(f"group {direction}: ceiling {ceiling} Mbit/s: {parts}; sum {total:.2f} = "
                  f"{total / ceiling:.3f} of ceiling (shared class {shared / 1e6 / ceiling:.3f}); "
                  f"floors met: {'yes' if ok_floor else 'NO'}; "
                  f"within ceiling: {'yes' if total / ceiling <= 1.02 else 'NO'}")


if __name__ == "__main__":
    main()
