# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One change result, shared by the tc, VLAN and hook-script cores behind the modules.

A :class:`Change` holds the state before and after (any data: the core's own
view of it), the actions (readable lines, in order), whether anything changes
and how to show the difference as text: ``text`` renders one view, the
headers name both sides. Several files or objects changed in one call are one
Change with ``sections`` (the hook script: its file, its conf, its links); its
diff is then a list, one entry per section, as Ansible takes it.

:meth:`Change.result` gives the dict a module returns (``changed``, the
core's fields, ``diff`` when asked); :class:`Failed` is an error carrying the
fields a module returns next to ``msg``. Pure: no ansible, no kernel.
"""

from .errors import NetvirtError


def plain_text(view):
    """Default rendering: None is empty, bytes are decoded, anything else is str()."""
    if view is None:
        return ""
    if isinstance(view, bytes):
        return view.decode("utf-8", "replace")
    return str(view)


def line_text(lines):
    """A list of lines as text, one a line."""
    return "".join(f"{line}\n" for line in lines)


class Change:
    """What one call changes (or, in check mode, would change)."""

    __slots__ = ("before", "after", "actions", "changed", "before_header", "after_header", "text", "sections")

    def __init__(self, before=None, after=None, actions=(), changed=None, header=None, after_header=None,
                 text=plain_text, sections=()):
        """``changed`` defaults to "there are actions"; ``header`` names both sides unless
        ``after_header`` names the after side apart."""
        self.before = before
        self.after = after
        self.actions = list(actions)
        self.changed = bool(self.actions) if changed is None else bool(changed)
        self.before_header = header
        self.after_header = header if after_header is None else after_header
        self.text = text
        self.sections = tuple(sections)

    def __repr__(self):
        return (f"Change(changed={self.changed!r}, actions={self.actions!r}, before={self.before!r}, "
                f"after={self.after!r})")

    def merge(self, other):
        """This change followed by ``other`` (dict views are merged key by key): a new Change."""
        def joined(mine, theirs):
            if isinstance(mine, dict) and isinstance(theirs, dict):
                return {**mine, **theirs}
            return theirs if mine is None else mine
        return Change(joined(self.before, other.before), joined(self.after, other.after),
                      self.actions + other.actions, self.changed or other.changed, self.before_header,
                      self.after_header, self.text, self.sections + other.sections)

    def diff(self):
        """Ansible's diff: one dict with both texts and headers, or a list of them (sections)."""
        if self.sections:
            return [section.diff() for section in self.sections]
        out = {"before": self.text(self.before), "after": self.text(self.after)}
        if self.before_header is not None:
            out["before_header"] = self.before_header
        if self.after_header is not None:
            out["after_header"] = self.after_header
        return out

    def result(self, diff=False, **fields):
        """A module's return value: ``changed``, then ``fields``, then ``diff`` when ``diff`` is true."""
        out = {"changed": self.changed}
        out.update(fields)
        if diff:
            out["diff"] = self.diff()
        return out

    def as_dict(self):
        """before, after, actions, changed (the fields a core may return as they are)."""
        return {"changed": self.changed, "before": self.before, "after": self.after,
                "actions": list(self.actions)}


class Failed(NetvirtError):
    """A core call's error with the result fields a module returns next to ``msg``.

    Its text is the wrapped error's text (same message, same place).
    """

    def __init__(self, message, where=None, **fields):
        super().__init__(message, where)
        self.fields = fields

    @classmethod
    def wrap(cls, err, **fields):
        """``err`` (a NetvirtError or any exception) with ``fields``; keeps the text exactly."""
        if isinstance(err, NetvirtError):
            out = cls(err.message, err.where, **fields)
        else:
            out = cls(str(err), None, **fields)
        out.__cause__ = err
        return out
