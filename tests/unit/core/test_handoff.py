"""The hook's hand-off to a running agent (dispatch/handoff.py, agent/serve.py), without libvirt.

The agent's server runs in this process on a scratch tree's socket, with a
stand-in for the agent (its policy path, apply lock and ``started``); the
hook side is the real dispatcher. The same event run with and without the
agent must give the same exit status, stderr and logs (plus one line naming
the agent). Owner and peer checks use real files and a real second uid.
"""
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import types

import pytest

from hooktree import XML, Tree, call

from nvhooks import paths
from nvhooks.agent import serve
from nvhooks.dispatch import handlers, handoff
from nvhooks.dispatch.event import Event

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown, a second uid)")


class Log:
    def __init__(self):
        self.lines = []

    def _add(self, fmt, *args):
        self.lines.append(fmt % args)

    info = warning = error = _add


@pytest.fixture
def tree(monkeypatch):
    # a short root: a Unix socket's path holds at most 107 bytes, pytest's tmp_path is longer
    root = tempfile.mkdtemp(prefix="nvh-")
    monkeypatch.setenv("NETVIRT_HOOKS_ROOT", root)
    monkeypatch.delenv("NETVIRT_HOOKS_HANDOFF", raising=False)
    made = Tree(root)
    made.dispatcher_conf("syslog: no\n")
    yield made
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def agent(tree):
    stand_in = types.SimpleNamespace(opts=types.SimpleNamespace(policy=paths.policy_file()),
                                     apply_lock=threading.Lock(), started={})
    server = serve.Server(stand_in, Log())
    server.start()
    assert server.sock is not None, server.log.lines
    yield server
    server.stop()


def logs(tree):
    """Every log's lines without time stamp and pid (they differ between runs)."""
    out = {}
    for name in tree.logs_list():
        out[name] = [re.sub(r"^\S+ \d+ ", "", line) for line in tree.log(name).splitlines()]
        os.unlink(os.path.join(tree.logs, name))
    return out


def both_ways(tree, monkeypatch, args):
    monkeypatch.setenv("NETVIRT_HOOKS_HANDOFF", "0")
    here = call("qemu", args, XML), logs(tree)
    monkeypatch.delenv("NETVIRT_HOOKS_HANDOFF")
    return here, (call("qemu", args, XML), logs(tree))


def without_agent_line(found):
    return {name: [line for line in lines if "run in the netvirt-hooks agent (pid" not in line]
            for name, lines in found.items()}


def test_broken_policy_fails_the_same_through_the_agent(tree, agent, monkeypatch):
    tree.write("netvirt/policy.json", "{not json")
    (local_rc, local_logs), (agent_rc, agent_logs) = both_ways(tree, monkeypatch, ["g1", "started", "begin", "-"])
    assert local_rc == agent_rc and local_rc[0] == 1 and "policy.json" in local_rc[2]
    assert without_agent_line(agent_logs) == local_logs
    assert any(f"run in the netvirt-hooks agent (pid {os.getpid()})" in line
               for lines in agent_logs.values() for line in lines)
    assert agent.served >= 1


def test_a_changed_policy_is_reread_and_a_bad_one_is_not_replaced_by_the_last_good(tree, agent, monkeypatch):
    tree.write("netvirt/policy.json", '{"rules": []}')
    rc, _out, err = call("qemu", ["g1", "started", "begin", "-"], XML)
    assert rc == 0, err
    tree.write("netvirt/policy.json", '{"rules": [')
    (local, _l), (through, _a) = both_ways(tree, monkeypatch, ["g1", "started", "begin", "-"])
    assert local == through and local[0] == 1


def test_a_bug_in_the_agent_s_handler_is_the_same_internal_error(tree, agent, monkeypatch):
    def boom(_event, _xml, _host):
        raise RuntimeError("boom")
    monkeypatch.setattr(handlers.REGISTRY[0], "wants", boom)
    (local_rc, local_logs), (agent_rc, agent_logs) = both_ways(tree, monkeypatch, ["g1", "start", "begin", "-"])
    assert local_rc == agent_rc and local_rc[0] == 1 and "internal error: RuntimeError('boom')" in local_rc[2]
    assert without_agent_line(agent_logs) == local_logs


def test_an_event_no_handler_wants_answers_not_wanted(tree, agent):
    event = Event("qemu", ["g1", "started", "begin", "-"], XML)
    answer = handoff.ask(event, "shapehook", 20, time.monotonic() + 10, 10)
    assert answer is not None and not answer.wanted and answer.error is None
    assert agent.agent.started == {}


def test_the_agent_declines_another_tree_s_request(tree, agent, monkeypatch):
    event = Event("qemu", ["g1", "started", "begin", "-"], XML)
    monkeypatch.setattr(paths, "policy_file", lambda: "/elsewhere/policy.json")
    assert handoff.ask(event, "shapehook", 20, time.monotonic() + 10, 10) is None
    assert agent.served == 0


def test_off_by_environment_or_dispatcher_conf(tree, monkeypatch):
    conf = types.SimpleNamespace(handoff=True)
    assert handoff.enabled(conf)
    assert not handoff.enabled(types.SimpleNamespace(handoff=False))
    monkeypatch.setenv("NETVIRT_HOOKS_HANDOFF", "0")
    assert not handoff.enabled(conf)
    from nvhooks.dispatch import conf as confmod
    assert confmod.DispatcherConf({"handoff": "no"}).handoff is False


def test_no_socket_or_a_stale_one_means_local_at_once(tree):
    event = Event("qemu", ["g1", "started", "begin", "-"], XML)
    assert handoff.ask(event, "shapehook", 20, time.monotonic() + 10, 10) is None
    # a SIGKILLed agent leaves its socket file: connect is refused
    from nvhooks import locks
    locks.private_dir(os.path.dirname(handoff.socket_path()))
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(handoff.socket_path())
    os.chmod(handoff.socket_path(), 0o600)
    stale.close()
    began = time.monotonic()
    assert handoff.ask(event, "shapehook", 20, time.monotonic() + 10, 10) is None
    assert time.monotonic() - began < 5      # not the event deadline: refused at once


def test_a_folder_others_may_write_is_not_used(tree, agent):
    os.chmod(os.path.dirname(agent.path), 0o777)
    event = Event("qemu", ["g1", "started", "begin", "-"], XML)
    assert handoff.ask(event, "shapehook", 20, time.monotonic() + 10, 10) is None
    assert agent.served == 0
    assert "writable by group or others" in handoff.trusted(os.path.dirname(agent.path))


@ROOT_ONLY
def test_a_socket_owned_by_another_uid_is_not_used(tree, agent):
    os.chown(agent.path, 65534, 65534)
    event = Event("qemu", ["g1", "started", "begin", "-"], XML)
    assert handoff.ask(event, "shapehook", 20, time.monotonic() + 10, 10) is None
    assert agent.served == 0 and "owned by uid 65534" in handoff.trusted(agent.path)


@ROOT_ONLY
def test_the_agent_refuses_a_peer_that_is_not_root(tree, agent):
    os.chmod(os.path.dirname(agent.path), 0o755)   # let uid 65534 reach the socket at all
    os.chmod(agent.path, 0o666)
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:         # child: become nobody, connect, report what the agent said
        try:
            os.chdir(os.path.dirname(agent.path))    # pytest's base temp folder is root's 0700
            os.setgid(65534)
            os.setuid(65534)
            with socket.socket(socket.AF_UNIX) as peer:
                peer.settimeout(5)
                peer.connect(os.path.basename(agent.path))
                os.write(writer, b"said:" + peer.recv(16))
        finally:
            os._exit(0)
    os.close(writer)
    _pid, status = os.waitpid(pid, 0)
    said = os.read(reader, 64)
    os.close(reader)
    assert status == 0 and said == b"said:", said       # closed without a greeting
    assert any("refused a peer of uid 65534" in line for line in agent.log.lines)


def raw(agent, data):
    """Greeting, then ``data``; what the agent answers before it closes."""
    with socket.socket(socket.AF_UNIX) as peer:
        peer.settimeout(10)
        peer.connect(agent.path)
        assert peer.recv(len(handoff.HELLO)) == handoff.HELLO
        peer.sendall(data)
        out = b""
        while True:
            try:
                chunk = peer.recv(65536)
            except ConnectionResetError:     # closed with our bytes unread
                return out
            if not chunk:
                return out
            out += chunk


def test_oversized_or_malformed_requests_get_no_answer(tree, agent):
    assert raw(agent, b'{"v": 1, "xml": %d}\n' % (handoff.MAX_XML + 1)) == b""
    assert raw(agent, b"x" * (handoff.MAX_LINE + 2)) == b""
    assert raw(agent, b"not json\n") == b""
    assert agent.served == 0
    assert any("at most" in line for line in agent.log.lines)


class FakeAgent:
    """A socket that greets and then closes (a crash) or never answers (wedged mid-request)."""

    def __init__(self, answer):
        from nvhooks import locks
        locks.private_dir(os.path.dirname(handoff.socket_path()))
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(handoff.socket_path())
        os.chmod(handoff.socket_path(), 0o600)
        self.sock.listen(4)
        self.answer = answer
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        conn, _addr = self.sock.accept()
        conn.sendall(handoff.HELLO)
        if self.answer:
            time.sleep(30)
        conn.close()


def test_an_agent_that_dies_before_answering_means_local(tree):
    FakeAgent(answer=False)
    event = Event("qemu", ["g1", "started", "begin", "-"], XML)
    assert handoff.ask(event, "shapehook", 20, time.monotonic() + 10, 10) is None


def test_no_answer_by_the_deadline_fails_the_step(tree):
    FakeAgent(answer=True)
    event = Event("qemu", ["g1", "started", "begin", "-"], XML)
    answer = handoff.ask(event, "shapehook", 20, time.monotonic() + 0.5, 7)
    assert answer.wanted and "before the event deadline (7s)" in answer.error


def test_an_agent_that_never_greets_means_local(tree):
    from nvhooks import locks
    locks.private_dir(os.path.dirname(handoff.socket_path()))
    wedged = socket.socket(socket.AF_UNIX)
    wedged.bind(handoff.socket_path())
    os.chmod(handoff.socket_path(), 0o600)
    wedged.listen(4)          # the backlog accepts the connection; nobody ever greets it
    try:
        event = Event("qemu", ["g1", "started", "begin", "-"], XML)
        assert handoff.ask(event, "shapehook", 20, time.monotonic() + 10, 10) is None
    finally:
        wedged.close()


@pytest.mark.parametrize("value", [
    {"v": 1, "args": ["we\"ird \\ name", "start", "begin", "-"], "budget": 1799.5, "x": None, "ok": True},
    {"args": ["\udcff\udcfe odd bytes", "é", "\n"]},
])
def test_the_header_codec_is_json(value):
    import json
    text = handoff.dumps(value)
    assert json.loads(text) == value
    assert handoff.loads(text.encode("ascii")) == value


@pytest.mark.parametrize("data", [b"", b"{", b"[1] [2]", b"NaN", b"\xff"])
def test_the_answer_codec_refuses_what_is_not_one_json_value(data):
    with pytest.raises((ValueError, StopIteration)):
        handoff.loads(data)


def test_a_request_queued_past_its_deadline_fails_the_step_and_is_never_run(tree, agent):
    event = Event("qemu", ["g1", "started", "begin", "-"], XML)
    with agent.agent.apply_lock:          # the agent busy with a guest of its own
        answer = handoff.ask(event, "shapehook", 20, time.monotonic() + 0.3, 0.3)
        time.sleep(1.5)                   # the agent gives the request up 1 s after the hook did
    assert answer.wanted and "no answer from the netvirt-hooks agent" in answer.error
    time.sleep(0.2)
    assert agent.served == 0


def test_waiting_for_the_apply_lock_spends_the_hook_s_budget(tree, agent, monkeypatch):
    """The handler's lock waits end at the hook's deadline, not a full budget after the agent got free."""
    from nvhooks import locks
    from nvhooks.dispatch import handlers
    shape = next(h for h in handlers.REGISTRY if h.name == "shapehook")
    seen = []
    monkeypatch.setattr(shape, "wants", lambda event, raw, host: True)
    monkeypatch.setattr(shape, "handle", lambda event, domain, host, log: seen.append(locks._deadline[0]))
    lock = agent.agent.apply_lock
    lock.acquire()                        # the agent busy with a guest of its own for a while
    threading.Timer(0.5, lock.release).start()
    hook_deadline = time.monotonic() + 5.0
    answer = handoff.ask(Event("qemu", ["g1", "started", "begin", "-"], XML), "shapehook", 20, hook_deadline, 5.0)
    assert answer.error is None and len(seen) == 1
    assert seen[0] <= hook_deadline + 0.1     # before the fix: the 0.5 s wait was added on top
