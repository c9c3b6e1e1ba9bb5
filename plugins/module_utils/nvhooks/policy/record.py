# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Value objects for the core (policy model, domain XML, shaping plans), without importing dataclasses.

Every hook event on a host with a policy file imports the policy model; the
dataclasses module (through inspect) costs more than the rest of that import
together (bench/hook_latency.py), and 2 MiB of the agent. ``Record`` keeps
what the core uses of a dataclass: fields declared as annotations with
defaults, keyword or positional construction, equality, hashing, repr, no
assignment (``mutable=True`` allows it and, like a dataclass, drops the
hash), fields left out of equality and repr (``_unequal``), ``replace`` and
``as_fields``.
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
    _unequal = ()                             # names left out of ==, hash and repr (e.g. parsed elements)
    _mutable = False

    def __init_subclass__(cls, mutable=False, **kwargs):
        super().__init_subclass__(**kwargs)
        inherited = dict(cls._fields)
        for name in cls.__dict__.get("__annotations__", {}):
            inherited[name] = cls.__dict__.get(name, _MISSING)
        cls._fields = tuple(inherited.items())
        cls._mutable = mutable
        if mutable:
            cls.__hash__ = None                   # as a dataclass with eq and without frozen

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
        return tuple(getattr(self, name) for name, _default in self._fields if name not in self._unequal)

    def as_fields(self):
        """{name: value} of every field (dataclasses.asdict, one level deep)."""
        return {name: getattr(self, name) for name, _default in self._fields}

    def __setattr__(self, name, value):
        if not self._mutable:
            raise AttributeError(f"{type(self).__name__} is immutable")
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        raise AttributeError(f"{type(self).__name__} has fixed fields")

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self):
        return hash((type(self).__name__,) + self._values())

    def __repr__(self):
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name, _default in self._fields
                          if name not in self._unequal)
        return f"{type(self).__name__}({inner})"


def replace(record, **changes):
    """A copy of ``record`` with ``changes`` (dataclasses.replace)."""
    return type(record)(**dict(record.as_fields(), **changes))
