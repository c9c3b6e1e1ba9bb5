# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Immutable value objects for the policy model, without importing dataclasses.

Every hook event on a host with a policy file imports the policy model; the
dataclasses module (through inspect) costs more than the rest of that import
together (bench/hook_latency.py). ``Record`` keeps what the model uses of a
frozen dataclass: fields declared as annotations with defaults, keyword or
positional construction, equality, hashing, repr, and no assignment.
"""

_MISSING = object()


class Factory:
    """A default made fresh for each instance (like dataclasses' default_factory)."""

    __slots__ = ("make",)

    def __init__(self, make):
        self.make = make


class Record:
    """Subclasses declare fields as annotated class attributes; a value given is the default."""

    _fields = ()                              # ((name, default), ...) in declaration order

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        inherited = dict(cls._fields)
        for name in cls.__dict__.get("__annotations__", {}):
            inherited[name] = cls.__dict__.get(name, _MISSING)
        cls._fields = tuple(inherited.items())

    def __init__(self, *args, **kwargs):
        if len(args) > len(self._fields):
            raise TypeError(f"{type(self).__name__}() takes {len(self._fields)} values, {len(args)} given")
        for (name, _default), value in zip(self._fields, args):
            if name in kwargs:
                raise TypeError(f"{type(self).__name__}() got {name} twice")
            kwargs[name] = value
        for name, default in self._fields:
            if name in kwargs:
                value = kwargs.pop(name)
            elif default is _MISSING:
                raise TypeError(f"{type(self).__name__}() needs {name}")
            else:
                value = default.make() if isinstance(default, Factory) else default
            object.__setattr__(self, name, value)
        if kwargs:
            raise TypeError(f"{type(self).__name__}() has no field {sorted(kwargs)[0]}")

    def _values(self):
        return tuple(getattr(self, name) for name, _default in self._fields)

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name):
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self):
        return hash((type(self).__name__,) + self._values())

    def __repr__(self):
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name, _default in self._fields)
        return f"{type(self).__name__}({inner})"
