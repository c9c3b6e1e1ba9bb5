# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``python3 -m nvhooks.vlancmd bridge-init [--check] [--policy FILE|-]``

What the daemon start/reload hook does (vlanhook.bridge_init), on demand:
the vlan role runs it so bridge settings apply at once, not only at the next
libvirtd restart. Prints JSON ``{"changed": bool, "changes": [...]}``;
exit 0, or 1 with the error on stderr.
"""

import json
import logging
import sys

from .. import paths
from ..policy import model as policy, fragments as policycheck
from . import hook as vlanhook
from ..errors import NetvirtError


def _host(source):
    if source == "-":
        doc = policycheck.read_json("stdin", sys.stdin.buffer.read(policy.MAX_POLICY_BYTES + 1))
        return policy.parse_host_policy(doc, source="stdin")
    return policy.load_host_policy(source or paths.policy_file())


def main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(prog="nvhooks.vlancmd", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("action", choices=["bridge-init"])
    parser.add_argument("--check", action="store_true", help="only say what would change")
    parser.add_argument("--policy", help="host policy file, '-' for stdin (default: the installed policy.json)")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        changes = vlanhook.bridge_init(_host(args.policy), logging.getLogger("netvirt.vlan"), check=args.check)
    except NetvirtError as err:
        sys.stderr.write(f"{err}\n")
        return 1
    sys.stdout.write(json.dumps({"changed": bool(changes), "check": args.check, "changes": changes},
                                sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
