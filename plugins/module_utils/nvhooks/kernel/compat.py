# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one seam onto pyroute2 internals: a socket in a named netns, raw requests, NLA class caches.

pyroute2 0.7.x (Debian 12; 0.8.x is the same there) and 0.9.x differ exactly there, so each version
has its own small implementation (pyroute2_07.py, pyroute2_09.py), chosen
at the first call and kept for the process. Nothing else in the core uses
pyroute2 internals; everything else is pyroute2's public API.
"""

import importlib
import importlib.machinery
import importlib.util
import os
import sys
import types

from ..errors import KernelError

_CHOSEN = []
DUMP_ATTEMPTS = 8        # a dump interrupted this often in a row is reported, not retried forever
NLM_F_DUMP_INTR = 0x10   # include/uapi/linux/netlink.h: links changed while the dump ran
# top-level names the core takes from the package, and the submodule defining them (0.7 and 0.9)
_NAMES = {"IPRoute": "pyroute2.iproute.linux", "AsyncIPRoute": "pyroute2.iproute.linux"}


def _getattr(name):
    """Module __getattr__ of the light package: our names, then submodules, then the real __init__."""
    package = sys.modules["pyroute2"]
    if name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)   # AttributeError: not this version
        setattr(package, name, value)
        return value
    if name.startswith("__"):
        raise AttributeError(name)
    if importlib.util.find_spec(f"pyroute2.{name}") is not None:
        return importlib.import_module(f"pyroute2.{name}")
    # someone else in this process wants the whole library: run its __init__ now
    package.__spec__.loader.exec_module(package)
    if name not in package.__dict__:
        raise AttributeError(f"module 'pyroute2' has no attribute {name!r}")
    return package.__dict__[name]


def light():
    """Make ``import pyroute2`` cheap: a package without its __init__, which loads every entry point.

    pyroute2's __init__ imports the whole library (NDB with sqlite3, IPDB,
    nftables, ipset, wireless, ...) and scans every installed distribution's
    entry points: about 9 MiB and 50 ms that the hook and the agent never use.
    The light package's submodules are the real ones; a name other than
    ours asked of the package itself loads the real __init__ after all.
    A no-op when pyroute2 is imported already or not installed.
    """
    if "pyroute2" in sys.modules:
        return
    spec = importlib.util.find_spec("pyroute2")
    if spec is None or not spec.submodule_search_locations:
        return
    package = types.ModuleType("pyroute2")
    package.__spec__, package.__file__ = spec, spec.origin
    package.__path__ = list(spec.submodule_search_locations)
    package.__getattr__ = _getattr
    sys.modules["pyroute2"] = package
    if importlib.util.find_spec("pyroute2.lab") is not None:
        sys.modules["pyroute2.lab"] = _lab()
    _light_config()


def _light_config():
    """Import pyroute2.config without what it costs for nothing here.

    * ``multiprocessing``: it only names Pipe, Queue and Process, for NetNS's
      helper process, which the core never starts (1.9 MiB in the agent). A
      stand-in serves while it imports; the three names import the real
      module when called.
    * ``platform.uname()`` runs ``uname -p`` (the processor) and
      ``platform.architecture()`` runs ``file -b`` on the interpreter: two
      programs started by every hook that imports pyroute2. pyroute2 keeps
      the answers but uses only the system, release, machine and pointer
      size, which os.uname() and struct give without a program.
    """
    if "pyroute2.config" in sys.modules or importlib.util.find_spec("pyroute2.config") is None:
        return
    import collections
    import platform
    import struct
    stand_in = None
    if "multiprocessing" not in sys.modules:
        stand_in = types.ModuleType("multiprocessing")
        for name in ("Pipe", "Queue", "Process"):
            setattr(stand_in, name, _deferred(name))
        sys.modules["multiprocessing"] = stand_in
    uname_result = collections.namedtuple("uname_result", "system node release version machine processor")
    saved = platform.uname, platform.architecture
    platform.uname = lambda: uname_result(*os.uname(), "")
    platform.architecture = lambda *_argv, **_kwarg: (f"{struct.calcsize('P') * 8}bit", "")
    try:
        importlib.import_module("pyroute2.config")
    finally:
        platform.uname, platform.architecture = saved
        if stand_in is not None and sys.modules.get("multiprocessing") is stand_in:
            del sys.modules["multiprocessing"]


def _deferred(name):
    def call(*argv, **kwarg):
        return getattr(importlib.import_module("multiprocessing"), name)(*argv, **kwarg)
    call.__name__ = call.__qualname__ = name
    return call


class _LabAPI:
    """0.7's LAB_API, a mixin of IPRoute, without its test-only mocking (``use_mock`` stays False)."""


def _lab():
    """pyroute2.lab of 0.7 without ``unittest.mock``, which it imports for pyroute2's own tests only
    (and which pulls in asyncio): about 8 MiB in a process that never mocks."""
    lab = types.ModuleType("pyroute2.lab")
    lab.__spec__ = importlib.machinery.ModuleSpec("pyroute2.lab", None)
    lab.LAB_API, lab.use_mock, lab.registry = _LabAPI, False, []
    return lab


def impl():
    """The implementation module for the installed pyroute2 (decided once)."""
    if not _CHOSEN:
        light()
        import pyroute2
        # Debian's 0.7.2 reports its __version__ as 'unknown': test the asyncio core of 0.9
        if hasattr(pyroute2, "AsyncIPRoute"):
            from . import pyroute2_09 as chosen
        else:
            from . import pyroute2_07 as chosen
        _CHOSEN.append(chosen)
    return _CHOSEN[0]


def open_in_netns(name):
    """An IPRoute bound to network namespace ``name`` (which exists under /run/netns)."""
    return impl().open_in_netns(name)


def request(sock, msg, msg_type, flags):
    """Send ``msg`` (built here, not by pyroute2's helpers); a tuple of the answer's messages.

    Raises pyroute2's NetlinkError (``.code`` the errno) when the kernel refuses.
    """
    return impl().request(sock, msg, msg_type, flags)


def fresh_nla_class(klass):
    """Make pyroute2 compile ``klass``'s own NLA map instead of using its parent's cached one."""
    impl().reset_nla_cache(klass)
    return klass


def dump(call, *argv, **kwarg):
    """``call(*argv, **kwarg)`` (a pyroute2 dump) as a list, again while the kernel says it was interrupted.

    Links added or removed during a dump that spans several reads make the
    kernel flag it NLM_F_DUMP_INTR (inconsistent). pyroute2 0.7 then raises
    NetlinkDumpInterrupted after the last message; 0.9 returns the messages
    as they are. Either way the dump is asked again, a few times at most,
    then a KernelError says so (a hook's one line, the agent's error log).
    """
    from pyroute2.netlink.exceptions import NetlinkDumpInterrupted
    for _attempt in range(DUMP_ATTEMPTS):
        try:
            msgs = list(call(*argv, **kwarg))
        except NetlinkDumpInterrupted:
            continue
        if not any(_interrupted(m) for m in msgs):
            return msgs
    raise KernelError(f"interrupted {DUMP_ATTEMPTS} times in a row by concurrent changes of the network "
                      "devices; try again", f"netlink dump ({getattr(call, '__name__', 'request')})")


def _interrupted(msg):
    try:
        return bool(msg["header"]["flags"] & NLM_F_DUMP_INTR)
    except (KeyError, TypeError):     # a message made without a header (tests' fakes) is no dump part
        return False
