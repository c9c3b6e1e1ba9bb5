"""Cost of one metrics scrape with many shaped guests: `netvirt-hooks metrics` and render().

N guests (one port each, both directions shaped; every other one a member
of group ``web`` instead) on veth ports in a namespace this script creates,
shaped by the core from status XML under a scratch NETVIRT_HOOKS_ROOT as on
a hypervisor. Prints, from one run: the command's wall time against
``/usr/bin/python3 -c pass``, and in-process (as the agent's scrape pays
it) the seconds of a snapshot and of its exposition, per port.

Usage (root): python3 bench/metrics_scale.py [--guests 50]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shape_common as sc  # noqa: E402  pylint: disable=wrong-import-position

NS_URI = "https://github.com/netvirt/libvirt_hooks/xmlns/policy/1"
LIB = os.path.join(sc.REPO, "plugins", "module_utils")
IN_NS = textwrap.dedent("""
    import json, logging, os, sys, time
    sys.path.insert(0, sys.argv[1])
    from nvhooks.guests import running
    from nvhooks.policy import model
    from nvhooks.shaping import hook as shapehook
    from nvhooks.metrics import collect, export
    host = model.load_host_policy(sys.argv[2])
    log = logging.getLogger("bench")
    for domain in running.domains():
        shapehook.apply_guest(domain, host, log)
    times = {"snapshot": [], "render": []}
    for _unused in range(5):
        t0 = time.perf_counter()
        snap = collect.snapshot(host)
        t1 = time.perf_counter()
        data = export.exposition(snap)
        times["snapshot"].append(t1 - t0)
        times["render"].append(time.perf_counter() - t1)
    print(json.dumps({"ports": len(snap["ports"]), "groups": len(snap["groups"]), "errors": snap["errors"],
                      "bytes": len(data), "times": times}))
""")


def _status_xml(n, tap, mac, grouped):
    meta = "<nv:group name='web'/>" if grouped else "<nv:inbound average='10mbit'/><nv:outbound average='5mbit'/>"
    return (f"<domstatus state='running' pid='1'><domain type='qemu' id='1'><name>g{n}</name>"
            f"<uuid>6f1e3c6a-8d1e-4b7a-9c8e-0a5b2d1f{n:04d}</uuid><memory>65536</memory>"
            f"<metadata><nv:policy xmlns:nv='{NS_URI}'><nv:interface mac='{mac}'>{meta}</nv:interface></nv:policy>"
            f"</metadata><devices><interface type='ethernet'><mac address='{mac}'/><target dev='{tap}'/>"
            f"</interface></devices></domain></domstatus>")


def _wall(argv, env, runs=5):
    out = []
    for _unused in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        out.append(time.perf_counter() - start)
    return statistics.median(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--guests", type=int, default=50)
    args = parser.parse_args()
    sc.need_root()
    ns = sc.netns("m")
    root = tempfile.mkdtemp(prefix="nvtb-metrics-")
    os.makedirs(os.path.join(root, "run/libvirt/qemu"))
    policy = os.path.join(root, "etc/libvirt/hooks/netvirt/policy.json")
    os.makedirs(os.path.dirname(policy))
    with open(policy, "w", encoding="utf-8") as handle:
        json.dump({"groups": {"web": {"inbound": {"ceiling": "1gbit"}, "outbound": {"ceiling": "1gbit"}}}}, handle)
    for n in range(args.guests):
        tap, mac = f"nvtbm{n}", f"52:54:00:e0:{n // 256:02x}:{n % 256:02x}"
        sc.sh("ip", "-n", ns, "link", "add", tap, "type", "veth", "peer", "name", f"nvtbp{n}")
        sc.sh("ip", "-n", ns, "link", "set", tap, "up")
        with open(os.path.join(root, f"run/libvirt/qemu/g{n}.xml"), "w", encoding="utf-8") as handle:
            handle.write(_status_xml(n, tap, mac, n % 2 == 1))
    env = dict(os.environ, NETVIRT_HOOKS_ROOT=root)
    script = os.path.join(root, "in_ns.py")
    with open(script, "w", encoding="utf-8") as handle:
        handle.write(IN_NS)
    inner = json.loads(subprocess.run(["ip", "netns", "exec", ns, sys.executable, script, LIB, policy], env=env,
                                      capture_output=True, text=True, check=True).stdout)
    cli = ["ip", "netns", "exec", ns, sys.executable, "-c",
           "import sys; sys.path.insert(0, sys.argv.pop(1)); from nvhooks.cli import main; sys.exit(main())",
           LIB, "metrics"]
    command = _wall(cli, env)
    bare = _wall(["ip", "netns", "exec", ns, sys.executable, "-c", "pass"], env)
    snap, render = statistics.median(inner["times"]["snapshot"]), statistics.median(inner["times"]["render"])
    ports = inner["ports"]
    print(f"guests {args.guests}: {ports} port samples, {inner['groups']} group samples, "
          f"{inner['bytes']} bytes of exposition, errors {len(inner['errors'])}")
    print(f"netvirt-hooks metrics: {command:.3f} s = {command / bare:.1f}x python3 -c pass ({bare:.3f} s)")
    print(f"in process: snapshot {snap:.3f} s ({snap / max(ports, 1) * 1000:.1f} ms per port sample), "
          f"exposition {render:.3f} s")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
