"""Helpers shared by the shaping benchmarks: namespaces, the core, tc words.

Benchmarks run as root, create only nvtb* namespaces and remove them at exit.
"""
import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "plugins", "module_utils"))

from nvhooks.shaping import caps as nvcaps, apply as tcapply, plan as tcplan
from nvhooks.policy import model as policy  # noqa: E402  pylint: disable=wrong-import-position

_MADE = []


def sh(*argv, check=True, input=None, timeout=120):
    proc = subprocess.run([str(a) for a in argv], input=input, capture_output=True, text=True, timeout=timeout,
                          check=False)
    if check and proc.returncode:
        raise RuntimeError(f"{' '.join(map(str, argv))} -> rc={proc.returncode}\n{proc.stdout}{proc.stderr}")
    return proc


def netns(tag):
    """A fresh namespace nvtb<tag><hex> with lo up; removed at exit."""
    name = f"nvtb{tag}{uuid.uuid4().hex[:6]}"
    sh("ip", "netns", "add", name)
    _MADE.append(name)
    sh("ip", "-n", name, "link", "set", "lo", "up")
    return name


_PID = os.getpid()


def _cleanup():
    # only in this process: pyroute2 0.9 forks a netns helper per socket, which
    # inherits atexit and the SIGTERM handler and must not delete our namespaces
    if os.getpid() != _PID:
        return
    for name in reversed(_MADE):
        sh("ip", "netns", "del", name, check=False)


def _on_term(*_):
    if os.getpid() != _PID:
        os._exit(143)                      # pylint: disable=protected-access
    sys.exit(143)


atexit.register(_cleanup)
# a killed benchmark still removes its namespaces (atexit runs on SystemExit)
signal.signal(signal.SIGTERM, _on_term)


def need_root():
    if os.geteuid() != 0:
        sys.exit("benchmarks change kernel state in their own namespaces: run as root")
    for tool in ("ip", "tc"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found")


def kernel_caps():
    """The core's capability probe, fresh (benchmarks never trust a cache)."""
    return nvcaps.get(refresh=True)


def rate(average=None, peak=None, burst=None, floor=None):
    """A policy.Rate from human words (through the core's validation)."""
    data = {k: v for k, v in (("average", average), ("peak", peak), ("burst", burst), ("floor", floor)) if v}
    return policy.parse_rate(data, "bench")


def apply_ours(plan, caps, log=None, batch=None):
    """Our netlink path: the core's diff + apply of a plan; returns its Result.

    ``batch`` (from tcapply.session) is shared across plans, as a caller with many ports does."""
    return tcapply.apply(plan, caps, log=log, batch=batch)


def has_police():
    """act_police present? Tried for real in a scratch namespace."""
    ns = netns("p")
    try:
        sh("ip", "-n", ns, "link", "add", "p0", "type", "veth", "peer", "name", "p1")
        sh("tc", "-n", ns, "qdisc", "add", "dev", "p0", "ingress")
        return sh("tc", "-n", ns, "filter", "add", "dev", "p0", "parent", "ffff:", "protocol", "all", "u32",
                  "match", "u32", "0", "0", "police", "rate", "1mbit", "burst", "10k", "drop",
                  check=False).returncode == 0
    finally:
        sh("ip", "netns", "del", ns, check=False)
        _MADE.remove(ns)


# ---------------------------------------------------------------- the same plan as tc commands

def _h(handle):
    return tcplan.handle_text(handle)


def plan_to_tc(plan):
    """tc/ip argv lists that build ``plan`` (what libvirt and Proxmox do: one
    subprocess per object). Member objects (groups) are not needed here."""
    cmds = []
    for obj in plan.objects:
        a = dict(obj.attrs)
        if obj.kind == "ifb":
            cmds.append(["ip", "link", "add", obj.dev, "type", "ifb"])
            cmds.append(["ip", "link", "set", obj.dev, "alias", a["alias"]])
            cmds.append(["ip", "link", "set", obj.dev, "up"])
        elif obj.kind == "qdisc" and a["kind"] in ("clsact", "ingress"):
            cmds.append(["tc", "qdisc", "add", "dev", obj.dev, a["kind"]])
        elif obj.kind == "qdisc" and a["kind"] == "htb":
            cmds.append(["tc", "qdisc", "add", "dev", obj.dev, "root", "handle", _h(a["handle"]), "htb",
                         "default", f"{a['default']:x}", "r2q", str(a["r2q"])])
        elif obj.kind == "qdisc":
            extra = ["limit", str(a["limit"])] if "limit" in a else []
            cmds.append(["tc", "qdisc", "add", "dev", obj.dev, "parent", _h(obj.id), "handle", _h(a["handle"]),
                         a["kind"], *extra])
        elif obj.kind == "class":
            cmds.append(["tc", "class", "add", "dev", obj.dev, "parent", _h(a["parent"]), "classid", _h(obj.id),
                         "htb", "rate", f"{a['rate'] * 8}bit", "ceil", f"{a['ceil'] * 8}bit",
                         "burst", f"{a['burst']}b", "cburst", f"{a['cburst']}b", "quantum", str(a["quantum"])])
        elif obj.kind == "filter" and a.get("redirect"):
            parent, prio = obj.id[:2]
            where = {tcplan.CLSACT_INGRESS: ["ingress"], tcplan.CLSACT_EGRESS: ["egress"]}.get(
                parent, ["parent", "ffff:"])
            cmds.append(["tc", "filter", "add", "dev", obj.dev, *where, "prio", str(prio), "protocol", "all",
                         "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "redirect",
                         "dev", a["redirect"]])
        else:
            raise ValueError(f"bench: no tc words for {obj.text()}")
    return cmds


def remove_tc(plan):
    """tc/ip argv lists that remove what plan_to_tc built."""
    cmds = [["tc", "qdisc", "del", "dev", plan.dev, "root"]]
    if any(o.kind == "qdisc" and dict(o.attrs)["kind"] in ("clsact", "ingress") for o in plan.objects):
        kind = next(dict(o.attrs)["kind"] for o in plan.objects
                    if o.kind == "qdisc" and dict(o.attrs)["kind"] in ("clsact", "ingress"))
        cmds.append(["tc", "qdisc", "del", "dev", plan.dev, kind])
    cmds += [["ip", "link", "del", ifb] for ifb in plan.port_ifbs]
    return cmds


def run_in(ns, cmds):
    for cmd in cmds:
        tool, rest = cmd[0], cmd[1:]
        sh(tool, "-n", ns, *rest)


def print_json(label, data):
    print(f"{label}: {json.dumps(data, sort_keys=True)}")
