"""Issue #13: the agent's pure parts: netlink notification parsing, drift routing,
holds, the CLI's new commands and the systemd unit the hooks role installs.
The agent itself runs against the real libvirtd in tests/libvirt/test_agent.py."""
import os
import shutil
import struct
import subprocess

import pytest

from nvhooks import holds, paths
from nvhooks.cli import command
from nvhooks.kernel import watch

ROLE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "roles", "hooks")


def _msg(mtype, body, attrs=()):
    payload = body + b"".join(struct.pack("=HH", 4 + len(v), t) + v + b"\0" * (-len(v) % 4) for t, v in attrs)
    return struct.pack("=IHHII", 16 + len(payload), mtype, 0, 0, 0) + payload


def test_watch_parses_link_and_tc_notifications():
    link = _msg(17, struct.pack("=BBHiII", 0, 0, 1, 42, 0, 0),
                [(3, b"nvgi1234\0"), (20, b"netvirt group web inbound\0")])
    qdisc = _msg(37, struct.pack("=BBHiIII", 0, 0, 0, 7, 0x10000, 0xffffffff, 0))
    other = _msg(24, struct.pack("=BBBBBBBBI", 0, 0, 0, 0, 0, 0, 0, 0, 0))     # a route: not ours to watch
    notes = list(watch.parse(link + qdisc + other))
    assert [(n.what, n.action, n.index, n.name, n.alias) for n in notes] == [
        ("link", "del", 42, "nvgi1234", "netvirt group web inbound"), ("qdisc", "del", 7, None, None)]


def test_watch_parse_stops_at_a_truncated_message():
    assert not list(watch.parse(struct.pack("=IHHII", 8, 36, 0, 0, 0) + b"\0" * 8))


class _Sink:
    def __init__(self):
        self.items = []

    def __call__(self, kind, guest, why):
        self.items.append((kind, guest, why))


def _router(taps):
    from nvhooks.agent import drift
    router = drift.Watch.__new__(drift.Watch)    # no thread, no socket: only the routing
    router.enqueue, router.log, router.taps = _Sink(), None, dict(taps)
    return router


def test_drift_routes_our_ifbs_and_ignores_others():
    router = _router({"vnet3": "web1"})
    router.route(watch.Note("link", "del", 9, "nvo1", "netvirt port vnet3 outbound"))
    router.route(watch.Note("link", "del", 10, "nvgi2", "netvirt group web inbound"))
    router.route(watch.Note("link", "del", 11, "vnet3", None))
    router.route(watch.Note("link", "del", 12, "eth9", "somebody else's"))
    router.route(watch.Note("link", "del", 13, "nvo9", "netvirt port vnet99 outbound"))  # no guest we know
    router.route(watch.Note("overrun", "lost", -1))
    assert router.enqueue.items == [("guest", "web1", "ifb nvo1 removed"), ("all", None, "ifb nvgi2 removed"),
                                    ("gc", None, "tap vnet3 removed"), ("all", None, "netlink notifications lost")]


@pytest.fixture
def run_root(tmp_path, monkeypatch):
    monkeypatch.setenv("NETVIRT_HOOKS_ROOT", str(tmp_path))
    os.makedirs(tmp_path / "run")
    return paths.run_dir()


def test_holds_per_guest_and_host(run_root):
    assert holds.why_held("web1") is None and holds.listing() == {}
    holds.hold("web1", "tcpdump on vnet3")
    assert "tcpdump on vnet3" in holds.why_held("web1") and holds.why_held("web2") is None
    assert oct(os.stat(holds.hold_dir()).st_mode & 0o777) == "0o700"
    holds.hold(None)
    assert holds.why_held("web2").startswith("host hold")
    assert set(holds.listing()) == {"web1", holds.HOST}
    assert holds.release("web1") and not holds.release("web1")
    assert holds.release(None) and holds.listing() == {}


@pytest.mark.parametrize("bad", ["", "../etc", "a/b", ".."])
def test_hold_refuses_what_is_not_a_guest_name(run_root, bad):
    from nvhooks.errors import NetvirtError
    with pytest.raises(NetvirtError):
        holds.hold(bad or "/")


def test_cli_hold_release_and_agent_parse(run_root, capsys):
    assert command.main(["hold", "web1", "--note", "debugging"]) == 0
    assert "held: web1" in capsys.readouterr().out
    assert command.main(["release", "web1"]) == 0
    assert "released: web1" in capsys.readouterr().out
    assert command.main(["release", "web1"]) == 0
    assert "web1 was not held" in capsys.readouterr().out
    assert command.main(["hold"]) == 2                # neither GUEST nor --host
    args = command.build_parser().parse_args(["agent", "--only", "web*", "--metrics-port", "9177"])
    assert (args.only, args.metrics_port, args.metrics_address, args.uri) == \
        ("web*", 9177, "127.0.0.1", "qemu:///system")


def _unit_text(command_path):
    with open(os.path.join(ROLE, "templates", "netvirt-hooks-agent.service.j2"), encoding="utf-8") as handle:
        text = handle.read()
    text = text.replace("{{ ansible_managed | comment }}", "# managed")
    text = text.replace("{{ hooks_command_path }}", command_path)
    start = text.index("{% for")
    return text[:start] + text[text.index("{% endfor %}") + len("{% endfor %}"):]


def test_agent_unit_file(tmp_path):
    text = _unit_text("/usr/local/sbin/netvirt-hooks")
    assert "ExecStart=/usr/local/sbin/netvirt-hooks agent\n" in text
    assert "Restart=always" in text and "WantedBy=multi-user.target" in text
    assert "{" not in text
    analyze = shutil.which("systemd-analyze")
    if analyze and os.geteuid() == 0:     # the unit lane also runs as nobody and on laptops without systemd
        unit = tmp_path / "netvirt-hooks-agent.service"
        unit.write_text(_unit_text("/bin/true"), encoding="utf-8")
        proc = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60,
                              check=False)
        problems = [line for line in proc.stderr.splitlines() if "netvirt-hooks-agent.service" in line]
        assert not problems, proc.stderr


HOT_MAC = "52:54:00:13:00:09"


def _status(root, tap=None):
    nic = (f"<interface type='bridge'><mac address='{HOT_MAC}'/><source bridge='br0'/><target dev='{tap}'/>"
           "</interface>") if tap else ""
    folder = root / "run" / "libvirt" / "qemu"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "web1.xml").write_text("<domstatus state='running' pid='1'><domain type='qemu' id='1'><name>web1</name>"
                                     f"<uuid>55555555-5555-4555-8555-555555555555</uuid><devices>{nic}</devices>"
                                     "</domain></domstatus>")


def _agent():
    import logging
    import types
    from nvhooks.agent import main as agentmain
    from nvhooks.policy import model
    agent = agentmain.Agent(types.SimpleNamespace(only=None, policy="/nonexistent", uri=None, textfile=None),
                            logging.getLogger("nvt.agent.unit"))
    agent.host = model.parse_host_policy({"rules": [{"match": {"mac": HOT_MAC}, "inbound": {"average": "10mbit"}}]})
    return agent


def test_hot_plug_and_detach_without_libvirt_read_the_status_xml(run_root, tmp_path, monkeypatch, caplog):
    """No libvirt connection (link None): the guest's ports come from its status XML, as in the
    real-kernel lane's tests/realkernel/test_agent_vlan_hotplug.py; here converge.guest is recorded."""
    import logging
    from nvhooks.agent import converge
    seen, answers = [], [(["web1 port 0 (vnet9, x): add qdisc htb"], {"vnet9"}, []), ([], {"vnet9"}, []),
                         ([], set(), [])]
    monkeypatch.setattr(converge, "guest", lambda domain, host, log, previous=(): (
        seen.append(([i.target_dev for i in domain.interfaces], set(previous))) or answers[len(seen) - 1]))
    monkeypatch.setattr(converge, "collect", lambda log, in_use: ["ifb nvo1: no redirect on vnet9 uses it"]
                        if not in_use(HOT_MAC) else [])
    caplog.set_level(logging.INFO, "nvt.agent.unit")
    agent = _agent()
    _status(tmp_path, "vnet9")
    agent.process([("guest", "web1", "device net0 attached", 0.0)])
    agent.process([("guest", "web1", "device net0 attached", 0.0)])    # again: nothing to say
    _status(tmp_path)                                                 # libvirt saved it without the NIC
    agent.process([("guest", "web1", "device net0 detached", 0.0), ("gc", None, "device net0 detached", 0.0)])
    assert seen == [(["vnet9"], set()), (["vnet9"], {"vnet9"}), ([], {"vnet9"})]
    assert [r.getMessage() for r in caplog.records] == [
        "guest web1 (device net0 attached): web1 port 0 (vnet9, x): add qdisc htb",
        "orphan removed: ifb nvo1: no redirect on vnet9 uses it"]
    assert agent.taps == {"web1": []} and agent.shaped == {"web1": set()}


def test_converge_logs_a_dump_given_up_on_and_goes_on(monkeypatch):
    """A kernel-layer error (here compat.dump() giving up on an interrupted dump) is an error line
    per part; the agent's loop never sees an exception from it."""
    import logging
    from nvhooks.agent import converge
    from nvhooks.errors import KernelError
    from nvhooks.policy import domxml
    from nvhooks.shaping import hook as shapehook
    from nvhooks.vlan import hook as vlanhook

    def interrupted(*_argv, **_kwarg):
        raise KernelError("interrupted 8 times in a row by concurrent changes of the network devices; try again",
                          "netlink dump (get_links)")
    monkeypatch.setattr(vlanhook, "apply_guest", interrupted)
    monkeypatch.setattr(shapehook, "apply_guest", interrupted)
    domain = domxml.parse_domain(
        f"<domain type='qemu'><name>web1</name><uuid>55555555-5555-4555-8555-555555555555</uuid><devices>"
        f"<interface type='bridge'><mac address='{HOT_MAC}'/><source bridge='br0'/><target dev='vnet9'/>"
        "</interface></devices></domain>".encode())
    changes, shaped, errors = converge.guest(domain, _agent().host, logging.getLogger("nvt.agent.unit"))
    assert changes == [] and shaped == {"vnet9"}
    assert [e.split(":")[0] for e in errors] == ["VLANs", "shaping"] and all("get_links" in e for e in errors)


def test_a_bug_in_one_guests_converge_is_one_line_and_the_loop_goes_on(run_root, monkeypatch, caplog):
    """An unexpected exception on the event path (not a NetvirtError) must end neither the agent's
    main loop nor the other guests' converges: one error line per guest."""
    import logging
    from nvhooks.agent import converge
    done = []

    def buggy(domain, host, log, previous=()):
        if domain.name == "web1":
            raise AttributeError("a bug")
        done.append(domain.name)
        return [], set(), []
    monkeypatch.setattr(converge, "guest", buggy)
    monkeypatch.setattr(converge, "collect", lambda log, in_use: [])
    caplog.set_level(logging.INFO, "nvt.agent.unit")
    agent = _agent()
    agent._domain = _domain_named       # two guests, no libvirt
    agent.process([("guest", "web1", "device net0 attached", 0.0), ("guest", "web2", "metadata changed", 0.0)])
    assert done == ["web2"]
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        "guest web1: internal error: AttributeError('a bug')"]


def _domain_named(name):
    from nvhooks.policy import domxml
    return domxml.parse_domain(
        f"<domain type='qemu'><name>{name}</name><uuid>55555555-5555-4555-8555-55555555555{name[-1]}</uuid>"
        f"<devices><interface type='ethernet'><mac address='{HOT_MAC}'/><target dev='vnet{name[-1]}'/>"
        "</interface></devices></domain>".encode())


def test_cyclic_garbage_of_an_apply_is_collected_at_the_next_tick_and_only_after_work(run_root):
    """pyroute2's messages refer to themselves: the agent collects them after work, not while idle."""
    import gc
    import weakref

    class Msg:
        pass

    def garbage():
        msg = Msg()
        msg.chain = [msg]
        return weakref.ref(msg)
    agent = _agent()
    enabled = gc.isenabled()
    gc.disable()                          # only the agent's own collection may free it
    try:
        idle = garbage()
        agent.collect_garbage()
        assert idle() is not None         # no work since the last tick: no collection
        agent.converge_safely("web1", "device net0 attached")    # no status XML: no ports, still work
        assert agent.garbage
        agent.collect_garbage()
        assert idle() is None and not agent.garbage
    finally:
        if enabled:
            gc.enable()


@pytest.mark.parametrize("handoff, expected", [(None, True), (False, False)])
def test_the_hooks_role_writes_handoff_as_the_dispatcher_reads_it(handoff, expected):
    """roles/hooks dispatcher.conf.j2 with the role's defaults (and hooks_handoff: false) parsed by the core."""
    jinja2 = pytest.importorskip("jinja2")      # the venv's; Debian's python here has none
    yaml = pytest.importorskip("yaml")
    from nvhooks.dispatch import conf as confmod
    role = os.path.join(os.path.dirname(__file__), "..", "..", "..", "roles", "hooks")
    with open(os.path.join(role, "defaults", "main.yml"), encoding="utf-8") as handle:
        values = yaml.safe_load(handle)
    if handoff is not None:
        values["hooks_handoff"] = handoff
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["bool"] = bool
    with open(os.path.join(role, "templates", "dispatcher.conf.j2"), encoding="utf-8") as handle:
        text = env.from_string(handle.read()).render(ansible_managed="managed", **values)
    dconf = confmod.DispatcherConf(confmod.parse(text, "dispatcher.conf"))
    assert dconf.handoff is expected
