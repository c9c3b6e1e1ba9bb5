# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`netvirt-hooks agent`, `hold` and `release`: parsers, commands and text (the core is agent/, holds.py)."""

from .exits import EXIT_OK, CliError

EPILOG = """\
  netvirt-hooks agent                  run the agent in the foreground (the
                                       netvirt-hooks-agent systemd unit does)
  netvirt-hooks hold web1              the agent keeps off web1 (debugging by
                                       hand); hold --host: off every guest
  netvirt-hooks release web1           the agent takes care of web1 again
"""


def add_parsers(sub, common):
    agent = sub.add_parser("agent", parents=[common], help="run the agent (hot-plug, live changes, drift heal)",
                           description="Run in the foreground until SIGTERM: subscribe to libvirt's domain "
                           "events and to netlink link/tc notifications, and keep every running guest's ports "
                           "true to policy (NIC hot-plug and unplug, virsh metadata, host policy changes, "
                           "qdiscs removed or changed behind our back). Root only; one agent per host.")
    agent.add_argument("--uri", default="qemu:///system", help="libvirt URI (default: qemu:///system)")
    agent.add_argument("--only", metavar="GLOB", help="manage only guests whose name matches (a staged "
                       "roll-out, tests); orphan collection stays host-wide")
    agent.add_argument("--textfile", metavar="FILE",
                       help="write metrics there for node_exporter's textfile collector (atomically)")
    agent.add_argument("--metrics-interval", type=float, default=15.0, metavar="SECONDS",
                       help="how often to write --textfile (default 15)")
    agent.add_argument("--metrics-port", type=int, metavar="PORT", help="serve metrics over HTTP on this port")
    agent.add_argument("--metrics-address", default="127.0.0.1", metavar="ADDRESS",
                       help="address of --metrics-port (default 127.0.0.1)")
    for name, text in (("hold", "the agent keeps off GUEST (or every guest with --host)"),
                       ("release", "end a hold made by 'netvirt-hooks hold'")):
        cmd = sub.add_parser(name, parents=[common], help=text, description=f"{text[0].upper()}{text[1:]}. "
                             "Holds are files under /run/netvirt-hooks/holds (gone at reboot); the hook "
                             "itself still runs at libvirt's events.")
        cmd.add_argument("guest", nargs="?", metavar="GUEST")
        cmd.add_argument("--host", action="store_true", help="the host-wide hold")
        if name == "hold":
            cmd.add_argument("--note", default="", help="why (shown by status)")


def run(args):
    """(result, exit code) of agent/hold/release, or None for any other command."""
    if args.command == "agent":
        from ..agent import main as agent_main
        args.policy = getattr(args, "policy", None)
        return {"action": "agent"}, agent_main.run(args)
    if args.command not in ("hold", "release"):
        return None
    from .. import holds
    if bool(args.guest) == bool(args.host):
        raise CliError(f"{args.command}: give GUEST or --host (one of them)", 2)
    guest = None if args.host else args.guest
    if args.command == "hold":
        holds.hold(guest, args.note)
        changed = True
    else:
        changed = holds.release(guest)
    return {"action": args.command, "guest": guest or "(host)", "changed": changed,
            "holds": holds.listing()}, EXIT_OK


def text(command, data):
    if command == "agent":
        return ""
    what = data["guest"]
    if command == "hold":
        return f"held: {what} (the agent keeps off it until 'netvirt-hooks release')"
    return f"released: {what}" if data["changed"] else f"{what} was not held"


def hold_lines(data):
    """Status lines about holds: the overview's every hold, a guest's own and the host's."""
    holds = dict(data.get("holds") or {})
    if data.get("hold"):
        holds[data["guest"]] = data["hold"]
    lines = []
    for name, why in sorted(holds.items()):
        who = "host" if name == "--host" else name
        lines.append(f"agent: {who} held: {why} (netvirt-hooks release {'--host' if who == 'host' else name})")
    return lines
