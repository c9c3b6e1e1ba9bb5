"""kernel/: the pyroute2 seam (compat), the one link model, bridge VLAN parsing; no kernel needed.

Runs in both unit lanes: Debian's python (pyroute2 0.7.2) and the venv (0.9).
"""
import subprocess
import sys
from importlib.metadata import version as dist_version

from nvhooks.kernel import bridge as kbridge, compat, links as klinks, netlink

PYROUTE2 = ".".join(dist_version("pyroute2").split(".")[:2])   # pyroute2.__version__ is "unknown" on Debian


# 0.8 (Python 3.13 in the libvirt11 lane's Debian 13 chroot) has 0.7's internals: no asyncio core yet
SEAM = {"0.7": "0.7", "0.8": "0.7", "0.9": "0.9"}


def test_seam_is_the_installed_version_and_decided_once():
    chosen = compat.impl()
    assert chosen.VERSION == SEAM[PYROUTE2], (chosen.__name__, PYROUTE2)
    assert compat.impl() is chosen
    assert chosen.__name__.endswith({"0.7": "pyroute2_07", "0.9": "pyroute2_09"}[SEAM[PYROUTE2]])


def test_importing_the_netlink_layer_imports_no_pyroute2_nor_ctypes():
    code = ("import sys, nvhooks.kernel.netlink, nvhooks.vlan.hook; "
            "print([m for m in ('pyroute2', 'ctypes') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": ":".join(sys.path)})
    assert out.stdout.strip() == "[]"


def test_fresh_nla_class_resolves_our_u32_selector():
    """The NLA class cache seam: raw keys (negative offsets) survive encode, read back by filter_keys."""
    from pyroute2.netlink.rtnl.tcmsg import tcmsg
    msg = netlink._u32_classes()()    # pylint: disable=protected-access
    assert netlink._u32_classes() is type(msg)    # built once
    keys = netlink.mac_keys("52:54:00:ab:cd:ef", -8)
    msg["family"], msg["index"], msg["handle"], msg["parent"], msg["info"] = 0, 7, 0x800, 0x10000, 0x10003
    msg["attrs"] = [["TCA_KIND", "u32"],
                    ["TCA_OPTIONS", {"attrs": [["TCA_U32_CLASSID", 0x10010],
                                               ["TCA_U32_SEL", {"raw_keys": keys, "keys": []}]]}]]
    msg.encode()
    back = tcmsg(bytes(msg.data))
    back.decode()
    assert back.get_attr("TCA_KIND") == "u32"
    got = netlink.filter_keys(back)
    assert [(value, mask, off) for mask, value, off in got] == keys
    assert netlink.keys_mac(got) == ("52:54:00:ab:cd:ef", -8)
    assert back.get_attr("TCA_OPTIONS").get_attr("TCA_U32_CLASSID") == 0x10010


def test_fresh_nla_class_does_not_touch_the_parent():
    from pyroute2.netlink.rtnl.tcmsg import cls_u32
    netlink._u32_classes()              # pylint: disable=protected-access
    parent = cls_u32.options
    assert parent.u32_sel is not netlink._u32_classes().get_options().u32_sel  # pylint: disable=protected-access
    parent()                            # compiles (or keeps) its own map
    assert getattr(parent, "_nlmsg_base__compiled_nla") is True


class _Msg(dict):
    """A stand-in for a decoded pyroute2 message: get_attr over a dict of attributes."""

    def __init__(self, nla, **fields):
        super().__init__({"attrs": list(nla.items()), **fields})
        self.nla = nla

    def get_attr(self, name):
        return self.nla.get(name)


def _link_msg(index, name, kind=None, alias=None, master=None, data=None):
    info = _Msg({"IFLA_INFO_KIND": kind, "IFLA_INFO_DATA": data}) if kind else None
    return _Msg({"IFLA_IFNAME": name, "IFLA_IFALIAS": alias, "IFLA_MASTER": master, "IFLA_LINKINFO": info},
                index=index)


def test_one_link_model_for_shaping_and_vlans():
    ifb = klinks.Link.from_msg(_link_msg(5, "nvi1", "ifb", "netvirt port x"))
    idx, name, kind, alias = ifb                   # the shaping code's view
    assert (idx, name, kind, alias) == (5, "nvi1", "ifb", "netvirt port x")
    assert not ifb.is_bridge and not ifb.vlan_capable and ifb.master is None
    br = klinks.Link.from_msg(_link_msg(2, "br0", "bridge", data=_Msg(
        {"IFLA_BR_VLAN_FILTERING": 1, "IFLA_BR_VLAN_DEFAULT_PVID": 1})))
    assert br.is_bridge and br.vlan_capable and br.vlan_filtering is True and br.default_pvid == 1
    plain = klinks.Link.from_msg(_link_msg(3, "br1", "bridge", data=_Msg({})))   # no VLAN filtering built in
    assert plain.is_bridge and not plain.vlan_capable and plain.vlan_filtering is False
    tap = klinks.Link.from_msg(_link_msg(9, "vnet0", master=2))
    assert tap.kind is None and tap.master == 2


class _Sock:
    def __init__(self, links=(), vlans=(), refuse=None):
        self.links, self.vlans, self.refuse, self.sent = list(links), list(vlans), refuse, []

    def get_links(self):
        return self.links

    def get_vlans(self):
        return self.vlans

    def link(self, command, **key):
        if command == "get":
            found = [m for m in self.links if key.get("index") == m["index"]
                     or key.get("ifname") == m.get_attr("IFLA_IFNAME")]
            if not found:
                raise OSError(19, "ENODEV")
            return found
        if command == "dump":
            raise OSError(22, "no kind-filtered dumps here")
        self.sent.append((command, key))
        return ()

    def vlan_filter(self, op, **kwarg):
        if self.refuse:
            from pyroute2.netlink.exceptions import NetlinkError
            raise NetlinkError(self.refuse, "refused")
        self.sent.append((op, kwarg))


def test_link_lookups():
    sock = _Sock([_link_msg(1, "lo"), _link_msg(5, "nvi1", "ifb", "a"), _link_msg(6, "nvi2", "ifb", "b")])
    assert klinks.link_index(sock, "nvi2") == 6 and klinks.link_index(sock, "nope") is None
    assert klinks.lookup(sock, "nope") is None and klinks.lookup_index(sock, 5).name == "nvi1"
    assert [tuple(link) for link in klinks.ifb_links(sock)] == [(5, "nvi1", "ifb", "a"), (6, "nvi2", "ifb", "b")]
    assert sorted(klinks.by_name(sock)) == ["lo", "nvi1", "nvi2"]
    assert netlink.lookup is klinks.lookup and netlink.set_link is klinks.set_link   # shaping's names


def test_read_tables_expands_ranges():
    spec = _Msg({}, attrs=[("IFLA_BRIDGE_FLAGS", 0),
                           ("IFLA_BRIDGE_VLAN_INFO", {"vid": 1, "flags": kbridge.FLAG_PVID | kbridge.FLAG_UNTAGGED}),
                           ("IFLA_BRIDGE_VLAN_INFO", {"vid": 300, "flags": kbridge.FLAG_RANGE_BEGIN}),
                           ("IFLA_BRIDGE_VLAN_INFO", {"vid": 302, "flags": kbridge.FLAG_RANGE_END}),
                           ("IFLA_BRIDGE_VLAN_INFO", {"vid": 7, "flags": 0x1})])          # master bit dropped
    sock = _Sock(vlans=[_Msg({"IFLA_AF_SPEC": spec}, index=4), _Msg({}, index=2)])
    assert kbridge.read_tables(sock) == {4: {1: 6, 300: 0, 301: 0, 302: 0, 7: 0}, 2: {}}


def test_send_all_and_errors():
    import errno
    import pytest
    from nvhooks.errors import KernelError
    sock = _Sock()
    kbridge.send_all(sock, 4, [("del", [(1, 0)]), ("add", [(100, 6)])], "port p", self_=True)
    assert sock.sent == [
        ("del", {"index": 4, "af_spec": {"attrs": [("IFLA_BRIDGE_FLAGS", 2), ("IFLA_BRIDGE_VLAN_INFO", {"vid": 1, "flags": 0})]}}),
        ("add", {"index": 4, "af_spec": {"attrs": [("IFLA_BRIDGE_FLAGS", 2), ("IFLA_BRIDGE_VLAN_INFO", {"vid": 100, "flags": 6})]}})]
    with pytest.raises(KernelError, match="port p: this kernel has no bridge VLAN filtering"):
        kbridge.send_all(_Sock(refuse=errno.EOPNOTSUPP), 4, [("add", [(100, 0)])], "port p")
    with pytest.raises(KernelError, match="port p: the kernel refused the VLAN change"):
        kbridge.send_all(_Sock(refuse=errno.EINVAL), 4, [("add", [(100, 0)])], "port p")


def _answers(*flag_sets):
    """A dump call as pyroute2 0.7 (exception) or 0.9 (flag) shows an interrupted dump, one answer per call."""
    from pyroute2.netlink.exceptions import NetlinkDumpInterrupted
    calls = []

    def call(*argv, **kwarg):
        calls.append((argv, kwarg))
        flags = flag_sets[min(len(calls), len(flag_sets)) - 1]
        if flags == "raise":
            raise NetlinkDumpInterrupted()
        return iter([{"header": {"flags": flags}, "n": len(calls)}])
    return call, calls


def test_dump_is_asked_again_while_interrupted():
    """Injected at the pyroute2 boundary: which dump the kernel interrupts cannot be chosen."""
    call, calls = _answers("raise", compat.NLM_F_DUMP_INTR | 0x2, 0x2)
    assert compat.dump(call, 5, parent=1) == [{"header": {"flags": 0x2}, "n": 3}]
    assert calls == [((5,), {"parent": 1})] * 3


def test_dump_interrupted_every_time_is_a_kernel_error_after_a_few_attempts():
    import pytest
    from nvhooks.errors import KernelError
    for always in ("raise", compat.NLM_F_DUMP_INTR):
        call, calls = _answers(always)
        with pytest.raises(KernelError) as err:
            compat.dump(call)
        assert len(calls) == compat.DUMP_ATTEMPTS
        assert str(err.value).startswith("netlink dump (call): interrupted 8 times in a row"), str(err.value)


def test_filters_of_an_interrupted_dump_are_an_error_not_none(monkeypatch):
    """netlink.dump() reads "no filters" from a refused filter dump, never from an interrupted one."""
    import pytest
    from nvhooks.errors import KernelError
    clsact = {"parent": 0xFFFFFFF1, "handle": 0xFFFF0000, "attrs": [["TCA_KIND", "clsact"]]}

    class Msg(dict):
        def get_attr(self, name):
            return dict(self["attrs"]).get(name)

    class Sock:
        def get_filters(self, *argv, **kwarg):
            return iter([{"header": {"flags": compat.NLM_F_DUMP_INTR}}])

    monkeypatch.setattr(netlink, "dev_tc", lambda sock, index: ([Msg(clsact)], []))
    with pytest.raises(KernelError):
        netlink.dump(Sock(), 3)


def _in_child(code):
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": ":".join(sys.path)})
    return out.stdout.strip()


def test_light_pyroute2_loads_only_what_the_core_uses():
    # pyroute2's __init__ loads every entry point (NDB with sqlite3, IPDB, ...) and 0.7's
    # IPRoute mixin module pulls in unittest.mock: megabytes the hook and the agent never use
    # (0.9's iprsocket imports unittest.mock itself: only 0.7's is avoidable)
    # (0.9's netlink buffer imports multiprocessing.shared_memory itself: only 0.7's config is avoidable)
    heavy = ("pyroute2.ndb", "pyroute2.ipdb", "sqlite3", "importlib.metadata") + \
        (("unittest", "multiprocessing") if SEAM[PYROUTE2] == "0.7" else ())
    code = ("import sys; from nvhooks.kernel import netlink, compat; compat.impl(); "
            "from pyroute2.netlink.rtnl.tcmsg import tcmsg; from pyroute2.netlink.exceptions import NetlinkError; "
            f"print(netlink.ipr.__name__, sorted(m for m in {heavy!r} if m in sys.modules))")
    assert _in_child(code) == "ipr []"


def test_light_pyroute2_still_gives_the_whole_library_on_demand():
    # another user of pyroute2 in the same process (a module, a test) asks for a top-level name
    code = ("from nvhooks.kernel import compat; compat.light(); import pyroute2; "
            "from pyroute2 import IPRoute, NDB, netns; import sys; lab = sys.modules.get('pyroute2.lab'); "
            "print(IPRoute.__name__, NDB.__name__, netns.__name__, getattr(lab, 'use_mock', False), "
            "hasattr(pyroute2, 'NoSuchName'))")
    assert _in_child(code) == "IPRoute NDB pyroute2.netns False False"


def test_light_config_names_the_real_multiprocessing_when_called():
    # pyroute2.config is imported against a stand-in; its Pipe/Queue/Process import the real module
    code = ("import sys; from nvhooks.kernel import compat; compat.light(); from pyroute2 import config; "
            "stand_in = sys.modules.get('multiprocessing'); queue = config.MpQueue(); queue.put(7); "
            "import multiprocessing; print(queue.get(), config.MpProcess.__name__, "
            "stand_in is None or stand_in is multiprocessing, hasattr(multiprocessing, 'Manager'))")
    assert _in_child(code) == "7 Process True True"


def test_light_config_starts_no_program():
    # platform.uname() ran `uname -p` and platform.architecture() `file -b` in every hook that imported pyroute2
    code = ("import os, struct, subprocess, sys, platform; spawned = []; real = subprocess.Popen.__init__\n"
            "def spy(self, args, *argv, **kwarg):\n    spawned.append(args); real(self, args, *argv, **kwarg)\n"
            "subprocess.Popen.__init__ = spy\n"
            "from nvhooks.kernel import compat; compat.light(); from pyroute2 import config\n"
            "print(spawned, config.uname[:5] == tuple(os.uname()), config.machine == os.uname().machine, "
            "config.arch == f\"{struct.calcsize('P') * 8}bit\", platform.uname.__module__, "
            "platform.architecture.__module__)")
    assert _in_child(code) == "[] True True True platform platform"


def test_light_is_a_no_op_when_pyroute2_is_imported_already():
    code = ("import pyroute2; from nvhooks.kernel import compat; compat.light(); import sys; "
            "print(sys.modules['pyroute2'] is pyroute2, hasattr(pyroute2, 'NDB'))")
    assert _in_child(code) == "True True"
