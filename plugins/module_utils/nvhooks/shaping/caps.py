# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What this kernel can do for shaping, tried for real once per boot.

The probe builds a scratch network namespace with a veth pair, tries each
qdisc/ifb there (through kernel/tc.py and kernel/netlink.py) and removes
the namespace. The answer is cached in ``paths.run_dir()/shaping-caps.json``
keyed by the boot id (a new kernel is a new boot) and logged once when
probed.
"""

import json
import os

from .. import paths
from ..errors import NetvirtError
from ..policy.record import Record

LEAVES = ("fq_codel", "sfq", "pfifo")     # best first
CACHE_NAME = "shaping-caps.json"


class Caps(Record):
    htb: bool = True
    ifb: bool = True
    clsact: bool = True
    ingress: bool = True
    leaf: str = "pfifo"                    # fq_codel | sfq | pfifo
    tick_in_usec: float = 15.625           # psched ticks per microsecond (/proc/net/psched)
    kernel: str = ""
    boot_id: str = ""

    def as_dict(self):
        return self.as_fields()

    def summary(self):
        have = [n for n in ("htb", "ifb", "clsact", "ingress") if getattr(self, n)]
        return f"kernel {self.kernel}: {', '.join(have) or 'no shaping support'}; leaf qdisc {self.leaf}"


def tick_in_usec():
    """psched ticks per microsecond, as tc and pyroute2 compute it."""
    try:
        with open("/proc/net/psched", encoding="ascii") as handle:
            t2us, us2t, clock_res = (int(x, 16) for x in handle.read().split()[:3])
    except (OSError, ValueError):
        return 1.0
    clock_factor = float(clock_res) / 1000000     # as pyroute2 computes it
    return float(t2us) / us2t * clock_factor


def boot_id():
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def cache_path():
    return os.path.join(paths.run_dir(), CACHE_NAME)


def get(log=None, refresh=False):
    """Capabilities of the running kernel: cached per boot, probed when needed."""
    current = boot_id()
    if not refresh:
        try:
            with open(cache_path(), encoding="utf-8") as handle:
                data = json.load(handle)
            if data.get("boot_id") == current and current:
                return Caps(**data)
        except (OSError, ValueError, TypeError):
            pass
    caps = probe()
    if log is not None:
        log.info("shaping capabilities probed: %s", caps.summary())
    _save(caps)
    return caps


def _save(caps):
    try:
        from .. import locks
        locks.private_dir(paths.run_dir())
        tmp = f"{cache_path()}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(caps.as_dict(), handle)
        os.replace(tmp, cache_path())
    except (OSError, NetvirtError):
        pass                    # an unusable run dir only costs a probe next time


def probe():
    """Try every capability in a scratch netns (needs root); return Caps."""
    from ..kernel import netlink, tc
    netlink.require()
    from pyroute2 import netns as pnetns
    name = f"nvprobe{os.urandom(4).hex()}"
    pnetns.create(name)
    try:
        with netlink.ipr(name) as sock:
            sock.link("add", ifname="p0", kind="veth", peer="p1")
            index = netlink.link_index(sock, "p0")
            found = {"htb": _try(tc.add_htb, sock, index, 0x10000, default=1),
                     "clsact": _try(tc.add_clsact, sock, index)}
            found["ingress"] = found["clsact"] or _try(tc.add_ingress, sock, index, 0xFFFF0000)
            found["ifb"] = _try(sock.link, "add", ifname="pifb", kind="ifb")
            leaf = "pfifo"
            if found["htb"]:
                # a class 1:1 to try the leaves under (1 Mbit/s; values only need to be valid)
                _try(tc.add_class, sock, index, 0x10001, parent=0x10000, rate=125000, ceil=125000,
                     burst=16384, cburst=16384, quantum=12500)
                for kind in LEAVES[:-1]:
                    if _try(tc.add_qdisc, sock, kind, index, 0x100000, parent=0x10001):
                        leaf = kind
                        break
    finally:
        pnetns.remove(name)
    return Caps(leaf=leaf, tick_in_usec=tick_in_usec(), kernel=os.uname().release, boot_id=boot_id(), **found)


def _try(func, *args, **kwargs):
    try:
        func(*args, **kwargs)
    except Exception:  # pylint: disable=broad-except  # NetlinkError: not supported here
        return False
    return True
