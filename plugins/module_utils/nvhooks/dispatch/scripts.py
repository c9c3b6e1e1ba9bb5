# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which steps an event runs, in the one documented order, and are they safe.

The order (docs/hooks.md "Order"):

1. the operator's original entry program (``netvirt/original/<driver>``);
2. the built-in handlers: qemu/lxc ``vlanhook`` then ``shapehook``;
   ``daemon/start`` and ``daemon/reload`` ``vlanhook.bridge_init`` then
   ``shapehook.reconcile_all``;
3. the per-event folder ``<driver>_<op>_<subop>.d/`` (``daemon_<op>.d/``),
   sorted by entry name;
4. qemu only: the custom folder, ``<op>_<name>`` and ``all_<name>`` sorted
   by the name after the prefix (then by full name);
5. after our entry program returns, libvirt itself runs ``<driver>.d/*``;
   we never run those (a script linked from there is skipped here).

A script reached twice (symlinks) runs once, at its first position.
"""

import os
import stat

from . import conf as confmod

_BACKUP_SUFFIXES = ("~", ".swp", ".bak", ".orig", ".rpmnew", ".rpmsave", ".rpmorig",
                    ".dpkg-old", ".dpkg-new", ".dpkg-dist", ".dpkg-tmp", ".ucf-old", ".ucf-dist")


class Step:
    """One thing the dispatcher runs (or refuses) for an event."""

    __slots__ = ("kind", "name", "path", "target", "source", "conf", "problem",
                 "severity", "handler", "function", "identity")

    def __init__(self, kind, name, path=None, target=None, source=None):
        self.kind = kind          # original | builtin | script
        self.name = name          # conf/log name
        self.path = path          # as found (argv[0])
        self.target = target      # resolved, checked, executed
        self.source = source
        self.conf = None
        self.problem = None       # why it does not run
        self.severity = None      # skip (WARNING, not a failure) | refuse (ERROR, a failure)
        self.identity = None      # (st_dev, st_ino) of the checked target
        self.handler = None       # builtin: a dispatch.handlers.Handler
        self.function = None      # builtin: handle | daemon

    def as_dict(self):
        out = {"kind": self.kind, "name": self.name, "source": self.source,
               "path": self.path, "target": self.target,
               "status": "runs" if self.problem is None else f"{self.severity}: {self.problem}"}
        if self.kind == "builtin":
            out["status"] = "runs when its wants() matches" if self.problem is None else out["status"]
            out["function"] = self.handler.step_name(self.function) if self.handler else self.name
        if self.conf is not None:
            out.update(timeout=self.conf.timeout, fail=self.conf.fail,
                       xml_filter=self.conf.xml_filter, conf_file=self.conf.source)
        return out


def skip_name(name):
    return name.startswith(".") or name.endswith(_BACKUP_SUFFIXES)


class Safety:
    """Ownership/permission checks of every folder and link on a script's way, cached per folder.

    A path is resolved by hand, one component at a time, as the kernel does
    it: every folder passed through and every symlink followed must be owned
    by root (or by us) and not writable by anyone else, whatever hop it is on.
    So nobody else can repoint a link or swap a file before its turn.
    """

    MAX_HOPS = 40         # the kernel's own limit on symlinks in one lookup

    def __init__(self):
        self.trusted = {0, os.geteuid()}
        self._dirs = {}

    def _problem(self, st, what):
        if st.st_uid not in self.trusted:
            return f"{what} is owned by uid {int(st.st_uid)}, not root"
        if st.st_mode & 0o022 and not stat.S_ISLNK(st.st_mode):
            # A root-owned sticky dir (/tmp) lets nobody else rename or remove
            # root's entries in it, so it cannot be used to swap a script.
            if not (stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX and st.st_uid == 0):
                kind = "world" if st.st_mode & 0o002 else "group"
                return f"{what} is {kind}-writable (mode {stat.S_IMODE(st.st_mode):04o})"
        return None

    def _folder(self, path, st):
        if path not in self._dirs:
            self._dirs[path] = self._problem(st, f"folder {path}")
        return self._dirs[path]

    def resolve(self, path):
        """(final path, its stat, problem): ``path`` followed hop by hop, each hop checked."""
        todo = [c for c in os.path.abspath(path).split("/") if c]
        current, hops = "/", 0
        try:
            problem = self._folder("/", os.lstat("/"))
            while todo and problem is None:
                part = todo.pop(0)
                if part == "..":
                    current = os.path.dirname(current)
                    continue
                if part == ".":
                    continue
                candidate = os.path.join(current, part)
                st = os.lstat(candidate)
                if stat.S_ISLNK(st.st_mode):
                    hops += 1
                    if hops > self.MAX_HOPS:
                        return candidate, None, f"too many symlinks from {path}"
                    # a link's mode bits mean nothing; its owner does (its folder was checked)
                    problem = self._problem(st, f"symlink {candidate}")
                    link = os.readlink(candidate)
                    if link.startswith("/"):
                        current = "/"
                    todo[:0] = [c for c in link.split("/") if c]
                elif stat.S_ISDIR(st.st_mode):
                    problem = self._folder(candidate, st)
                    current = candidate
                elif todo:
                    return candidate, None, f"cannot resolve {path}: {candidate} is not a folder"
                else:
                    return candidate, st, None
            if problem is not None:
                return current, None, problem
            return current, os.stat(current), None
        except OSError as err:
            return current, None, f"cannot resolve {path}: {err.strerror}"

    def check(self, step):
        """Resolve the step's path; set problem/severity when it must not run."""
        target, st, problem = self.resolve(step.path)
        if problem is not None:
            return _set(step, "refuse", problem)
        step.target = target
        if not stat.S_ISREG(st.st_mode):
            return _set(step, "refuse", f"{target} is not a regular file")
        problem = self._problem(st, f"script {target}")
        if problem:
            return _set(step, "refuse", problem)
        step.identity = (st.st_dev, st.st_ino)
        if not st.st_mode & 0o111:
            return _set(step, "skip", f"{target} is not executable")
        return None

    def recheck(self, step):
        """Just before the exec: the same checks, fresh, and still the same file? None, or why not."""
        self._dirs = {}
        target, st, problem = self.resolve(step.path)
        if problem is None and (target != step.target or (st.st_dev, st.st_ino) != step.identity):
            problem = f"{step.path} now leads to another file than the one checked"
        if problem is None and st is not None:
            problem = self._problem(st, f"script {target}")
        return problem


def _set(step, severity, problem):
    step.severity, step.problem = severity, problem


def _entries(folder):
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    except OSError:
        return None
    return [name for name in names if not skip_name(name)]


def custom_prefix_key(name, op):
    """Sort key for a custom-folder entry applying to ``op``, or None."""
    for prefix in (f"{op}_", "all_"):
        if name.startswith(prefix) and len(name) > len(prefix):
            return (name[len(prefix):], name)
    return None


def plan(event, dconf, hooks_dir, originals_dir):
    """Every step for ``event`` in order, checked, with its conf loaded."""
    steps = []
    safety = Safety()
    original = os.path.join(originals_dir, event.driver)
    if os.path.lexists(original):
        steps.append(Step("original", f"original-{event.driver}", original, source="original entry program"))
    if dconf.builtins:
        steps.extend(_builtins(event))
    folder = os.path.join(dconf.events_dir, event.folder)
    names = _entries(folder)
    if names is None:
        steps.append(_unreadable(folder))
    for name in sorted(names or ()):
        steps.append(Step("script", name, os.path.join(folder, name), source=event.folder))
    if event.driver == "qemu":
        names = _entries(dconf.custom_dir)
        if names is None:
            steps.append(_unreadable(dconf.custom_dir))
        keyed = sorted((key, name) for name in names or () for key in [custom_prefix_key(name, event.op)] if key)
        for _key, name in keyed:
            steps.append(Step("script", name, os.path.join(dconf.custom_dir, name),
                              source=f"{os.path.basename(dconf.custom_dir)}/"))
    libvirt_own = os.path.realpath(os.path.join(hooks_dir, f"{event.driver}.d")) + os.sep
    seen = {}
    for step in steps:
        if step.kind == "builtin":
            continue
        if step.path is not None and step.problem is None:
            safety.check(step)
        if step.target is None:
            continue
        # Conf and logs are per script, not per link: name it by what it runs.
        if step.kind == "script":
            step.name = os.path.basename(step.target)
        if step.target.startswith(libvirt_own):
            _set(step, "skip", f"libvirt itself runs {step.target} from {libvirt_own}")
        elif step.target in seen and step.problem is None:
            _set(step, "skip", f"already runs as {seen[step.target]}")
        elif step.problem is None:
            seen[step.target] = step.path
    for step in steps:
        if step.kind != "builtin" and step.severity != "skip":
            try:
                step.conf = confmod.load_script(step.name, dconf)
            except confmod.ConfError as err:
                if step.problem is None:
                    _set(step, "refuse", f"bad conf: {err}")
    return steps


def _builtins(event):
    """The built-in handler steps for ``event`` (dispatch.handlers, in its order)."""
    if event.guest is None and event.driver != "daemon":
        return []             # network events: no handler, and no import
    try:
        from . import handlers
    except ImportError as err:
        # A broken install must not break guests: one step that says why.
        step = Step("builtin", "built-in handlers", source="built-in handler")
        _set(step, "skip", f"not available: {err}")
        return [step]
    steps = []
    for handler, function in handlers.for_event(event):
        step = Step("builtin", handler.name, source="built-in handler")
        step.handler, step.function = handler, function
        steps.append(step)
    return steps


def _unreadable(folder):
    step = Step("script", os.path.basename(folder), folder, source=folder)
    _set(step, "refuse", f"cannot list folder {folder}")
    return step


def libvirt_tail(event, hooks_dir):
    """What libvirt runs on its own after our entry program (query view)."""
    folder = os.path.join(hooks_dir, f"{event.driver}.d")
    return [{"kind": "libvirt", "name": name, "path": os.path.join(folder, name),
             "source": f"{event.driver}.d/ (run by libvirt after the entry program)",
             "status": "run by libvirt, not by the dispatcher"}
            for name in sorted(_entries(folder) or ())]
