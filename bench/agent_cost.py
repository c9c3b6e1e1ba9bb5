"""Memory and CPU of `netvirt-hooks agent`, idle and with N running guests.

Starts the agent from this tree (Debian's python, python3-libvirt) under the
libvirt lock, with an empty host policy and --only on this bench's guests,
optionally starts N tiny guests (TCG, 64 MiB, no disk, one tap each: libvirt
`type='ethernet'`), waits until the agent has converged them, then samples
the agent's RSS (VmRSS, VmHWM from /proc) and CPU time (utime+stime) over a
window with nothing happening. Prints the figures; asserts nothing.

    sudo flock -o /run/nvt-libvirt.lock /usr/bin/python3 bench/agent_cost.py --guests 0,10 --window 20

Issue #13's target: under 40 MiB RSS and under 1% of one core when idle.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid

TREE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "plugins", "module_utils")
LAUNCH = ("import sys; sys.path.insert(0, sys.argv.pop(1)); from nvhooks.cli import main; "
          "sys.exit(main(sys.argv[1:]))")
HZ = os.sysconf("SC_CLK_TCK")


def virsh(*args, data=None):
    return subprocess.run(["virsh", "-c", "qemu:///system", *args], input=data, capture_output=True, text=True,
                          check=False, timeout=120)


def guest_xml(name):
    tap = "nvtb" + uuid.uuid4().hex[:8]
    return f"""<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type></os><on_poweroff>destroy</on_poweroff>
<devices><emulator>/usr/bin/qemu-system-x86_64</emulator>
<interface type='ethernet'><target dev='{tap}'/><model type='virtio'/></interface></devices></domain>"""


def proc_figures(pid):
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        status = dict(line.split(":", 1) for line in handle if ":" in line)
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / HZ
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024, cpu


def measure(count, window, tmp):
    names = [f"nvtb-agent-{i}" for i in range(count)]
    for name in names:
        virsh("create", "/dev/stdin", data=guest_xml(name))
    policy = os.path.join(tmp, "policy.json")
    with open(policy, "w", encoding="utf-8") as handle:
        handle.write("{}")
    log = open(os.path.join(tmp, f"agent-{count}.log"), "w", encoding="utf-8")  # pylint: disable=consider-using-with
    agent = subprocess.Popen(["/usr/bin/python3", "-c", LAUNCH, TREE, "agent", "--policy", policy,  # pylint: disable=consider-using-with
                              "--only", "nvtb-agent-*"], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with open(log.name, encoding="utf-8") as handle:
                if "connected to libvirt" in handle.read():
                    break
            time.sleep(0.2)
        time.sleep(3)                      # let start-up work settle
        _rss0, _hwm0, cpu0 = proc_figures(agent.pid)
        start = time.monotonic()
        time.sleep(window)
        rss, hwm, cpu1 = proc_figures(agent.pid)
        elapsed = time.monotonic() - start
        return {"guests": count, "rss_mib": rss, "peak_rss_mib": hwm,
                "idle_cpu_pct_of_one_core": 100.0 * (cpu1 - cpu0) / elapsed}
    finally:
        agent.terminate()
        agent.wait(timeout=30)
        log.close()
        for name in names:
            virsh("destroy", name)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--guests", default="0,10", help="guest counts to measure (default 0,10)")
    parser.add_argument("--window", type=float, default=20.0, help="idle sampling window, seconds")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    with tempfile.TemporaryDirectory(prefix="nvtb-agent-") as tmp:
        print(f"{'guests':>6} {'RSS MiB':>8} {'peak MiB':>9} {'idle CPU % of a core':>21}")
        for count in (int(c) for c in args.guests.split(",")):
            row = measure(count, args.window, tmp)
            print(f"{row['guests']:>6} {row['rss_mib']:>8.1f} {row['peak_rss_mib']:>9.1f} "
                  f"{row['idle_cpu_pct_of_one_core']:>21.2f}")
    print(f"load average: {os.getloadavg()[0]:.2f} (2 shared cores)")


if __name__ == "__main__":
    main()
