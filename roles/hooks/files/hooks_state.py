# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One read-only look at a hypervisor's hook install, for the hooks role and verify.yml.

Run as `python3 -I -c <this file's text>` with a JSON request on stdin (so it
needs nothing on the host but the interpreter); prints one JSON object and
changes nothing: the role's tasks fix what it reports (file, copy, template),
so check mode predicts exactly. The request (every key optional):

  dirs       [{"path", "mode", "owner"}]: folders that must exist with that mode,
             root:root unless owner is false
  core       {"root", "files": {relative path: sha256}, "dirs": [relative path]}:
             the tree root must hold exactly that (at any depth), apart from
             __pycache__/<module>.*.pyc of a shipped <module>.py
  files      [path]: report each one's type, sha256, mode, owner and whether it holds `marker`
  marker     text that marks a file as ours (the entry programs)
  originals  folder whose entries must be root-owned, not group/world-writable

The answer: remove (paths to delete: core files and folders not shipped,
__pycache__ of removed modules, a non-folder where a folder belongs),
dirs (folders to create or fix, as in the request, missing core folders at
0755 root:root included), missing and different (core files to copy, relative),
stale (the removed core paths, relative, folders ending in /), originals
(paths to make root-owned and go-w), files ({path: {...} or null}).

`python3 hooks_state.py --manifest DIR` (on the controller, by a pipe lookup)
prints the request's "core" part for the tree DIR: {"files": {relative path:
sha256}, "dirs": [relative path]}, without __pycache__ folders or *.pyc/*.pyo
files, which the host's interpreter makes for itself.
"""
import hashlib
import json
import os
import stat
import sys


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


class State:
    def __init__(self):
        self.remove, self.dirs = [], []

    def folder(self, path, mode, owner=True):
        """Report `path` unless it is a real folder with `mode` (and root:root unless not `owner`)."""
        want = {"path": path, "mode": "%04o" % mode, "owner": owner}
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            self.dirs.append(want)
            return
        if not stat.S_ISDIR(st.st_mode):
            self.remove.append(path)
            self.dirs.append(want)
        elif (owner and (st.st_uid, st.st_gid) != (0, 0)) or stat.S_IMODE(st.st_mode) != mode:
            self.dirs.append(want)


def cached_ok(rel, name, wanted):
    """True for __pycache__/<module>.<tag>[.opt-N].pyc of a shipped <module>.py."""
    parent = os.path.dirname(rel)
    if os.path.basename(parent) != "__pycache__" or not name.endswith(".pyc"):
        return False
    module = name.split(".", 1)[0]
    return os.path.join(os.path.dirname(parent), module + ".py") in wanted


def core(state, spec):
    root = spec["root"]
    wanted = spec.get("files", {})
    dirs = set(spec.get("dirs", [])) | {os.path.dirname(rel) for rel in wanted} | {""}
    for rel in sorted(dirs):
        state.folder(os.path.join(root, rel) if rel else root, 0o755)
    missing, different, stale = [], [], []
    if os.path.isdir(root) and not os.path.islink(root):
        for top, subdirs, names in os.walk(root):
            reltop = os.path.relpath(top, root)
            reltop = "" if reltop == "." else reltop
            for name in sorted(subdirs):
                rel = os.path.join(reltop, name)
                path = os.path.join(top, name)
                cache = name == "__pycache__" and reltop in dirs and not os.path.islink(path)
                if cache and any(cached_ok(os.path.join(rel, pyc), pyc, wanted) for pyc in os.listdir(path)):
                    continue
                if os.path.islink(path) or rel not in dirs:
                    stale.append(rel + "/")
                    state.remove.append(path)
                    subdirs.remove(name)
            for name in sorted(names):
                rel = os.path.join(reltop, name)
                if rel not in wanted and not cached_ok(rel, name, wanted):
                    stale.append(rel)
                    state.remove.append(os.path.join(top, name))
    for rel, digest in sorted(wanted.items()):
        path = os.path.join(root, rel)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            missing.append(rel)
            continue
        if not stat.S_ISREG(st.st_mode):
            state.remove.append(path)
            missing.append(rel)
        elif ((st.st_uid, st.st_gid) != (0, 0) or stat.S_IMODE(st.st_mode) != 0o644
              or sha256(path) != digest):
            different.append(rel)
    return missing, different, stale


def describe(path, marker):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    out = {"type": "file" if stat.S_ISREG(st.st_mode) else "other", "mode": "%04o" % stat.S_IMODE(st.st_mode),
           "owner": "%d:%d" % (st.st_uid, st.st_gid)}
    if out["type"] == "file":
        out["sha256"] = sha256(path)
        if marker:
            with open(path, "rb") as handle:
                out["ours"] = marker.encode() in handle.read()
    return out


def originals(folder):
    if not os.path.isdir(folder):
        return []
    out = []
    for name in sorted(os.listdir(folder)):
        st = os.lstat(os.path.join(folder, name))
        if st.st_uid != 0 or (st.st_mode & 0o022 and not stat.S_ISLNK(st.st_mode)):
            out.append(os.path.join(folder, name))
    return out


def manifest(top):
    files, dirs = {}, []
    for here, subdirs, names in os.walk(top):
        subdirs[:] = sorted(d for d in subdirs if d != "__pycache__")
        rel = os.path.relpath(here, top)
        if rel != ".":
            dirs.append(rel)
        for name in names:
            if not name.endswith((".pyc", ".pyo")):
                files[os.path.normpath(os.path.join(rel, name))] = sha256(os.path.join(here, name))
    return {"files": files, "dirs": dirs}


def main():
    if sys.argv[1:2] == ["--manifest"]:
        json.dump(manifest(sys.argv[2]), sys.stdout, sort_keys=True)
        return
    request = json.load(sys.stdin)
    state = State()
    for folder in request.get("dirs", []):
        state.folder(folder["path"], int(folder["mode"], 8), folder.get("owner", True))
    missing, different, stale = core(state, request["core"]) if "core" in request else ([], [], [])
    files = {path: describe(path, request.get("marker")) for path in request.get("files", [])}
    json.dump({"remove": state.remove, "dirs": state.dirs, "missing": missing, "different": different,
               "stale": stale, "originals": originals(request["originals"]) if request.get("originals") else [],
               "files": files}, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main()
