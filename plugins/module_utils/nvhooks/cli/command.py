# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`netvirt-hooks`: what the hooks do on this hypervisor, for an operator.

Reads running guests' status XML and the host policy; never calls libvirt
(the same rule as the hook, and it works while libvirtd hangs). Only argparse
is imported up front so `--help` stays instant; the rest loads per command.
"""

import argparse
import os
import sys

from ..errors import KernelError, NetvirtError, PolicyError, XmlError
from . import agentcmd
from .exits import EXIT_BAD_POLICY, EXIT_ENVIRONMENT, EXIT_NOT_RUNNING, EXIT_PROBLEM, CliError  # noqa: F401  pylint: disable=unused-import

EPILOG = """\
examples:
  netvirt-hooks status                 every running guest, one line per port
  netvirt-hooks status web1            web1's ports: tc tree with counters,
                                       VLANs, scripts per event
  netvirt-hooks explain web1           each policy value and where it came from
  netvirt-hooks apply web1 --check     what apply would change (changes nothing)
  netvirt-hooks apply web1             re-apply shaping and VLANs from the
                                       status XML (as at 'started')
  netvirt-hooks teardown web1          remove our tc/ifb/VLAN state of web1
  netvirt-hooks gc --check             shaping objects no running guest uses and
                                       logs of guests gone (gc without --check
                                       removes them; the hook does it when
                                       libvirtd starts)
  netvirt-hooks metrics                per port and group: counters and configured
                                       rates, in the Prometheus text format
  netvirt-hooks --json status web1     the same as JSON (every subcommand)
{agent}
exit codes:
  0  ok, nothing to report
  1  problem: drift from policy (status, apply --check, gc --check), or
     apply/teardown/gc failed
  2  usage error
  3  guest not running on this host (no status XML under /run/libvirt/qemu)
  4  invalid host policy, guest <metadata> or status XML (message names the key)
  5  environment: pyroute2 missing, not root, or the kernel lacks a feature

files: host policy /etc/libvirt/hooks/netvirt/policy.json, hook logs
/var/log/libvirt/hooks/, status XML /run/libvirt/qemu/GUEST.xml.
NETVIRT_HOOKS_ROOT=/some/dir prefixes every path (tests, chroots).
See docs/troubleshooting.md.
"""
EPILOG = EPILOG.replace("{agent}", agentcmd.EPILOG)


class _Parser(argparse.ArgumentParser):
    """argparse's parser, given the terminal's width: argparse would import shutil for it at every
    add_argument, and shutil brings bz2 and lzma (0.5 MiB of the agent, which parses its options here)."""

    def _get_formatter(self):
        return self.formatter_class(prog=self.prog, width=_columns())


def _columns():
    """shutil.get_terminal_size().columns: $COLUMNS, else the terminal's, else 80."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


def build_parser():
    common = _Parser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print JSON instead of text")
    common.add_argument("--policy", metavar="FILE", default=argparse.SUPPRESS,
                        help="host policy file (default: /etc/libvirt/hooks/netvirt/policy.json)")
    parser = _Parser(
        prog="netvirt-hooks", parents=[common], epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Show and fix what netvirt.libvirt_hooks does to running guests' ports "
                    "(tc shaping, bridge VLANs, hook scripts). Never calls libvirt.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    status = sub.add_parser("status", parents=[common], help="ports, shaping with counters, VLANs, scripts per event",
                            description="Without GUEST: one line per port of every running guest. "
                            "With GUEST: the port details, live tc tree with counters, VLANs, and the "
                            "scripts each hook event runs. Exit 1 if live state drifted from policy.")
    status.add_argument("guest", nargs="?", metavar="GUEST")
    explain = sub.add_parser("explain", parents=[common], help="every policy value and its source",
                             description="Resolve GUEST's policy (host policy rules, then guest <metadata>, "
                             "then native <bandwidth>) and show each value with the source that won.")
    explain.add_argument("guest", metavar="GUEST")
    for name, text in (("apply", "re-apply shaping and VLANs from the status XML"),
                       ("teardown", "remove this collection's tc/ifb/VLAN state of the guest")):
        cmd = sub.add_parser(name, parents=[common], help=text,
                             description=f"{text[0].upper()}{text[1:]}. Reads /run/libvirt/qemu/GUEST.xml; "
                             "never calls libvirt. With --check: report what would change, change nothing "
                             "(exit 1 if something would).")
        cmd.add_argument("guest", metavar="GUEST")
        cmd.add_argument("--check", action="store_true", help="predict, change nothing")
    gc = sub.add_parser("gc", parents=[common], help="remove shaping objects no running guest uses, old logs",
                        description="Find this collection's ifbs and group members that no port uses any "
                        "more (left when guests stopped while the hooks were not installed) and remove "
                        "them; the hook does the same when libvirtd starts or reloads. Remove the per-script "
                        "logs of guests not running whose newest log is older than log_max_age_days, and a "
                        "guest's oldest logs beyond log_max_files_per_guest (dispatcher.conf); the hook does "
                        "that when libvirtd starts. With --check: list them, change nothing (exit 1 if there "
                        "are any).")
    gc.add_argument("--check", action="store_true", help="list, change nothing")
    gc.add_argument("--only", choices=("logs", "shaping"), default=None,
                    help="collect only logs or only shaping objects")
    metrics = sub.add_parser("metrics", parents=[common], help="shaping counters and rates (Prometheus format)",
                             description="Per shaped port and group of every running guest: bytes, packets, "
                             "drops, overlimits, backlog, configured rate, ceiling and floor, read now from "
                             "the kernel, in the Prometheus text format (docs/metrics.md). Needs no agent. "
                             "Exit 1 if a guest or port could not be read (the others are still printed).")
    metrics.add_argument("--textfile", metavar="FILE",
                         help="write them atomically to FILE (node_exporter's textfile collector) instead")
    agentcmd.add_parsers(sub, common)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    as_json = getattr(args, "json", False)
    try:
        from . import run as cli_run
        result, code = cli_run.run(args)
    except ImportError as err:  # pyroute2 missing on this host
        err = CliError(f"missing Python library {err.name or err}: install python3-pyroute2 "
                       "(the hooks role does)", EXIT_ENVIRONMENT)
        result, code = {"error": str(err), "exit": err.code}, err.code
        if not as_json:
            sys.stderr.write(f"netvirt-hooks: {err}\n")
            return code
    except CliError as err:
        result, code = {"error": str(err), "exit": err.code}, err.code
        if not as_json:
            sys.stderr.write(f"netvirt-hooks: {err}\n")
            return code
    except NetvirtError as err:     # one a command did not map: still a message, never a traceback
        code = EXIT_BAD_POLICY if isinstance(err, (PolicyError, XmlError)) else \
            EXIT_ENVIRONMENT if isinstance(err, KernelError) else EXIT_PROBLEM
        result = {"error": str(err), "exit": code}
        if not as_json:
            sys.stderr.write(f"netvirt-hooks: {err}\n")
            return code
    if as_json:
        import json
        result.setdefault("exit", code)
        sys.stdout.write(f"{json.dumps(result, indent=2, sort_keys=False, default=str)}\n")
    else:
        from . import text as cli_text
        text = cli_text.render(args.command, result)
        if text:
            sys.stdout.write(f"{text}\n")
    return code
