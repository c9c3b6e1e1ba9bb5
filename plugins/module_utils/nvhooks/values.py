# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plain value parsers shared by the dispatcher's conf format and the policy model."""

from .errors import NetvirtError

TRUE = frozenset(("yes", "true", "on", "1"))
FALSE = frozenset(("no", "false", "off", "0"))


def boolean(value, where, error=NetvirtError):
    """yes/no, true/false, on/off, 1/0 (any case), or a real bool; else ``error`` naming ``where``."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise error(f"{value!r} is not a boolean (yes/no)", where)
