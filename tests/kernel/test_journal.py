"""Journal fields (dispatch/journal.py) read back from a real systemd-journald with journalctl.

The test starts its own systemd-journald (no systemd is PID 1 here) in a
private mount namespace, inside a throwaway netns: tmpfs over /run/systemd and
/run/log, so the journald sockets and its volatile journal are the test's
alone. The real dispatcher then runs `qemu started begin` for a guest whose
"tap" is a veth the test made, shaped by a host policy rule, with one custom
script, once with Debian's python (python3-systemd: the binding's backend)
and once with the venv's (no binding: the native protocol). journalctl then
answers `-t netvirt-hooks GUEST=... PORT=...`. One entry also goes in the
native protocol's other way, a sealed memfd (for entries too big for a datagram).
"""
import json
import os
import shutil
import textwrap

import pytest

LIB = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                   "plugins", "module_utils")
DEBIAN_PY = "/usr/bin/python3"
VENV_PY = os.path.join(os.path.dirname(LIB), "..", "build", "venv", "bin", "python")
JOURNALD = "/lib/systemd/systemd-journald"

# Runs inside the namespaces: journald up, the dispatcher once per (python, guest), then journalctl.
INSIDE = textwrap.dedent("""
    import json, os, subprocess, sys, time
    for path in ("/run/systemd", "/run/log"):
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", path], check=True)
    os.makedirs("/run/systemd/journal")
    if not os.path.ismount("/sys/fs/cgroup"):   # ip netns exec mounts a fresh /sys; journald wants its cgroup
        subprocess.run(["mount", "-t", "cgroup2", "cgroup2", "/sys/fs/cgroup"], check=True)
    journald = subprocess.Popen([%(journald)r], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists("/run/systemd/journal/socket"):
            assert time.monotonic() < deadline, "journald made no socket"
            time.sleep(0.05)
        runs = json.loads(sys.argv[1])
        for run in runs:
            env = dict(os.environ, NETVIRT_HOOKS_ROOT=run["root"])
            proc = subprocess.run([run["python"], "-c", %(dispatch)r, %(lib)r, run["guest"]],
                                  input=run["xml"].encode(), env=env, capture_output=True)
            print(json.dumps({"guest": run["guest"], "rc": proc.returncode,
                              "out": proc.stdout.decode(), "err": proc.stderr.decode()}), flush=True)
        # the native protocol's other way in (an entry too big for one datagram): a sealed memfd
        memfd = ("import socket, sys; sys.path.insert(0, sys.argv[1]); from nvhooks.dispatch import journal; "
                 "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); "
                 "journal._send_memfd(s, journal.native_datagram(journal.items('big', 6, {'GUEST': 'nvtj-memfd'})))")
        subprocess.run([sys.executable, "-c", memfd, %(lib)r], check=True)
        runs = runs + [{"guest": "nvtj-memfd", "tap": "-"}]
        for run in runs:
            query = ["journalctl", "-D", "/run/log/journal", "--no-pager", "-o", "json",
                     "-t", "netvirt-hooks", "GUEST=" + run["guest"]]
            deadline = time.monotonic() + 30
            while True:
                out = subprocess.run(query, capture_output=True, text=True).stdout
                # the dispatcher's last record: the custom script's summary
                if "all_note" in out or "big" in out or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            port = subprocess.run(query + ["PORT=" + run["tap"]], capture_output=True, text=True).stdout
            print(json.dumps({"guest": run["guest"], "all": out, "port": port}), flush=True)
    finally:
        journald.kill()
        journald.wait()
""")

DISPATCH = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    from nvhooks.dispatch import dispatcher, journal
    rc = dispatcher.main("qemu", [sys.argv[2], "started", "begin", "-"])
    print("backend", journal.backend())
    sys.exit(rc)
""")


def domain(name, tap, mac, number):
    return (f"<domain type='qemu'><name>{name}</name><uuid>6f1e3c6a-8d1e-4b7a-9c8e-0a5b2d1f000{number}</uuid>"
            f"<memory>65536</memory><devices><interface type='ethernet'><mac address='{mac}'/>"
            f"<target dev='{tap}'/><model type='virtio'/></interface></devices></domain>")


def scratch_root(path):
    hooks = path / "etc/libvirt/hooks"
    (hooks / "netvirt").mkdir(parents=True)
    (hooks / "custom").mkdir()
    (hooks / "netvirt/dispatcher.conf").write_text("builtins: yes\nsyslog: yes\n")
    (hooks / "netvirt/policy.json").write_text(json.dumps(
        {"rules": [{"match": {"guest": "nvtj-*"}, "inbound": {"average": "10mbit"}}]}))
    (hooks / "custom/all_note").write_text("#!/bin/sh\nexit 0\n")
    (hooks / "custom/all_note").chmod(0o755)
    for folder in [path, *path.rglob("*")]:
        if folder.is_dir():
            folder.chmod(0o755)
    return str(path)


def records(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.skipif(not (os.path.exists(JOURNALD) and shutil.which("journalctl") and shutil.which("unshare")),
                    reason="needs systemd-journald, journalctl, unshare (apt systemd, util-linux)")
@pytest.mark.skipif(os.environ.get("NVT_REALKERNEL") == "1", reason="journald is no kernel feature: the host lane has it")
def test_journalctl_finds_dispatcher_and_handler_records_by_guest_and_port(netns, veth, nsrun, tmp_path):
    ns = netns()
    pythons = [("deb", DEBIAN_PY, "python3-systemd"), ("venv", os.path.normpath(VENV_PY), "native")]
    runs = []
    for tag, python, _backend in pythons:
        tap = veth(ns, peer_ns=ns).name
        mac = "52:54:00:aa:0%d:01" % len(runs)
        guest = f"nvtj-{tag}"
        runs.append({"guest": guest, "python": python, "tap": tap, "mac": mac, "xml": domain(guest, tap, mac, len(runs)),
                     "root": scratch_root(tmp_path / tag)})
    inside = INSIDE % {"journald": JOURNALD, "dispatch": DISPATCH, "lib": LIB}
    out = nsrun(ns, "unshare", "-m", "--propagation", "private", DEBIAN_PY, "-c", inside, json.dumps(runs)).stdout
    lines = records(out)
    assert [r["MESSAGE"] for r in records(lines[-1]["all"])] == ["big"]
    for run, (_tag, _python, backend), ran, got in zip(runs, pythons, lines[:2], lines[2:]):
        assert (ran["guest"], ran["rc"]) == (run["guest"], 0), ran
        assert f"backend {backend}" in ran["out"], ran
        port = records(got["port"])
        assert port, got["all"]
        shaped = port[0]
        assert shaped["GUEST"] == run["guest"] and shaped["PORT"] == run["tap"] and shaped["MAC"] == run["mac"]
        assert shaped["GUEST_UUID"] == "6f1e3c6a-8d1e-4b7a-9c8e-0a5b2d1f000%d" % runs.index(run)
        assert shaped["EVENT"] == "qemu/started/begin"
        assert (shaped["ACTION"], shaped["SCRIPT"]) == ("shape", "shapehook")
        assert shaped["SYSLOG_IDENTIFIER"] == "netvirt-hooks"
        assert int(shaped["CHANGED"]) > 0 and "shaped" in shaped["MESSAGE"]
        summaries = {r["SCRIPT"]: r for r in records(got["all"]) if "DURATION_MS" in r}
        assert set(summaries) == {"shapehook", "all_note"}, got["all"]
        assert int(summaries["all_note"]["DURATION_MS"]) >= 0 and "exit 0" in summaries["all_note"]["MESSAGE"]
        assert summaries["all_note"]["GUEST"] == run["guest"] and "PORT" not in summaries["all_note"]
