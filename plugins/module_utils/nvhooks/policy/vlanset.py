# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""VLAN id sets: ``100,200-210`` <-> frozenset of ints, ids 1-4094."""

from ..errors import PolicyError

VID_MIN, VID_MAX = 1, 4094


def _vid(text, field):
    text = str(text).strip()
    if not text.isdigit():
        raise PolicyError(f"{text!r} is not a VLAN id", field)
    vid = int(text)
    if not VID_MIN <= vid <= VID_MAX:
        raise PolicyError(f"VLAN id {vid} is outside {VID_MIN}-{VID_MAX}", field)
    return vid


def parse_vids(value, field="vids"):
    """Parse ids and ranges given as a string, an int or a list of both.

    Overlapping or repeated items are an error: they usually hide a typo.
    """
    if value is None:
        return frozenset()
    if isinstance(value, bool):
        raise PolicyError(f"{value!r} is not a VLAN id", field)
    if isinstance(value, int):
        return frozenset([_vid(value, field)])
    if isinstance(value, str):
        items = [item for item in value.split(",") if item.strip()]
    elif isinstance(value, (list, tuple)):
        items = []
        for item in value:
            items.extend(str(item).split(",") if isinstance(item, str) else [item])
    else:
        raise PolicyError(f"{value!r} is not a list of VLAN ids", field)
    result = set()
    for item in items:
        text = str(item).strip()
        if "-" in text:
            low_text, high_text = text.split("-", 1)
            low, high = _vid(low_text, field), _vid(high_text, field)
            if low > high:
                raise PolicyError(f"range {text!r} runs backwards", field)
            ids = set(range(low, high + 1))
        else:
            ids = {_vid(text, field)}
        overlap = result & ids
        if overlap:
            raise PolicyError(f"{text!r} overlaps ids given before ({format_vids(overlap)})", field)
        result |= ids
    return frozenset(result)


def format_vids(vids):
    """Compact text form: ``100,200-210``."""
    parts = []
    ordered = sorted(vids)
    start = prev = None
    for vid in ordered + [None]:
        if vid is not None and prev is not None and vid == prev + 1:
            prev = vid
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = vid
    return ",".join(parts)


def ranges(vids):
    """Sorted (first, last) runs, for kernels' range flags."""
    text = format_vids(vids)
    out = []
    for part in text.split(",") if text else []:
        low, high = (part.split("-") + [part])[:2]
        out.append((int(low), int(high)))
    return out
