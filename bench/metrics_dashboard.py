"""Real samples for the Grafana dashboard's picture (docs/metrics.md), and the picture itself.

``--collect FILE``: three "guests" whose ports are veths in a namespace this
script creates (their NICs in a second one), shaped by ``netvirt-hooks
apply`` from status XML and a host policy under a scratch
NETVIRT_HOOKS_ROOT, exactly as on a hypervisor. iperf3 runs a fixed
timeline of TCP and UDP flows through them while a scraper in the same
namespace serves the metrics with ``nvhooks.metrics.export.serve`` and GETs
``/metrics`` over HTTP every 2 s, as Prometheus would. Every sample of
every netvirt series is written to FILE (JSON).

``--render FILE PNG``: the dashboard's panels (docs/grafana/netvirt-shaping.json),
each computed from those samples with the same query as the panel (rate()
over successive scrapes, sums by the same labels), drawn with matplotlib
(apt python3-matplotlib): Grafana itself cannot be installed here.

FILE may end in .gz (docs/images/metrics-dashboard.json.gz holds the samples of the committed picture).

Usage (root for --collect): python3 bench/metrics_dashboard.py --collect docs/images/metrics-dashboard.json.gz
  python3 bench/metrics_dashboard.py --render docs/images/metrics-dashboard.json.gz docs/images/metrics-dashboard.png
"""
import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shape_common as sc  # noqa: E402  pylint: disable=wrong-import-position

NS_URI = "https://github.com/netvirt/libvirt_hooks/xmlns/policy/1"
LIB = os.path.join(sc.REPO, "plugins", "module_utils")
STEP = 2.0            # seconds between scrapes
DURATION = 100.0
# guest, MAC, its port's policy (metadata) ; the group is in the host policy
GUESTS = (("web1", "52:54:00:d0:00:01", "<nv:group name='web'/>"),
          ("web2", "52:54:00:d0:00:02", "<nv:group name='web'/>"),
          ("db1", "52:54:00:d0:00:03", "<nv:inbound average='8mbit'/><nv:outbound average='4mbit'/>"))
HOST_POLICY = {"groups": {"web": {"inbound": {"ceiling": "20mbit", "floor": "4mbit"},
                                  "outbound": {"ceiling": "20mbit", "floor": "4mbit"}}}}
# UDP offered at 32 Mbit/s from one socket whose send buffer is forced to 8 MiB: with the default
# buffer the sender blocks long before the leaf queue (1000 packets) is full (a queued packet stays
# charged to its socket), iperf3 included, and nothing is ever dropped
UDP_FLOOD = "flood"
FLOOD = textwrap.dedent("""
    import socket, sys, time
    src, dst, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, 32, 8 << 20)       # SO_SNDBUFFORCE (root)
    sock.bind((src, 0))
    payload, gap = bytes(1400), 1400 * 8 / 32e6
    start = next_at = time.monotonic()
    while time.monotonic() - start < seconds:
        for _unused in range(20):
            sock.sendto(payload, (dst, 9))
        next_at += 20 * gap
        time.sleep(max(0.0, next_at - time.monotonic()))
""")
# (start s, seconds, guest index, direction as the guest sees it, iperf3 extra args)
TIMELINE = ((4, 90, 0, "outbound", []),                       # web1 sends TCP all along
            (30, 45, 1, "outbound", UDP_FLOOD),                # web2 floods UDP: the group is shared
            (10, 45, 2, "inbound", []),                        # db1 receives TCP at its rate
            (62, 28, 2, "inbound", UDP_FLOOD))                 # then 4 times its rate in UDP: drops

SCRAPER = textwrap.dedent("""
    import json, sys, time, urllib.request
    sys.path.insert(0, sys.argv[1])
    from nvhooks.metrics import export
    from prometheus_client.parser import text_string_to_metric_families
    server = export.serve("127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.port}/metrics"
    out, start, step, until = [], time.monotonic(), float(sys.argv[3]), float(sys.argv[4])
    while time.monotonic() - start < until:
        t = time.monotonic() - start
        with urllib.request.urlopen(url, timeout=10) as answer:
            text = answer.read().decode()
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name.startswith("netvirt_"):
                    out.append([round(t, 3), s.name, s.labels, s.value])
        time.sleep(max(0.0, step - (time.monotonic() - start - t)))
    server.shutdown()
    json.dump({"step": step, "samples": out}, open(sys.argv[2], "w"))
""")


def _status_xml(n, name, mac, tap, meta):
    uuid = f"6f1e3c6a-8d1e-4b7a-9c8e-0a5b2d1f{n:04d}"
    return (f"<domstatus state='running' pid='1'><domain type='qemu' id='1'><name>{name}</name><uuid>{uuid}</uuid>"
            f"<memory>65536</memory><metadata><nv:policy xmlns:nv='{NS_URI}'><nv:interface mac='{mac}'>{meta}"
            f"</nv:interface></nv:policy></metadata><devices><interface type='ethernet'><mac address='{mac}'/>"
            f"<target dev='{tap}'/></interface></devices></domain></domstatus>")


def collect(path):
    sc.need_root()
    hns, gns = sc.netns("h"), sc.netns("g")
    root = tempfile.mkdtemp(prefix="nvtb-metrics-")
    os.makedirs(os.path.join(root, "run/libvirt/qemu"))
    policy = os.path.join(root, "policy.json")
    with open(policy, "w", encoding="utf-8") as handle:
        json.dump(HOST_POLICY, handle)
    env = ["env", f"NETVIRT_HOOKS_ROOT={root}"]
    cli = "import sys; sys.path.insert(0, sys.argv.pop(1)); from nvhooks.cli import main; sys.exit(main())"
    for n, (name, mac, meta) in enumerate(GUESTS):
        tap, nic = f"nvtbt{n}", f"nvtbn{n}"
        sc.sh("ip", "link", "add", tap, "netns", hns, "type", "veth", "peer", "name", nic, "netns", gns)
        sc.sh("ip", "-n", gns, "link", "set", nic, "address", mac)
        sc.sh("ip", "-n", hns, "addr", "add", f"10.80.{n}.1/24", "dev", tap)
        sc.sh("ip", "-n", gns, "addr", "add", f"10.80.{n}.2/24", "dev", nic)
        sc.sh("ip", "-n", hns, "link", "set", tap, "up")
        sc.sh("ip", "-n", gns, "link", "set", nic, "up")
        with open(os.path.join(root, f"run/libvirt/qemu/{name}.xml"), "w", encoding="utf-8") as handle:
            handle.write(_status_xml(n, name, mac, tap, meta))
        sc.sh("ip", "netns", "exec", hns, *env, sys.executable, "-c", cli, LIB, "--policy", policy, "apply", name)
    # the host policy the scraper reads: the default path under the scratch root
    dest = os.path.join(root, "etc/libvirt/hooks/netvirt")
    os.makedirs(dest)
    os.replace(policy, os.path.join(dest, "policy.json"))
    servers = []
    for n in range(len(GUESTS)):      # a receiver on each side of each port
        for ns, addr in ((hns, f"10.80.{n}.1"), (gns, f"10.80.{n}.2")):
            servers.append(subprocess.Popen(["ip", "netns", "exec", ns, "iperf3", "-s", "-B", addr, "-p", "5201"],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(1)
    scraper_py = os.path.join(root, "scraper.py")
    with open(scraper_py, "w", encoding="utf-8") as handle:
        handle.write(SCRAPER)
    scraper = subprocess.Popen(["ip", "netns", "exec", hns, *env, sys.executable, scraper_py, LIB, path, str(STEP),
                                str(DURATION)])
    flows = [threading.Timer(start, _flow, (hns, gns, n, direction, seconds, extra))
             for start, seconds, n, direction, extra in TIMELINE]
    for flow in flows:
        flow.start()
    scraper.wait()
    if path.endswith(".gz"):
        with open(path, "rb") as raw:
            data = raw.read()
        with gzip.open(path, "wb") as packed:
            packed.write(data)
    for flow in flows:
        flow.join()
    for server in servers:
        server.terminate()
        server.wait()
    print(f"samples written to {path}")


def _flow(hns, gns, n, direction, seconds, extra):
    # guest outbound: the guest's NIC sends to the host side; inbound: the other way
    ns, src, dst = (gns, f"10.80.{n}.2", f"10.80.{n}.1") if direction == "outbound" else \
        (hns, f"10.80.{n}.1", f"10.80.{n}.2")
    argv = [sys.executable, "-c", FLOOD, src, dst, str(seconds)] if extra == UDP_FLOOD else \
        ["iperf3", "-c", dst, "-B", src, "-p", "5201", "-t", str(seconds), *extra]
    subprocess.run(["ip", "netns", "exec", ns, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=False)


# ---------------------------------------------------------------- the panels' queries, on the samples

def _series(samples, name, by):
    """{label tuple: [(t, value)]} summed by ``by`` at each scrape (sum by (...) (name))."""
    out = {}
    for t, metric, labels, value in samples:
        if metric != name:
            continue
        key = tuple(labels.get(b, "") for b in by)
        points = out.setdefault(key, {})
        points[t] = points.get(t, 0.0) + value
    return {k: sorted(v.items()) for k, v in out.items()}


def _rate(points, scale=1.0):
    """rate() over successive scrapes."""
    return [(t1, (v1 - v0) / (t1 - t0) * scale) for (t0, v0), (t1, v1) in zip(points, points[1:])]


def render(path, png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    with (gzip.open if path.endswith(".gz") else open)(path, "rt", encoding="utf-8") as handle:
        samples = json.load(handle)["samples"]
    plt.style.use("dark_background")
    fig, axes = plt.subplots(2, 2, figsize=(14, 8), facecolor="#111217")
    fig.suptitle("netvirt.libvirt_hooks: shaping (the Grafana dashboard's panels, rendered with matplotlib "
                 "from real scraped samples)", fontsize=11)
    colors = {}

    def color(key):
        return colors.setdefault(key, f"C{len(colors)}")

    ax = axes[0][0]
    ax.set_title("Rate vs configured rate, per guest (bit/s)")
    rates = _series(samples, "netvirt_port_bytes_total", ("guest", "direction"))
    configured = _series(samples, "netvirt_port_rate_bytes_per_second", ("guest", "direction"))
    for key, points in sorted(rates.items()):
        line = _rate(points, 8)
        if max((v for _t, v in line), default=0) < 100_000:
            continue                                  # an idle direction: as a Grafana legend hiding zeros
        ax.plot(*zip(*line), color=color(key), label=" ".join(key))
        ax.plot(*zip(*[(t, v * 8) for t, v in configured[key]]), color=color(key), linestyle="--",
                label=f"{' '.join(key)} configured")
    ax.legend(fontsize=7, loc="upper right")

    ax = axes[0][1]
    ax.set_title("Drops per second, per guest")
    for key, points in sorted(_series(samples, "netvirt_port_drops_total", ("guest", "direction")).items()):
        line = _rate(points)
        if max((v for _t, v in line), default=0) > 0:
            ax.plot(*zip(*line), color=color(key), label=" ".join(key))
    ax.legend(fontsize=7, loc="upper right")

    ax = axes[1][0]
    ax.set_title("Group sharing: web outbound (bit/s, stacked) and its ceiling")
    by_member = _series(samples, "netvirt_port_bytes_total", ("group", "direction", "guest"))
    members = {k: _rate(v, 8) for k, v in by_member.items() if k[0] == "web" and k[1] == "outbound"}
    if members:
        times = [t for t, _v in next(iter(members.values()))]
        ax.stackplot(times, *[[v for _t, v in line] for _k, line in sorted(members.items())],
                     labels=[k[2] for k in sorted(members)], colors=[color(("share",) + k) for k in sorted(members)])
    ceiling = _series(samples, "netvirt_group_rate_bytes_per_second", ("group", "direction")).get(("web", "outbound"))
    if ceiling:
        ax.plot(*zip(*[(t, v * 8) for t, v in ceiling]), color="white", linestyle="--", label="group ceiling")
    ax.legend(fontsize=7, loc="upper right")

    ax = axes[1][1]
    ax.set_title("Backlog, per guest (bytes queued)")
    for key, points in sorted(_series(samples, "netvirt_port_backlog_bytes", ("guest", "direction")).items()):
        if max(v for _t, v in points) > 0:
            ax.plot(*zip(*points), color=color(key), label=" ".join(key))
    ax.legend(fontsize=7, loc="upper right")
    for ax in (a for row in axes for a in row):
        ax.set_facecolor("#181b1f")
        ax.grid(color="#2c3235")
        ax.set_xlabel("seconds", fontsize=8)
        ax.tick_params(labelsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=80, facecolor=fig.get_facecolor())
    print(f"picture written to {png}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--collect", metavar="FILE")
    parser.add_argument("--render", nargs=2, metavar=("FILE", "PNG"))
    args = parser.parse_args()
    if args.collect:
        collect(args.collect)
    if args.render:
        render(*args.render)
    if not args.collect and not args.render:
        parser.error("--collect and/or --render")


if __name__ == "__main__":
    main()
