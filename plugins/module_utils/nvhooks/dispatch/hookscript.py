# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Install/remove one custom hook script: the logic behind libvirt_hook_script.

On-host layout of a script called NAME (docs/hooks.md "Installed scripts"):
the file lives once in ``netvirt/scripts/NAME``; each event gets a symlink to
it (``qemu_started_begin.d/NAME``, ``daemon_start.d/NAME``, ``custom/all_NAME``,
``custom/<op>_NAME``); its conf is ``conf/NAME.conf``. Plan first (pure,
gives changed/diff/check mode: a change.Change), then apply atomically.
``run`` is the module's one call.
"""

import os
import re
import shutil
import subprocess
import tempfile

from . import conf as confmod, dispatcher
from .. import paths
from ..change import Change, Failed
from ..errors import NetvirtError
from .event import OPS, parse_name

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")
MAX_SCRIPT_BYTES = 1024 * 1024
SHELLS = ("sh", "bash", "dash", "ksh", "zsh")


class ScriptError(NetvirtError):
    """Bad module input or a host state we refuse to overwrite."""


def scripts_dir():
    return os.path.join(paths.netvirt_etc(), "scripts")


def check_name(name):
    if not isinstance(name, str) or not NAME_RE.match(name) or name.endswith(".conf"):
        raise ScriptError("must be 1-100 characters of letters, digits, '.', '_', '+', '-', "
                          "starting with a letter or digit, got %r" % (name,), "name")


def link_path(event_name, name, dconf):
    """Where the symlink for ``event_name`` goes."""
    try:
        driver, op, subop = parse_name(event_name)
    except ValueError as err:
        raise ScriptError(str(err), "events") from None
    if op == "all" or (driver == "qemu" and subop is None):
        if driver != "qemu":
            raise ScriptError(f"{event_name!r}: 'all' and op-only events exist for qemu only (custom folder)", "events")
        return os.path.join(dconf.custom_dir, f"{op}_{name}")
    if driver == "daemon":
        return os.path.join(dconf.events_dir, f"daemon_{op}.d", name)
    if subop is None:
        raise ScriptError(f"{event_name!r}: give the sub-operation, such as {driver}/{op}/begin",
                          "events")
    if subop not in ("begin", "end"):
        raise ScriptError(f"{event_name!r}: sub-operation must be begin or end", "events")
    return os.path.join(dconf.events_dir, f"{driver}_{op}_{subop}.d", name)


def conf_values(timeout=None, fail=None, xml_filter=None, log_level=None, config=None):
    values = {}
    for key, value in sorted((config or {}).items()):
        key = str(key).strip().lower()
        if not re.match(r"^[a-z0-9_.-]+$", key):
            raise ScriptError(f"conf key {key!r}: use letters, digits, '_', '.', '-'", "config")
        text = "yes" if value is True else "no" if value is False else str(value)
        if "\n" in text or "\r" in text:
            raise ScriptError(f"value of {key!r} must be one line", "config")
        values[key] = text.strip()
    for key, value in (("timeout", timeout), ("fail", fail), ("xml_filter", xml_filter),
                       ("log_level", log_level)):
        if value is not None:
            values[key] = ("yes" if value else "no") if isinstance(value, bool) else str(value)
    # Same checks the dispatcher applies when it reads the file.
    try:
        confmod.ScriptConf(values, "config", confmod.DispatcherConf())
    except confmod.ConfError as err:
        raise ScriptError(err.message, err.where) from None
    return values


def validate_content(content, name):
    """Shebang present, interpreter exists, syntax check for shell and Python."""
    if len(content) > MAX_SCRIPT_BYTES:
        raise ScriptError("larger than 1 MiB", name)
    if not content.startswith(b"#!"):
        raise ScriptError("no shebang line (#!/path/to/interpreter): libvirt runs it directly", name)
    words = content[2:].split(b"\n", 1)[0].decode("utf-8", "replace").split()
    if not words:
        raise ScriptError("empty shebang line", name)
    interp = words[0]
    if os.path.basename(interp) == "env" and len(words) > 1:
        found = shutil.which(words[1])
        if not found:
            raise ScriptError(f"interpreter {words[1]!r} (via env) not found on this host", name)
        interp = found
    elif not os.path.isabs(interp) or not os.access(interp, os.X_OK):
        raise ScriptError(f"interpreter {interp!r} not found or not executable on this host", name)
    base = os.path.basename(interp)
    if base in SHELLS:
        check = [interp, "-n"]
    elif base.startswith("python"):
        check = [interp, "-c", "import sys; compile(open(sys.argv[1], 'rb').read(), sys.argv[1], 'exec')"]
    else:
        return
    with tempfile.NamedTemporaryFile(prefix="netvirt-hook-check-") as handle:
        handle.write(content)
        handle.flush()
        proc = subprocess.run(check + [handle.name], stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=60, check=False)
    if proc.returncode != 0:
        detail = proc.stderr.decode("utf-8", "replace").replace(handle.name, name).strip()
        raise ScriptError(f"syntax check ({' '.join(check[:2])}) failed: {detail}", name)


def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _candidate_folders(dconf):
    """Every folder a link of ours may sit in (to find stale ones)."""
    out = [dconf.custom_dir]
    try:
        names = os.listdir(dconf.events_dir)
    except OSError:
        names = []
    for entry in sorted(names):
        head = entry.split("_", 1)[0]
        if entry.endswith(".d") and "_" in entry and head in OPS:
            out.append(os.path.join(dconf.events_dir, entry))
    return out


def current_links(target, dconf):
    links = []
    for folder in _candidate_folders(dconf):
        try:
            entries = os.listdir(folder)
        except OSError:
            continue
        for entry in entries:
            path = os.path.join(folder, entry)
            if os.path.islink(path) and os.readlink(path) == target:
                links.append(path)
    return sorted(links)


class Plan:
    """The difference between the host and what was asked."""

    def __init__(self, name, dconf):
        self.name = name
        self.script = os.path.join(scripts_dir(), name)
        self.conf_file = confmod.script_conf_path(name)
        self.before = {"content": _read(self.script), "conf": _read(self.conf_file),
                       "links": current_links(self.script, dconf)}
        self.after = None

    def want_present(self, content, values, links):
        self.after = {"content": content, "conf": confmod.render(values).encode() if values else None,
                      "links": sorted(set(links))}
        for link in self.after["links"]:
            if os.path.lexists(link) and not (os.path.islink(link) and os.readlink(link) == self.script):
                raise ScriptError(f"exists and is not a link to {self.script}: refusing to replace it", link)

    def want_absent(self):
        self.after = {"content": None, "conf": None, "links": []}

    @property
    def mode_wrong(self):
        try:
            st = os.stat(self.script)
        except FileNotFoundError:
            return False
        return st.st_mode & 0o7777 != 0o755 or (os.geteuid() == 0 and (st.st_uid, st.st_gid) != (0, 0))

    @property
    def changed(self):
        return self.before != self.after or (self.after["content"] is not None and self.mode_wrong)

    def actions(self):
        """What apply does, one readable line each, in order."""
        before, after = self.before, self.after
        out = [f"unlink {link}" for link in before["links"] if link not in after["links"]]
        for path, key in ((self.script, "content"), (self.conf_file, "conf")):
            if after[key] is None:
                out += [f"remove {path}"] if before[key] is not None else []
            elif before[key] != after[key]:
                out.append(f"write {path}")
            elif key == "content" and self.mode_wrong:
                out.append(f"set mode 0755 (owner root) of {path}")
        out += [f"link {link} -> {self.script}" for link in after["links"] if link not in before["links"]]
        return out

    def change(self):
        """The Change: the script, its conf and its links, each a section of the diff."""
        def links(data):
            return "".join(f"{p}\n" for p in data)
        sections = (Change(self.before["content"], self.after["content"], header=self.script),
                    Change(self.before["conf"], self.after["conf"], header=self.conf_file),
                    Change(self.before["links"], self.after["links"], header="links", text=links))
        return Change(self.before, self.after, self.actions(), self.changed, sections=sections)

    def diff(self):
        return self.change().diff()

    def apply(self):
        after = self.after
        for link in self.before["links"]:
            if link not in after["links"]:
                os.unlink(link)
        if after["content"] is None:
            for path in (self.script, self.conf_file):
                if os.path.lexists(path):
                    os.unlink(path)
            return
        # Script and conf before links: a link never points at a missing file.
        atomic_write(self.script, after["content"], 0o755)
        if after["conf"] is None:
            if os.path.lexists(self.conf_file):
                os.unlink(self.conf_file)
        else:
            atomic_write(self.conf_file, after["conf"], 0o644)
        for link in after["links"]:
            if link not in self.before["links"]:
                _symlink(self.script, link)


def _mkdirs(path):
    if not os.path.isdir(path):
        os.makedirs(path, mode=0o755, exist_ok=True)


def atomic_write(path, data, mode):
    """Temp file in the same folder, root:root, fsync, rename."""
    folder = os.path.dirname(path)
    _mkdirs(folder)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=folder)
    try:
        _write_all(fd, data)
        os.fchmod(fd, mode)
        if os.geteuid() == 0:
            os.fchown(fd, 0, 0)
        os.fsync(fd)
        os.close(fd)
        fd = None
        os.rename(tmp, path)
    except BaseException:
        if fd is not None:
            os.close(fd)
        os.unlink(tmp)
        raise


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _symlink(target, link):
    folder = os.path.dirname(link)
    _mkdirs(folder)
    tmp = os.path.join(folder, f".{os.path.basename(link)}.tmp{int(os.getpid())}")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.rename(tmp, link)


def plan(name, state, dconf, content=None, events=(), values=None):
    """Build the Plan for one module call (validates everything first)."""
    check_name(name)
    result = Plan(name, dconf)
    if state == "absent":
        result.want_absent()
        return result
    if not events:
        raise ScriptError("at least one event is required with state=present", "events")
    validate_content(content, name)
    result.want_present(content, values or {}, [link_path(ev, name, dconf) for ev in events])
    return result


def _content(params):
    if params["src"] is None:
        return params["content"].encode("utf-8")
    try:
        with open(params["src"], "rb") as handle:
            return handle.read(MAX_SCRIPT_BYTES + 1)
    except OSError as err:
        raise Failed(f"cannot read {params['src']}: {err.strerror}", "src") from None


def run(params, check=False, diff=False):
    """The libvirt_hook_script module's call: (result, warnings); errors are change.Failed.

    ``params``: the module's arguments (name, events, content, src, timeout,
    fail, xml_filter, log_level, config, state, event).
    """
    p = params
    try:
        if p["state"] == "query":
            return Change().result(order=dispatcher.query(p["event"])), []
        dconf = confmod.load_dispatcher()
        content, values = None, None
        if p["state"] == "present":
            content = _content(p)
            values = conf_values(p["timeout"], p["fail"], p["xml_filter"], p["log_level"], p["config"])
        planned = plan(p["name"], p["state"], dconf, content, p["events"] or (), values)
    except Failed:
        raise
    except (NetvirtError, ValueError) as err:
        raise Failed.wrap(err) from None
    change = planned.change()
    result = change.result(diff=diff, script=planned.script, conf_file=planned.conf_file,
                           links=planned.after["links"])
    if change.changed and not check:
        try:
            planned.apply()
        except (OSError, NetvirtError) as err:
            raise Failed(f"cannot install {p['name']}: {err}", **result) from None
    return result, []
