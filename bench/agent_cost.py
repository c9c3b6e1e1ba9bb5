"""Memory and CPU of `netvirt-hooks agent`, idle and with N running guests whose ports it shapes.

Starts the agent from this tree (Debian's python, python3-libvirt; --tree
runs another checkout, for a before/after) with a host policy whose rule
shapes every bench guest's port both ways, and --only on this bench's guests.
With N > 0 it first starts N tiny guests (TCG, 64 MiB, no disk, one
`type='ethernet'` tap each, no option ROM, boot from the missing disk, so
SeaBIOS waits idle), waits until the agent has shaped every tap (HTB root),
then samples the agent's RSS (VmRSS, VmHWM from /proc) and CPU time
(utime+stime) over a window with nothing happening, and the guests' qemu
processes' CPU over the same window. Prints the figures; asserts nothing.

Root only. Holds /run/nvt-libvirt.lock (NVT_LIBVIRT_LOCK_HELD=1 if you hold
it) and starts libvirtd if it is down; guests nvtb-agent-*, taps nvtb*, all
removed at exit.

    /usr/bin/python3 bench/agent_cost.py --guests 0,50 --window 30

Issue #13's target: under 40 MiB RSS and under 1% of one core when idle.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import libvirt_lock  # noqa: E402  pylint: disable=wrong-import-position

LAUNCH = ("import sys; sys.path.insert(0, sys.argv.pop(1)); from nvhooks.cli import main; "
          "sys.exit(main(sys.argv[1:]))")
HZ = os.sysconf("SC_CLK_TCK")
PREFIX = "52:54:00:b8"


def virsh(*args, data=None):
    return subprocess.run(["virsh", "-c", "qemu:///system", *args], input=data, capture_output=True, text=True,
                          check=False, timeout=120)


def guest_xml(name, index):
    mac = f"{PREFIX}:{index // 256:02x}:{index % 256:02x}"
    return f"""<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os><on_poweroff>destroy</on_poweroff>
<devices><emulator>/usr/bin/qemu-system-x86_64</emulator>
<interface type='ethernet'><mac address='{mac}'/><target dev='nvtb{index:04d}'/><model type='virtio'/>
<rom enabled='no'/></interface></devices></domain>"""


def proc_figures(pid):
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        status = dict(line.split(":", 1) for line in handle if ":" in line)
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024, cpu_seconds(pid)


def pss_mib(pid):
    """Proportional set size: shared pages (libvirt.so, which libvirtd maps too) counted by share."""
    with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("Pss:")) / 1024


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / HZ


def qemu_pids(names):
    pids = []
    for name in names:
        try:
            with open(f"/run/libvirt/qemu/{name}.pid", encoding="ascii") as handle:
                pids.append(int(handle.read().strip()))
        except (OSError, ValueError):
            pass
    return pids


def shaped(tap):
    out = subprocess.run(["tc", "qdisc", "show", "dev", tap], capture_output=True, text=True, check=False).stdout
    return "qdisc htb" in out


def wait_until(what, predicate, timeout):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


def measure(count, window, tmp, tree):
    names = [f"nvtb-agent-{i}" for i in range(count)]
    policy = os.path.join(tmp, "policy.json")
    with open(policy, "w", encoding="utf-8") as handle:
        json.dump({"rules": [{"match": {"mac": f"{PREFIX}:*"},
                              "inbound": {"average": "8mbit"}, "outbound": {"average": "4mbit"}}]}, handle)
    log_path = os.path.join(tmp, f"agent-{count}.log")
    agent = None
    try:
        for index, name in enumerate(names):
            proc = virsh("create", "/dev/stdin", data=guest_xml(name, index))
            if proc.returncode != 0:
                raise RuntimeError(f"{name}: {proc.stderr.strip()}")
        with open(log_path, "w", encoding="utf-8") as log:
            agent = subprocess.Popen(["/usr/bin/python3", "-c", LAUNCH, tree, "agent",  # pylint: disable=consider-using-with
                                      "--policy", policy, "--only", "nvtb-agent-*"],
                                     stdout=log, stderr=subprocess.STDOUT)
        wait_until("the agent's connection", lambda: "connected to libvirt" in open(log_path, encoding="utf-8").read(),
                   120)
        wait_until("every tap shaped", lambda: all(shaped(f"nvtb{i:04d}") for i in range(count)), 300)
        time.sleep(3)                      # let start-up work settle
        qemus = qemu_pids(names)
        _rss0, _hwm0, cpu0 = proc_figures(agent.pid)
        guests0 = sum(cpu_seconds(pid) for pid in qemus)
        start = time.monotonic()
        time.sleep(window)
        rss, hwm, cpu1 = proc_figures(agent.pid)
        pss = pss_mib(agent.pid)
        guests1 = sum(cpu_seconds(pid) for pid in qemus)
        elapsed = time.monotonic() - start
        return {"guests": count, "rss_mib": rss, "pss_mib": pss, "peak_rss_mib": hwm,
                "idle_cpu_pct_of_one_core": 100.0 * (cpu1 - cpu0) / elapsed,
                "guests_cpu_pct_of_one_core": 100.0 * (guests1 - guests0) / elapsed,
                "load": os.getloadavg()[0]}
    finally:
        if agent is not None:
            agent.terminate()
            agent.wait(timeout=30)
        for name in names:
            virsh("destroy", name)
        subprocess.run(["/usr/bin/python3", "-c", LAUNCH, tree, "gc"], capture_output=True, check=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--guests", default="0,50", help="guest counts to measure (default 0,50)")
    parser.add_argument("--window", type=float, default=30.0, help="idle sampling window, seconds")
    parser.add_argument("--tree", default=os.path.join(HERE, "..", "plugins", "module_utils"),
                        help="plugins/module_utils of the checkout to run (default: this one)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    lock = libvirt_lock.hold("agent cost bench: guests")  # noqa: F841  pylint: disable=unused-variable
    libvirt_lock.ensure_libvirtd()
    with tempfile.TemporaryDirectory(prefix="nvtb-agent-") as tmp:
        print(f"{'guests':>6} {'RSS MiB':>8} {'PSS MiB':>8} {'peak MiB':>9} {'agent CPU % of a core':>22} "
              f"{'guests CPU % of a core':>23} {'load':>5}")
        for count in (int(c) for c in args.guests.split(",")):
            row = measure(count, args.window, tmp, args.tree)
            print(f"{row['guests']:>6} {row['rss_mib']:>8.1f} {row['pss_mib']:>8.1f} {row['peak_rss_mib']:>9.1f} "
                  f"{row['idle_cpu_pct_of_one_core']:>22.2f} {row['guests_cpu_pct_of_one_core']:>23.1f} "
                  f"{row['load']:>5.2f}", flush=True)
    print("target: RSS under 40 MiB, agent CPU under 1% of one core when idle (2 shared cores here)")


if __name__ == "__main__":
    main()
