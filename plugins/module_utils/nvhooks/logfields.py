# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Structured fields on a built-in handler's log records.

A handler logs through a plain ``logging.Logger``; a record about one port
carries its journal fields in ``extra``::

    log.info("%s: shaped", port.label, extra=logfields.port(port.dev, port.mac, "shape", changed=3))

``dispatch/hooklog.py`` sends them to the journal as ``PORT``, ``MAC``,
``ACTION`` and ``CHANGED`` (docs/troubleshooting.md, "Querying the journal").
"""

KEY = "netvirt_fields"   # the attribute logging puts on the LogRecord


def port(dev, mac=None, action=None, changed=None):
    """``extra=`` for a record about the port ``dev``; ``changed`` is a count of changes."""
    values = {"PORT": dev, "MAC": mac, "ACTION": action,
              "CHANGED": None if changed is None else int(changed)}
    return {KEY: {name: value for name, value in values.items() if value is not None}}


def of(record):
    """The fields a ``logging.LogRecord`` carries (``{}`` when none)."""
    return getattr(record, KEY, None) or {}
