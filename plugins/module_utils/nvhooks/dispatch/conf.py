# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The dispatcher's conf and per-script conf files.

Format (both files): one ``key: value`` per line, ``#`` starts a comment,
blank lines ignored. Chosen so shell scripts can grep it and the hook needs
nothing beyond the standard library to read it. Unknown keys are errors in
the dispatcher conf (typos must not pass silently); per-script confs may hold
the script's own keys too, which the dispatcher ignores.
"""

import math
import os

from .. import paths
from ..errors import NetvirtError
from ..values import boolean as parse_boolean

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FAIL_POLICIES = ("abort", "ignore")
DEFAULT_TIMEOUT = 600.0        # per script, as CloudStack
DEFAULT_EVENT_TIMEOUT = 1800.0  # whole event; bounds libvirtd's wait
DEFAULT_GRACE = 5.0            # SIGTERM -> SIGKILL
DEFAULT_LOG_MAX_AGE_DAYS = 30  # logs of guests gone longer are collected (dispatch.loggc)
DEFAULT_LOG_MAX_FILES = 200    # per guest, rotated copies included
MAX_CONF_BYTES = 64 * 1024


class ConfError(NetvirtError):
    """A conf file that cannot be read or holds a bad value."""


def parse(text, source):
    """Parse ``key: value`` lines into a dict; errors name file and line."""
    out = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if not sep or not key:
            raise ConfError(f"expected 'key: value', got {line!r}", f"{source}:{int(number)}")
        out[key] = value.strip()
    return out


def read(path):
    """Read and parse a conf file; a missing file is an empty conf."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_CONF_BYTES + 1)
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise ConfError(f"cannot read: {err.strerror or err}", path) from None
    if len(raw) > MAX_CONF_BYTES:
        raise ConfError("larger than 64 KiB", path)
    try:
        return parse(raw.decode("utf-8"), path)
    except UnicodeDecodeError:
        raise ConfError("not UTF-8 text", path) from None


def render(values):
    """The inverse of parse, keys sorted (stable for idempotent writes)."""
    return "".join(f"{key}: {values[key]}\n" for key in sorted(values))


def seconds(value, where):
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfError(f"not a number of seconds: {value!r}", where) from None
    if math.isnan(number) or number <= 0 or number > 7 * 86400:
        raise ConfError(f"must be > 0 and at most 7 days, got {value!r}", where)
    return number


def count(value, where, maximum):
    """A whole number 0..maximum (0: the rule is off)."""
    text = str(value).strip()
    if not (text.isascii() and text.isdigit()) or int(text) > maximum:
        raise ConfError(f"expected a whole number from 0 (off) to {maximum}, got {value!r}", where)
    return int(text)


def boolean(value, where):
    return parse_boolean(value, where, ConfError)


def choice(value, choices, where):
    text = str(value).strip()
    if where.endswith("log_level"):
        text = text.upper()
    if text not in choices:
        raise ConfError(f"expected one of {'|'.join(choices)}, got {value!r}", where)
    return text


class DispatcherConf:
    """Settings from netvirt/dispatcher.conf, with defaults."""

    KEYS = ("log_level", "timeout", "event_timeout", "grace", "log_dir",
            "events_dir", "custom_dir", "syslog", "builtins", "log_max_age_days",
            "log_max_files_per_guest", "handoff")

    def __init__(self, values=None, source="dispatcher.conf"):
        values = dict(values or {})
        unknown = sorted(set(values) - set(self.KEYS))
        if unknown:
            raise ConfError(f"unknown key {unknown[0]!r} (known: {', '.join(self.KEYS)})", source)
        self.source = source
        self.log_level = choice(values.get("log_level", "INFO"), LEVELS, f"{source}: log_level")
        self.timeout = seconds(values.get("timeout", DEFAULT_TIMEOUT), f"{source}: timeout")
        self.event_timeout = seconds(values.get("event_timeout", DEFAULT_EVENT_TIMEOUT),
                                     f"{source}: event_timeout")
        self.grace = seconds(values.get("grace", DEFAULT_GRACE), f"{source}: grace")
        # Paths in the file are used as written; NETVIRT_HOOKS_ROOT only moves the defaults.
        self.log_dir = _abs(values.get("log_dir"), paths.log_dir(), f"{source}: log_dir")
        self.events_dir = _abs(values.get("events_dir"), paths.hooks_dir(), f"{source}: events_dir")
        self.custom_dir = _abs(values.get("custom_dir"), paths.custom_dir(), f"{source}: custom_dir")
        self.syslog = boolean(values.get("syslog", "yes"), f"{source}: syslog")
        self.builtins = boolean(values.get("builtins", "yes"), f"{source}: builtins")
        # guest events' built-in steps run in a running agent (dispatch/handoff.py)
        self.handoff = boolean(values.get("handoff", "yes"), f"{source}: handoff")
        self.log_max_age_days = count(values.get("log_max_age_days", DEFAULT_LOG_MAX_AGE_DAYS),
                                      f"{source}: log_max_age_days", 36500)
        self.log_max_files_per_guest = count(values.get("log_max_files_per_guest", DEFAULT_LOG_MAX_FILES),
                                             f"{source}: log_max_files_per_guest", 1000000)


def _abs(value, default, where):
    if value is None or value == "":
        return default
    if not os.path.isabs(value):
        raise ConfError(f"must be an absolute path, got {value!r}", where)
    return os.path.normpath(value)


def load_dispatcher(path=None):
    path = path or paths.dispatcher_conf()
    return DispatcherConf(read(path), source=path)


class ScriptConf:
    """A script's conf/<name>.conf: what the dispatcher needs from it."""

    def __init__(self, values, source, defaults):
        self.source = source
        self.values = values
        self.timeout = seconds(values.get("timeout", defaults.timeout), f"{source}: timeout")
        self.fail = choice(values.get("fail", "abort"), FAIL_POLICIES, f"{source}: fail")
        self.xml_filter = boolean(values.get("xml_filter", "no"), f"{source}: xml_filter")
        self.log_level = choice(values.get("log_level", defaults.log_level), LEVELS,
                                f"{source}: log_level")


def script_conf_path(name):
    return os.path.join(paths.script_conf_dir(), f"{name}.conf")


def load_script(name, defaults):
    path = script_conf_path(name)
    return ScriptConf(read(path), path, defaults)
