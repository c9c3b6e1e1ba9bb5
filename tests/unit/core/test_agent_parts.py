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
