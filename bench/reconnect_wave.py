"""Reconnect wave: a libvirtd restart with 10 and 40 running guests, as ratios to a bare interpreter.

When libvirtd starts it calls the qemu hook's `reconnect begin` once per
running guest (each in its own process, which pays the interpreter's start-up)
and the daemon hook's `start` once (the dispatcher reconciles every guest
there too). This bench starts N real guests (type='qemu' TCG, 64 MiB, no
disk, one bridge port each, shaped by a host policy rule), then per round:

  stop libvirtd, wait until it is gone, t0, `libvirtd -d`, and wait until
  `/etc/libvirt/hooks/qemu.d/zz-nvtb-marker` (run by libvirt right after our
  entry program returns) has recorded `reconnect` for all N guests.

wave = last marker - t0. It is measured with two entry programs, interleaved:
  bare  `#!/usr/bin/python3 -I` doing nothing (the floor: libvirtd start-up
        plus one interpreter per guest)
  ours  the dispatcher from this checkout (entry as the hooks role installs it,
        with sys.path on plugins/module_utils), built-in handlers on
and prints wave, wave / N (per guest), per guest / `python3 -c pass`, and
ours / bare. It checks every guest still runs and every tap still carries
our HTB root. Asserts nothing on time.

Root only. Holds /run/nvt-libvirt.lock (NVT_LIBVIRT_LOCK_HELD=1 if you hold
it); saves /etc/libvirt/hooks, /usr/lib/netvirt-hooks, /usr/local/sbin/netvirt-hooks
and puts them back at exit; guests are named nvtb-*, the bridge nvtbrw0,
taps nvtw*; all removed at exit.
Run: /usr/bin/python3 bench/reconnect_wave.py [--sizes 10,40] [-n ROUNDS]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import libvirt_lock  # noqa: E402  pylint: disable=wrong-import-position

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = "/usr/bin/python3"
HOOKS = "/etc/libvirt/hooks"
SAVED = (HOOKS, "/usr/lib/netvirt-hooks", "/usr/local/sbin/netvirt-hooks")
URI = "qemu:///system"
SOCK = "/run/libvirt/libvirt-sock"
BRIDGE = "nvtbrw0"
OURS = """#!/usr/bin/python3 -I
import sys
sys.path.insert(0, %r)
from nvhooks.dispatch.dispatcher import main
sys.exit(main(%r, sys.argv[1:]))
"""
BARE = "#!/usr/bin/python3 -I\n"
MARKER = """#!/bin/sh
[ "$2" = reconnect ] && date +"%%s.%%N $1" >> %s
exit 0
"""
POLICY = {"rules": [{"match": {"guest": "nvtb-*"},
                     "inbound": {"average": "10mbit"}, "outbound": {"average": "10mbit"}}]}


def sh(argv, check=True, **kw):
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, **kw)
    if check and proc.returncode:
        raise SystemExit(f"{' '.join(argv)}: rc {proc.returncode}: {proc.stderr.strip()}")
    return proc


def virsh(*args, check=True, **kw):
    return sh(["virsh", "-q", "-c", URI, *args], check=check, **kw)


def pids(name):
    return [int(p) for p in sh(["pgrep", "-x", name], check=False).stdout.split()]


def write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)
    os.chmod(path, mode)


def install(kind, scratch):
    """Entry programs of ``kind`` (ours | bare) for qemu and daemon, the marker, conf and policy."""
    if os.path.isdir(HOOKS):
        shutil.rmtree(HOOKS)
    lib = os.path.join(REPO, "plugins", "module_utils")
    for driver in ("qemu", "daemon"):
        write(f"{HOOKS}/{driver}", OURS % (lib, driver) if kind == "ours" else BARE, 0o755)
    write(f"{HOOKS}/qemu.d/zz-nvtb-marker", MARKER % os.path.join(scratch, "marks"), 0o755)
    write(f"{HOOKS}/netvirt/dispatcher.conf", f"syslog: no\nlog_dir: {scratch}/logs\n")
    write(f"{HOOKS}/netvirt/policy.json", json.dumps(POLICY))


def ensure_libvirtd(timeout=60):
    if not pids("virtlogd"):
        sh(["virtlogd", "-d"])
    if not pids("libvirtd"):
        sh(["libvirtd", "-d"])
    deadline = time.monotonic() + timeout
    while not (os.path.exists(SOCK) and virsh("version", check=False).returncode == 0):
        if time.monotonic() > deadline:
            raise SystemExit(f"libvirtd did not answer on {SOCK} within {timeout}s")
        time.sleep(0.2)


def stop_libvirtd(timeout=60):
    for pid in pids("libvirtd"):
        os.kill(pid, 15)
    deadline = time.monotonic() + timeout
    while pids("libvirtd"):
        if time.monotonic() > deadline:
            raise SystemExit("libvirtd did not stop")
        time.sleep(0.05)


def domain(i):
    return f"""<domain type='qemu'><name>nvtb-{i}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os><on_poweroff>destroy</on_poweroff>
<devices><emulator>/usr/bin/qemu-system-x86_64</emulator>
<interface type='bridge'><source bridge='{BRIDGE}'/><target dev='nvtw{i}'/><model type='virtio'/></interface>
</devices></domain>"""


def marks(path):
    try:
        with open(path) as handle:
            rows = [line.split() for line in handle if line.strip()]
    except FileNotFoundError:
        return {}
    return {name: float(stamp) for stamp, name in rows}


def wave(n, scratch, timeout=600):
    """One restart: seconds from `libvirtd -d` to the last guest's reconnect marker."""
    path = os.path.join(scratch, "marks")
    stop_libvirtd()
    if os.path.exists(path):
        os.unlink(path)
    t0 = time.time()
    sh(["libvirtd", "-d"])
    deadline = time.monotonic() + timeout
    while True:
        got = marks(path)
        if len(got) >= n:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(got)} of {n} reconnect markers after {timeout}s")
        time.sleep(0.05)
    ensure_libvirtd()
    return max(got.values()) - t0


def check(n):
    running = [x for x in virsh("list", "--name").stdout.split() if x.startswith("nvtb-")]
    if len(running) != n:
        raise SystemExit(f"{len(running)} of {n} guests still run after the restart")
    bare = [f"nvtw{i}" for i in range(n) if "htb" not in sh(["tc", "qdisc", "show", "dev", f"nvtw{i}"]).stdout]
    if bare:
        raise SystemExit(f"no HTB root on {', '.join(bare)}")


def python_pass(rounds=30):
    times = []
    for _round in range(rounds):
        t = time.perf_counter()
        subprocess.run([PY, "-c", "pass"], check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def cleanup(started):
    for i in range(started):
        virsh("destroy", f"nvtb-{i}", check=False)
    sh(["ip", "link", "del", BRIDGE], check=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,40")
    parser.add_argument("-n", "--rounds", type=int, default=2)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (it restarts libvirtd and installs hooks under /etc)")
    sizes = sorted(int(x) for x in args.sizes.split(","))
    held = libvirt_lock.hold("the libvirt lane uses the same libvirtd")
    scratch = tempfile.mkdtemp(prefix="nvt-bench-wave-")
    archive = os.path.join(scratch, "saved.tar")
    with tarfile.open(archive, "w") as tar:
        for path in SAVED:
            if os.path.lexists(path):
                tar.add(path)
    started = 0
    try:
        sh(["ip", "link", "add", BRIDGE, "type", "bridge"])
        sh(["ip", "link", "set", BRIDGE, "up"])
        install("ours", scratch)
        stop_libvirtd()
        ensure_libvirtd()
        for name in virsh("list", "--all", "--name").stdout.split():
            if name.startswith("nvtb-"):
                virsh("destroy", name, check=False)
        base = python_pass()
        print(f"reconnect wave after a libvirtd restart; python3 -c pass {base * 1000:.1f} ms; "
              f"{args.rounds} interleaved rounds per size, medians; load {os.getloadavg()[0]:.2f}", flush=True)
        for n in sizes:
            install("ours", scratch)
            stop_libvirtd()
            ensure_libvirtd()
            while started < n:
                virsh("create", "/dev/stdin", input=domain(started))
                started += 1
            check(n)
            times = {"bare": [], "ours": []}
            for _round in range(args.rounds):
                for kind in ("bare", "ours"):
                    install(kind, scratch)
                    times[kind].append(wave(n, scratch))
                    check(n)
            med = {k: statistics.median(v) for k, v in times.items()}
            for kind in ("bare", "ours"):
                per = med[kind] / n
                print(f"  {n:3d} guests  {kind:4s}  wave {med[kind]:6.2f} s  per guest {per * 1000:7.1f} ms  "
                      f"per guest / python3 -c pass {per / base:5.2f}x", flush=True)
            print(f"  {n:3d} guests  ours / bare {med['ours'] / med['bare']:.2f}x  (rounds: ours "
                  f"{', '.join(f'{t:.2f}' for t in times['ours'])} s; bare "
                  f"{', '.join(f'{t:.2f}' for t in times['bare'])} s; load {os.getloadavg()[0]:.2f})", flush=True)
    finally:
        cleanup(started)
        if os.path.isdir(HOOKS):
            shutil.rmtree(HOOKS)
        for path in SAVED:
            if os.path.lexists(path) and not os.path.isdir(path):
                os.unlink(path)
        with tarfile.open(archive) as tar:
            tar.extractall("/")          # noqa: S202  our own archive of root-owned paths
        stop_libvirtd()
        ensure_libvirtd()                # libvirt re-reads its hook programs at start
        shutil.rmtree(scratch, ignore_errors=True)
        if held:
            held.close()


if __name__ == "__main__":
    main()
