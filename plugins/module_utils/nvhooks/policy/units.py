# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rates and sizes: libvirt units, human strings and tc's words, exactly.

Inside the core a rate is an int of bits per second and a size an int of
bytes. The rule (also in docs/policy.md):

* A bare integer (or a string of digits) is in libvirt's units, as in domain
  XML: rates (average, peak, floor) in KiB/s (x 8192 bit/s), bursts in KiB
  (x 1024 bytes). Note tc reads a bare number differently; we follow libvirt.
* Rate words follow tc, case-insensitive: ``bit kbit mbit gbit tbit`` are
  decimal bits/s (1 kbit = 1000 bit/s); ``kibit mibit gibit tibit`` are
  binary bits/s; ``bps kbps mbps gbps tbps`` are decimal BYTES/s
  (1 kbps = 1000 bytes/s, as tc says; not megabits); ``kibps ... tibps``
  binary bytes/s. Storage-style spellings are also accepted: ``B/s KB/s
  MB/s GB/s TB/s`` (decimal bytes/s) and ``KiB/s MiB/s GiB/s TiB/s``
  (binary bytes/s); ``bit/s kbit/s mbit/s ...`` equal the words without /s.
* Size words follow tc's (all binary): ``b`` bytes; ``k kb kib`` 1024
  bytes; ``m mb mib`` 1024^2; ``g gb gib`` 1024^3; ``kbit mbit gbit`` are
  1024/8, 1024^2/8, 1024^3/8 bytes.
* Decimals are exact (``1.5gbit`` is 1500000000 bit/s); a value that is not a
  whole number of bit/s (rates) or bytes (sizes) is an error.
* Zero, negative, unknown units and values beyond the kernel's fields
  (u64 bytes/s for rates, u32 bytes for sizes) are errors naming the field.
"""

import re
from fractions import Fraction

from ..errors import UnitError

KIB = 1024
# The kernel stores HTB rates as u64 bytes/s and sizes (burst, quantum) as u32.
MAX_RATE_BITS = (2 ** 64 - 1) * 8
MAX_SIZE_BYTES = 2 ** 32 - 1

_SI = {"": 1, "k": 10 ** 3, "m": 10 ** 6, "g": 10 ** 9, "t": 10 ** 12}
_IEC = {"ki": 2 ** 10, "mi": 2 ** 20, "gi": 2 ** 30, "ti": 2 ** 40}


def _rate_table():
    table = {}
    for prefixes in (_SI, _IEC):
        for prefix, mult in prefixes.items():
            table[f"{prefix}bit"] = mult          # bits/s
            table[f"{prefix}bit/s"] = mult
            table[f"{prefix}bps"] = mult * 8      # bytes/s, tc's meaning
    for prefix, mult in _SI.items():
        table[f"{prefix}b/s"] = mult * 8          # KB/s, MB/s: decimal bytes/s
    for prefix, mult in _IEC.items():
        table[f"{prefix}b/s"] = mult * 8          # KiB/s, MiB/s: binary bytes/s
    return table


RATE_UNITS = _rate_table()

SIZE_UNITS = {
    "b": 1, "byte": 1, "bytes": 1,
    "k": KIB, "kb": KIB, "kib": KIB,
    "m": KIB ** 2, "mb": KIB ** 2, "mib": KIB ** 2,
    "g": KIB ** 3, "gb": KIB ** 3, "gib": KIB ** 3,
    "kbit": KIB // 8, "mbit": KIB ** 2 // 8, "gbit": KIB ** 3 // 8,
}

_NUMBER = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z/]*)\s*$")


def _split(value, field):
    """Return (Fraction number, unit word or None for libvirt units)."""
    if isinstance(value, bool):
        raise UnitError(f"{value!r} is not a number", field)
    if isinstance(value, int):
        if value <= 0:
            raise UnitError(f"{value} must be greater than zero", field)
        return Fraction(value), None
    if isinstance(value, float):
        raise UnitError(
            f"{value!r} has no unit: write an integer in libvirt units or a string with a unit", field)
    if not isinstance(value, str):
        raise UnitError(f"{value!r} is not a rate or size", field)
    text = value.strip()
    if text.startswith("-"):
        raise UnitError(f"{value!r} must be greater than zero", field)
    match = _NUMBER.match(text)
    if not match:
        raise UnitError(f"cannot read {value!r} as a number with an optional unit", field)
    number, unit = Fraction(match.group(1)), match.group(2).lower()
    if number <= 0:
        raise UnitError(f"{value!r} must be greater than zero", field)
    if not unit:
        if "." in match.group(1):
            raise UnitError(f"{value!r}: a value in libvirt units must be a whole number", field)
        return number, None
    return number, unit


class _Kind:
    """What differs between rates and sizes; the conversion itself is shared."""

    def __init__(self, name, table, libvirt_unit, whole, limit, too_big, wrong_kind, hint):
        self.name, self.table, self.libvirt_unit, self.whole = name, table, libvirt_unit, whole
        self.limit, self.too_big, self.wrong_kind, self.hint = limit, too_big, wrong_kind, hint

    def parse(self, value, field):
        number, unit = _split(value, field)
        if unit is None:
            amount = number * self.libvirt_unit
        elif unit in self.table:
            amount = number * self.table[unit]
        else:
            hint = self.hint if unit in self.wrong_kind else ""
            raise UnitError(f"unknown {self.name} unit {unit!r} in {value!r}{hint}", field)
        if amount.denominator != 1:
            raise UnitError(f"{value!r} is not a whole number of {self.whole}", field)
        if amount > self.limit:
            raise UnitError(f"{value!r} exceeds the kernel's largest {self.name}{self.too_big}", field)
        return int(amount)


_RATE = _Kind("rate", RATE_UNITS, KIB * 8, "bit/s", MAX_RATE_BITS, "", SIZE_UNITS,
              " (a size unit: for a rate write e.g. 10mbit or 10MiB/s)")
_SIZE = _Kind("size", SIZE_UNITS, KIB, "bytes", MAX_SIZE_BYTES, " (4 GiB - 1 byte)", RATE_UNITS,
              " (a rate unit: a burst is a size, e.g. 64k or 1m)")


def parse_rate(value, field="rate"):
    """Convert a rate to bits per second (int)."""
    return _RATE.parse(value, field)


def parse_size(value, field="burst"):
    """Convert a size (burst) to bytes (int)."""
    return _SIZE.parse(value, field)


def rate_bytes(bits):
    """Bits/s to the kernel's bytes/s; rounds down like tc for odd bit counts."""
    return bits // 8


def format_rate(bits):
    """Readable rate: the largest decimal unit that shows the value exactly."""
    for word, mult in (("tbit", 10 ** 12), ("gbit", 10 ** 9), ("mbit", 10 ** 6), ("kbit", 10 ** 3)):
        if bits >= mult:
            text = _exact_decimal(Fraction(bits, mult))
            if text is not None:
                return text + word
    return f"{bits}bit"


def format_size(size):
    """Readable size: the largest binary unit that shows the value exactly."""
    for word, mult in (("GiB", KIB ** 3), ("MiB", KIB ** 2), ("KiB", KIB)):
        if size >= mult and size % mult == 0:
            return f"{size // mult}{word}"
    return f"{size}B"


def _exact_decimal(fraction, max_digits=3):
    for digits in range(max_digits + 1):
        scaled = fraction * 10 ** digits
        if scaled.denominator == 1:
            whole, frac = divmod(int(scaled), 10 ** digits)
            return f"{whole}.{frac:0{digits}d}" if digits else str(whole)
    return None


def to_libvirt_rate(bits):
    """Bits/s as libvirt KiB/s (may be fractional: returned as a Fraction)."""
    return Fraction(bits, KIB * 8)


def tc_rate_word(bits):
    """The same rate in tc's syntax, unambiguous (bit/s, no prefixes)."""
    return f"{bits}bit"


def tc_size_word(size):
    """The same size in tc's syntax (tc reads ``b`` as bytes)."""
    return f"{size}b"
