"""Netlink dumps through the kernel layer while links come and go (NLM_F_DUMP_INTR).

A dump that spans several reads while links are added or removed is flagged
inconsistent by the kernel. pyroute2 0.7 raises NetlinkDumpInterrupted after
its last message (a hook would refuse the guest start); 0.9 returns the
messages as they are. The kernel layer asks again (kernel/compat.py dump()).
Real: the kernel, a throwaway netns with 40 bridged veth pairs (so each dump
takes several reads) and a thread churning other veths in it. Before the fix
this failed with pyroute2 0.7 (about one dump in five interrupted); with 0.9
an inconsistent dump was silently used (tests/unit/core/test_kernel_dump_retry.py
covers that path with the flag injected at the pyroute2 boundary).
"""
import subprocess
import threading

from nvhooks.kernel import bridge as kbridge, links as klinks, netlink

PAIRS = 40


def test_dumps_survive_link_churn(netns):
    ns = netns()
    batch = "link add nvtdbr type bridge\n" + "".join(
        f"link add nvts{k} type veth peer nvtq{k}\nlink set nvts{k} master nvtdbr\n" for k in range(PAIRS))
    subprocess.run(["ip", "-n", ns, "-batch", "-"], input=batch, text=True, check=True)
    stable = {"lo", "nvtdbr"} | {f"nvts{k}" for k in range(PAIRS)} | {f"nvtq{k}" for k in range(PAIRS)}
    stop = threading.Event()

    def churn():
        i = 0
        while not stop.is_set():
            name = f"nvtc{i % 4}"
            subprocess.run(["ip", "-n", ns, "link", "add", name, "type", "veth", "peer", f"nvtp{i % 4}"],
                           capture_output=True, check=False)
            subprocess.run(["ip", "-n", ns, "link", "del", name], capture_output=True, check=False)
            i += 1
            # paced (tens of changes a second, a busy hypervisor): a storm faster than one dump
            # (about 45 ms here for 80 links with pyroute2 0.7) would interrupt every retry too
            stop.wait(0.05)

    thread = threading.Thread(target=churn, daemon=True)
    thread.start()
    try:
        with netlink.ipr(ns) as sock:
            for _round in range(30):
                assert stable <= set(klinks.by_name(sock))
                assert klinks.ifb_links(sock) == []
                assert len(kbridge.read_tables(sock)) >= PAIRS
    finally:
        stop.set()
        thread.join()
