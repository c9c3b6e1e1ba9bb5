"""The agent's netlink watch (kernel/watch.py) against a real kernel, both pyroute2 versions.

The kernel answers a qdisc GET and also broadcasts the answer to the TC group,
as RTM_NEWQDISC from the asking socket. Before watch.py knew our own sockets,
every converge's reads woke the next converge: an agent shaping one port
spent ~15% of a core doing nothing (bench/agent_cost.py). A change by anyone
else (here `tc`) must still be seen.
"""
import ctypes
import os
import threading

from nvhooks.kernel import links as klinks, netlink, watch

CLONE_NEWNET = 0x40000000


def _monitor_in(ns):
    """A watch.Monitor whose socket lives in netns ``ns`` (a thread enters it just to open the socket)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    made = []

    def opener():
        fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:
            assert libc.setns(fd, CLONE_NEWNET) == 0, os.strerror(ctypes.get_errno())
        finally:
            os.close(fd)
        made.append(watch.Monitor())          # the thread ends in ns: nothing else runs in it

    thread = threading.Thread(target=opener)
    thread.start()
    thread.join()
    return made[0]


def test_our_reads_are_not_changes_but_a_tc_del_is(netns, veth, nsrun):
    ns = netns()
    v = veth(ns, ns)
    nsrun(ns, "tc", "qdisc", "add", "dev", v.name, "root", "handle", "1:", "htb", "default", "1")
    monitor = _monitor_in(ns)
    monitor.sock.settimeout(10.0)             # bounds the wait below; no time is asserted
    try:
        with netlink.ipr(ns) as sock:
            index = klinks.link_index(sock, v.name)
            assert netlink.dump(sock, index)[0]          # GETs: the kernel broadcasts each answer
        nsrun(ns, "tc", "qdisc", "del", "dev", v.name, "root")
        seen = []
        while not any(n.what == "qdisc" and n.action == "del" and n.index == index for n in seen):
            seen += monitor.read()                       # netlink keeps order: our reads' come first
        assert [(n.what, n.action) for n in seen if n.index == index] == [("qdisc", "del")], seen
    finally:
        monitor.close()
