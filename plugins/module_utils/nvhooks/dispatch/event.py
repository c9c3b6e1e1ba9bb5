# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A libvirt hook event: which driver, object, operation, and what it means.

libvirt calls ``/etc/libvirt/hooks/<driver> OBJECT OP SUBOP EXTRA`` (daemon:
``- start - start``, ``- reload begin SIGHUP``); see https://libvirt.org/hooks.html.
"""

# Valid operations per driver (libvirt 9). Anything else is logged and ignored.
OPS = {
    "qemu": ("prepare", "start", "started", "stopped", "release", "migrate",
             "restore", "reconnect", "attach"),
    "lxc": ("prepare", "start", "started", "stopped", "release", "reconnect"),
    "network": ("start", "started", "stopped", "port-created", "port-deleted",
                "updated", "plugged", "unplugged"),
    "daemon": ("start", "shutdown", "reload"),
}
# A failure at these operations makes libvirt abort them (the guest does not
# start, the restore/migration is refused); so a failing script must fail them.
ABORTING_OPS = frozenset(("prepare", "start", "started", "migrate", "restore",
                          "attach", "port-created", "plugged"))
# libvirt takes non-empty stdout as the replacement domain XML at these.
XML_OUTPUT_OPS = frozenset(("migrate", "restore"))
# Drivers whose stdin is a domain XML.
DOMAIN_DRIVERS = frozenset(("qemu", "lxc"))

# libvirt >= 10.5 passes why a qemu guest stopped as `release end`'s EXTRA:
# virDomainShutoffReason names (src/conf/domain_conf.c: unknown, shutdown,
# destroyed, crashed, migrated, saved, failed, from-snapshot, daemon); older
# libvirt: "-".
_REASON_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")

_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._+-")


class Event:
    """One hook call. ``stdin`` is the exact bytes libvirt gave."""

    def __init__(self, driver, args, stdin=b""):
        args = list(args) + ["-"] * (4 - len(args))
        self.driver = driver
        self.args = list(args)   # passed on unchanged
        self.object, self.op, self.subop, self.extra = args[:4]
        self.stdin = stdin

    @property
    def known(self):
        return self.op in OPS.get(self.driver, ())

    @property
    def name(self):
        """``qemu/started/begin``; daemon events have no meaningful subop."""
        if self.driver == "daemon":
            return f"daemon/{self.op}"
        return f"{self.driver}/{self.op}/{self.subop}"

    @property
    def folder(self):
        """The per-event folder name: ``qemu_started_begin.d``, ``daemon_start.d``."""
        return f"{self.name.replace('/', '_')}.d"

    @property
    def aborts_on_failure(self):
        # libvirtd ignores its daemon hook's status; a non-zero exit there only misleads
        return self.driver != "daemon" and self.op in ABORTING_OPS and self.op != "reconnect"

    @property
    def takes_xml_output(self):
        return self.driver in DOMAIN_DRIVERS and self.op in XML_OUTPUT_OPS

    @property
    def shutoff_reason(self):
        """Why the guest stopped (qemu ``release`` on libvirt >= 10.5), else None.

        A name newer than those listed above passes if it looks like one (lower
        case, digits, ``-``); anything else is not a reason and gives None.
        """
        if self.driver != "qemu" or self.op != "release" or self.extra in ("", "-"):
            return None
        if len(self.extra) > 32 or not set(self.extra) <= _REASON_CHARS:
            return None
        return self.extra

    @property
    def guest(self):
        return self.object if self.driver in DOMAIN_DRIVERS else None

    @property
    def uuid(self):
        """The guest's uuid as a log label (journal GUEST_UUID), or None.

        A cheap scan of the XML's first ``<uuid>`` (libvirt writes it right
        after ``<name>``), no XML parser: every logged event pays for it.
        Never used for a decision; policy reads policy.domxml.
        """
        if self.driver not in DOMAIN_DRIVERS or not self.stdin:
            return None
        head = self.stdin[:4096]
        start = head.find(b"<uuid>")
        end = head.find(b"</uuid>", start)
        if start < 0 or end < 0:
            return None
        text = head[start + 6:end].strip().decode("ascii", "replace").lower()
        return text if len(text) == 36 and all(c in "0123456789abcdef-" for c in text) else None


def parse_name(text):
    """``qemu/started/begin`` or ``daemon/start`` -> (driver, op, subop or None)."""
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError(f"expected driver/op/subop (daemon: daemon/op), got {text!r}")
    driver, op = parts[0], parts[1]
    if driver not in OPS:
        raise ValueError(f"unknown driver {driver!r} in {text!r} (known: {', '.join(sorted(OPS))})")
    if op != "all" and op not in OPS[driver]:
        raise ValueError(f"unknown operation {op!r} for {driver} in {text!r} (known: {', '.join(OPS[driver])})")
    return driver, op, parts[2] if len(parts) == 3 else None


def file_safe(text, limit=80):
    """A file-name-safe form of a guest/script name; distinct names stay distinct."""
    safe = "".join(c if c in _SAFE else "_" for c in text or "_")  # no re: keeps the hook light
    if safe in (".", ".."):
        safe = "_" * len(safe)
    if safe != text or len(safe) > limit:
        import zlib  # only for odd names
        safe = f"{safe[:limit]}~{zlib.crc32(text.encode('utf-8', 'surrogateescape')):08x}"
    return safe
