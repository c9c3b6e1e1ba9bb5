"""The agent's reaction times on the real libvirtd: hot-plug shaped, detach cleaned, drift healed.

Issue #13's targets: a NIC attached to a running guest is shaped within 1 s;
our qdiscs removed by hand are restored within 2 s. One guest (TCG, ACPI,
Debian's kernel from a busybox initramfs, so that a PCI hot-unplug
completes), one bridge, the agent from this tree (Debian's python,
python3-libvirt) with a host rule shaping MACs 52:54:00:b7:*. Per round:

  plug    `virsh attach-interface --live` returns -> the new tap has our HTB root
  heal    `tc qdisc del dev TAP root` returns -> our HTB root is back
  unplug  `virsh detach-interface --live` returns -> the port's ifb is gone

Polls every 5 ms (`tc` / /sys), so a figure is at most ~10 ms late. Prints
median and max per figure against the target; asserts nothing.

Root only. Holds /run/nvt-libvirt.lock (NVT_LIBVIRT_LOCK_HELD=1 if you hold
it) while the guest exists; the guest (nvtb-lat-*), bridge (nvtbrl*) and
taps (nvtl*) are removed at exit.
Run: /usr/bin/python3 bench/agent_latency.py [-n ROUNDS]
"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
TREE = os.path.join(HERE, "..", "plugins", "module_utils")
sys.path.insert(0, HERE)
sys.path.insert(0, TREE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "helpers"))
import initramfs  # noqa: E402  pylint: disable=wrong-import-position
import libvirt_lock  # noqa: E402  pylint: disable=wrong-import-position
from nvhooks.shaping import plan as tcplan  # noqa: E402  pylint: disable=wrong-import-position

LAUNCH = ("import sys; sys.path.insert(0, sys.argv.pop(1)); from nvhooks.cli import main; "
          "sys.exit(main(sys.argv[1:]))")
PREFIX = "52:54:00:b7"
TARGETS = {"plug": 1.0, "heal": 2.0, "unplug": None}
POLL = 0.005


def run(*argv, data=None, check=True):
    proc = subprocess.run(list(argv), input=data, capture_output=True, text=True, check=False, timeout=120)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip()}")
    return proc


def virsh(*args, **kwargs):
    return run("virsh", "-c", "qemu:///system", *args, **kwargs)


def guest_xml(name, kernel, initrd, console):
    return f"""<domain type='qemu'><name>{name}</name><memory unit='MiB'>160</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type><kernel>{kernel}</kernel><initrd>{initrd}</initrd>
<cmdline>console=ttyS0 panic=-1</cmdline></os><features><acpi/></features><on_poweroff>destroy</on_poweroff>
<devices><emulator>/usr/bin/qemu-system-x86_64</emulator>
<serial type='file'><source path='{console}'/></serial></devices></domain>"""


def shaped(tap):
    return "qdisc htb" in run("tc", "qdisc", "show", "dev", tap, check=False).stdout


def wait(predicate, timeout=30.0):
    """Seconds until predicate() holds (polled), measured from the call."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise RuntimeError("timed out")
        time.sleep(POLL)
    return time.monotonic() - start


def wait_log(path, text, timeout=120.0):
    wait(lambda: text in open(path, encoding="utf-8", errors="replace").read(), timeout)


def rounds(guest, bridge, count):
    figures = {"plug": [], "heal": [], "unplug": []}
    for i in range(count):
        tap, mac = f"nvtl{uuid.uuid4().hex[:8]}", f"{PREFIX}:00:{i + 1:02x}"
        virsh("attach-interface", guest, "bridge", bridge, "--target", tap, "--mac", mac, "--model", "virtio",
              "--live")
        figures["plug"].append(wait(lambda: shaped(tap)))       # pylint: disable=cell-var-from-loop
        time.sleep(0.5)                                          # the converge's own notifications pass
        run("tc", "qdisc", "del", "dev", tap, "root")
        figures["heal"].append(wait(lambda: shaped(tap)))       # pylint: disable=cell-var-from-loop
        time.sleep(0.5)
        ifb = f"/sys/class/net/{tcplan.port_ifb(tap)}"
        assert os.path.exists(ifb), ifb
        virsh("detach-interface", guest, "bridge", "--mac", mac, "--live")
        figures["unplug"].append(wait(lambda: not os.path.exists(ifb)))  # pylint: disable=cell-var-from-loop
        print(f"round {i + 1}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in figures.items()), flush=True)
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("-n", "--rounds", type=int, default=5)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    kernel = sorted(glob.glob("/boot/vmlinuz-*"))[-1]
    suffix = uuid.uuid4().hex[:6]
    guest, bridge = f"nvtb-lat-{suffix}", f"nvtbrl{suffix}"
    lock = libvirt_lock.hold("agent latency bench: one guest")  # noqa: F841  pylint: disable=unused-variable
    libvirt_lock.ensure_libvirtd()
    with tempfile.TemporaryDirectory(prefix="nvtb-lat-") as tmp:
        os.makedirs("/var/lib/libvirt/boot", exist_ok=True)
        initrd, console = f"/var/lib/libvirt/boot/{guest}.img", f"/var/lib/libvirt/boot/{guest}.log"
        policy, log_path = os.path.join(tmp, "policy.json"), os.path.join(tmp, "agent.log")
        with open(policy, "w", encoding="utf-8") as handle:
            json.dump({"rules": [{"match": {"mac": f"{PREFIX}:*"},
                                  "inbound": {"average": "8mbit"}, "outbound": {"average": "4mbit"}}]}, handle)
        agent = None
        try:
            run("ip", "link", "add", bridge, "type", "bridge")
            run("ip", "link", "set", bridge, "up")
            initramfs.write(initrd)
            virsh("create", "/dev/stdin", data=guest_xml(guest, kernel, initrd, console))
            with open(log_path, "w", encoding="utf-8") as log:
                agent = subprocess.Popen(["/usr/bin/python3", "-c", LAUNCH, TREE, "agent", "--policy", policy,  # pylint: disable=consider-using-with
                                          "--only", guest], stdout=log, stderr=subprocess.STDOUT)
            wait_log(log_path, "connected to libvirt")
            wait(lambda: os.path.exists(console) and b"Run /init" in open(console, "rb").read(), 300)
            figures = rounds(guest, bridge, args.rounds)
        finally:
            if agent is not None:
                agent.terminate()
                agent.wait(timeout=30)
            virsh("destroy", guest, check=False)
            run("ip", "link", "del", bridge, check=False)
            for path in (initrd, console):
                if os.path.exists(path):
                    os.unlink(path)
            run("/usr/bin/python3", "-c", LAUNCH, TREE, "gc", check=False)
    print(f"{'figure':<8} {'median s':>9} {'max s':>7} {'target s':>9}")
    for name, values in figures.items():
        target = TARGETS[name]
        verdict = "" if target is None else ("  met" if max(values) <= target else "  MISSED")
        print(f"{name:<8} {statistics.median(values):>9.3f} {max(values):>7.3f} "
              f"{'-' if target is None else f'{target:.1f}':>9}{verdict}")
    print(f"rounds: {args.rounds}; load average: {os.getloadavg()[0]:.2f} (2 shared cores)")


if __name__ == "__main__":
    main()
