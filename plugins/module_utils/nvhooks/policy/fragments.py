# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host policy fragments: merge them into policy.json and validate.

Each role renders its part of the host policy to
``/etc/libvirt/hooks/netvirt/policy.d/<role>.json`` (same format as
policy.json). The fragments are merged in file-name order:

* ``rules`` are concatenated (fragment order, then rule order), so rule
  precedence is predictable: ``shaping.json`` rules come before ``vlan.json``;
* ``groups`` and ``bridges`` must be disjoint: a name defined by two
  fragments is an error naming both;
* ``settings`` are merged key by key; two fragments giving one key different
  values is an error.

Each fragment must be valid on its own (errors then name the fragment and
the key in it); the merged result is validated again with
policy.parse_host_policy before anything is written. Command line (also
the ``validate:`` of the roles' templates)::

    python3 -m nvhooks.policycheck FILE|- [--var rules=shaping_rules ...]
    python3 -m nvhooks.policycheck --assemble DIR [--fragment NAME=FILE|-]
                                   [--output FILE] [--print]

``--var`` renames a path prefix in error messages so a role's error names the
variable the operator wrote (``shaping_rules[2].inbound.peak``), not the file.
"""

import json
import os
import sys
import tempfile

from .. import paths
from . import model as policy
from ..errors import NetvirtError, PolicyError

FRAGMENT_SUFFIX = ".json"
KEYS = ("version", "settings", "groups", "bridges", "rules")


def fragments_dir():
    """policy.d next to policy.json (follows NETVIRT_HOOKS_ROOT)."""
    return os.path.join(os.path.dirname(paths.policy_file()), "policy.d")


def read_json(path, data=None):
    """Decode a JSON policy document from ``path`` (or the given bytes)."""
    try:
        if data is None:
            with open(path, "rb") as handle:
                data = handle.read(policy.MAX_POLICY_BYTES + 1)
    except OSError as err:
        raise PolicyError(f"cannot read: {err.strerror}", path) from None
    if len(data) > policy.MAX_POLICY_BYTES:
        raise PolicyError("larger than 4 MiB", path)
    try:
        doc = json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
    except (ValueError, UnicodeDecodeError) as err:
        raise PolicyError(f"not valid JSON: {err}", path) from None
    if not isinstance(doc, dict):
        raise PolicyError(f"must be a JSON object, not {type(doc).__name__}", path)
    return doc


def merge(fragments):
    """Merge ``[(name, doc), ...]`` (docs already decoded) into one document.

    Fragments are taken in name order whatever order they come in.
    """
    merged = {"version": 1, "settings": {}, "groups": {}, "bridges": {}, "rules": []}
    owner = {}
    for name, doc in sorted(fragments, key=lambda item: item[0]):
        unknown = sorted(set(doc) - set(KEYS))
        if unknown:
            raise PolicyError(f"unknown key {unknown[0]!r} (allowed: {', '.join(KEYS)})", f"{name}: {unknown[0]}")
        if doc.get("version", 1) != 1:
            raise PolicyError(f"unsupported version {doc.get('version')!r} (this library reads 1)",
                              f"{name}: version")
        for section in ("settings", "groups", "bridges"):
            part = doc.get(section) or {}
            if not isinstance(part, dict):
                raise PolicyError(f"must be a mapping, not {type(part).__name__}", f"{name}: {section}")
            for key, value in part.items():
                where = f"{section}.{key}"
                if where in owner and (section != "settings" or merged[section][key] != value):
                    what = "sets it to a different value" if section == "settings" else "defines it too"
                    raise PolicyError(f"already given by fragment {owner[where]!r}; {name!r} {what}",
                                      f"{name}: {where}")
                owner.setdefault(where, name)
                merged[section][key] = value
        rules = doc.get("rules") or []
        if not isinstance(rules, list):
            raise PolicyError("must be a list", f"{name}: rules")
        merged["rules"].extend(rules)
    return merged


def load_fragments(directory, replace=None):
    """Read ``directory/*.json``; ``replace`` maps a fragment file name to
    bytes that stand in for (or add) that file, e.g. a role's rendering not
    yet written (check mode predicts exactly what the real run writes)."""
    replace = dict(replace or {})
    found = {}
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        names = []
    except OSError as err:
        raise PolicyError(f"cannot list: {err.strerror}", directory) from None
    for name in names:
        if name.endswith(FRAGMENT_SUFFIX) and not name.startswith("."):
            path = os.path.join(directory, name)
            found[name] = read_json(path, replace.pop(name, None))
    for name, data in replace.items():
        found[name] = read_json(name, data)
    return list(found.items())


def assemble(directory, replace=None):
    """Merged and validated document (dict) of the fragments in ``directory``."""
    fragments = load_fragments(directory, replace)
    for name, fragment in fragments:     # errors name the fragment, not a merged index
        policy.parse_host_policy(fragment, source=name)
    doc = merge(fragments)
    policy.parse_host_policy(doc, source="merged policy.d")
    return doc


def render(doc):
    """Stable text of a policy document: sorted keys, so re-runs compare equal."""
    return f"{json.dumps(doc, indent=2, sort_keys=True)}\n"


def write_atomic(path, text):
    """Write ``text`` to ``path`` unless it already holds it; True if written."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            if handle.read() == text:
                return False
    except FileNotFoundError:
        pass
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".policy.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return True


def rename_where(err, renames):
    """Point an error at the variable it came from: ``renames`` maps a path
    prefix of the document (``rules``) to a variable name (``shaping_rules``)."""
    where = err.where or ""
    path = where.split(": ", 1)[1] if ": " in where else where
    for prefix, var in sorted(renames.items(), key=lambda kv: -len(kv[0])):
        if path == prefix or path.startswith((f"{prefix}.", f"{prefix}[")):
            return f"{var}{path[len(prefix):]}: {err.message}"
    return str(err)


def validate_file(path, source=None):
    """Validate one policy file or fragment ('-' = stdin); returns the HostPolicy."""
    if path == "-":
        doc = read_json("<stdin>", sys.stdin.buffer.read(policy.MAX_POLICY_BYTES + 1))
    else:
        doc = read_json(path)
    return policy.parse_host_policy(doc, source=source or os.path.basename(path))


def _parse_args(argv):
    import argparse   # only for the command line
    parser = argparse.ArgumentParser(prog="policycheck", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("file", nargs="?", help="policy file or fragment to validate ('-' = stdin)")
    parser.add_argument("--assemble", metavar="DIR", help="merge DIR/*.json (policy.d) and validate")
    parser.add_argument("--fragment", action="append", default=[], metavar="NAME=FILE",
                        help="use FILE ('-' = stdin) as fragment NAME of DIR (not yet written)")
    parser.add_argument("--output", metavar="FILE", help="write the merged policy here (atomic, only if changed)")
    parser.add_argument("--print", dest="print_doc", action="store_true", help="print the merged policy")
    parser.add_argument("--var", action="append", default=[], metavar="PATH=NAME",
                        help="name PATH of the document as variable NAME in errors")
    args = parser.parse_args(argv)
    if bool(args.file) == bool(args.assemble):
        parser.error("give either FILE or --assemble DIR")
    return args


def _replacements(specs):
    out = {}
    for spec in specs:
        name, sep, source = spec.partition("=")
        if not sep or not name.endswith(FRAGMENT_SUFFIX) or "/" in name:
            raise PolicyError(f"{spec!r}: expected NAME.json=FILE", "--fragment")
        if source == "-":
            out[name] = sys.stdin.buffer.read(policy.MAX_POLICY_BYTES + 1)
        else:
            with open(source, "rb") as handle:
                out[name] = handle.read(policy.MAX_POLICY_BYTES + 1)
    return out


def main(argv=None):
    """Exit 0 when valid (and written); 1 with the error on stderr otherwise."""
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    renames = dict(spec.partition("=")[::2] for spec in args.var)
    try:
        if args.file:
            validate_file(args.file)
            return 0
        doc = assemble(args.assemble, _replacements(args.fragment))
        text = render(doc)
        changed = write_atomic(args.output, text) if args.output else False
        if args.print_doc:
            sys.stdout.write(text)
        elif args.output:
            sys.stdout.write(f"{json.dumps({'changed': changed, 'path': args.output})}\n")
        return 0
    except NetvirtError as err:
        sys.stderr.write(f"policycheck: {rename_where(err, renames) if args.file else err}\n")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
