"""tests/realkernel run only inside the real-kernel lane (virtme-ng, Debian's kernel).

They reuse the tests/kernel fixtures (netns, veth, bridge, nsrun, kprobe) and add
`ovs` (a throwaway Open vSwitch). Outside that lane they fail, never skip.
"""
import importlib.util
import os
import pathlib
import subprocess
import time

import pytest

_spec = importlib.util.spec_from_file_location(
    "nvt_kernel_fixtures", pathlib.Path(__file__).resolve().parent.parent / "kernel" / "conftest.py")
_k = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_k)
netns, veth, bridge, nsrun_fixture, kprobe, _need_root = (
    _k.netns, _k.veth, _k.bridge, _k.nsrun_fixture, _k.kprobe, _k._need_root)
sh, nsrun, uid = _k.sh, _k.nsrun, _k.uid


@pytest.fixture(autouse=True)
def _need_real_kernel():
    if os.environ.get("NVT_REALKERNEL") != "1":
        pytest.fail("tests/realkernel run only in the real-kernel lane: `make test-realkernel`",
                    pytrace=False)


@pytest.fixture(scope="session")
def ovs():
    """Session: ovsdb-server + ovs-vswitchd in /tmp/ovs; returns `vsctl(*args)` -> stdout."""
    d = "/tmp/ovs"
    db = f"unix:{d}/db.sock"
    os.makedirs(d, exist_ok=True)
    # ctl sockets, logs and db under /tmp/ovs (the VM has no /var/run/openvswitch)
    for var in ("OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR"):
        os.environ[var] = d
    sh("modprobe", "openvswitch")
    if not os.path.exists(f"{d}/conf.db"):
        sh("ovsdb-tool", "create", f"{d}/conf.db", "/usr/share/openvswitch/vswitch.ovsschema")
    sh("ovsdb-server", f"{d}/conf.db", f"--remote=punix:{d}/db.sock",
       f"--pidfile={d}/ovsdb-server.pid", "--detach", f"--log-file={d}/ovsdb-server.log")
    sh("ovs-vsctl", f"--db={db}", "--no-wait", "init")
    sh("ovs-vswitchd", db, f"--pidfile={d}/ovs-vswitchd.pid", "--detach",
       f"--log-file={d}/ovs-vswitchd.log")

    def vsctl(*args):
        return sh("ovs-vsctl", f"--db={db}", "--timeout=30", *args).stdout

    deadline = time.monotonic() + 60
    while subprocess.run(["ovs-vsctl", f"--db={db}", "--timeout=5", "show"],
                         capture_output=True, check=False).returncode:
        assert time.monotonic() < deadline, "ovs did not come up"
        time.sleep(0.5)
    yield vsctl
    for name in ("ovs-vswitchd", "ovsdb-server"):
        try:
            with open(f"{d}/{name}.pid") as f:
                os.kill(int(f.read()), 15)
        except (OSError, ValueError):
            pass
