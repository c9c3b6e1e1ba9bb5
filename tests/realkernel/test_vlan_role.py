"""The vlan role through a real ansible-playbook (real-kernel lane).

In the lane VM /etc, /usr and /run are throwaway, so the hooks role can
really install the core and the entry programs there. The vlan role then
writes the policy and sets the bridge up at once (the code the daemon hook
runs): check mode predicts, the real run changes, a second check changes
nothing. A "running guest" (status XML in /run/libvirt/qemu) gets its VLANs.
"""
import importlib.util
import json
import os
import subprocess

import pytest

_spec = importlib.util.spec_from_file_location(
    "nvt_kernel_fixtures", os.path.join(os.path.dirname(__file__), "..", "kernel", "conftest.py"))
_fx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fx)
sh, uid = _fx.sh, _fx.uid

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
VENV_BIN = os.environ.get("NVT_VENV_BIN", os.path.join(REPO, "build", "venv", "bin"))
NS = "https://github.com/netvirt/libvirt_hooks/xmlns/policy/1"
STATUS = "/run/libvirt/qemu"


def vids(dev):
    data = json.loads(sh("bridge", "-j", "vlan", "show", "dev", dev).stdout or "[]")
    return {e["vlan"]: sorted(e.get("flags", [])) for e in (data[0]["vlans"] if data else [])}


pytestmark = pytest.mark.slow_vm


@pytest.fixture
def site(tmp_path, netns, veth, bridge):
    if not os.path.exists(os.path.join(VENV_BIN, "ansible-playbook")):
        pytest.fail(f"no ansible-core in {VENV_BIN}: run 'make setup'", pytrace=False)
    br = bridge(name="nvtbr" + uid(4))
    up = veth(None, netns(), name="nvtup" + uid(4), peer="eth0")
    port = veth(None, netns(), name="nvtg" + uid(4), peer="eth0")
    for dev in (up.name, port.name):
        sh("ip", "link", "set", dev, "master", br)
    os.makedirs(STATUS, exist_ok=True)
    guest = os.path.join(STATUS, "nvt-role.xml")
    with open(guest, "w", encoding="utf-8") as handle:
        handle.write(f"<domstatus state='running' pid='1'><domain type='qemu' id='1'><name>nvt-role</name>"
                     f"<uuid>44444444-4444-4444-8444-444444444444</uuid><metadata><nv:policy xmlns:nv='{NS}'>"
                     f"<nv:interface index='0'><nv:vlan pvid='100'/></nv:interface></nv:policy></metadata>"
                     f"<devices><interface type='bridge'><mac address='52:54:00:00:00:44'/><source bridge='{br}'/>"
                     f"<target dev='{port.name}'/></interface></devices></domain></domstatus>")
    coll = tmp_path / "coll" / "ansible_collections" / "netvirt"
    coll.mkdir(parents=True)
    (coll / "libvirt_hooks").symlink_to(REPO)
    yield {"bridge": br, "uplink": up.name, "port": port.name, "tmp": tmp_path}
    os.unlink(guest)


def play(site, vlan_vars, *extra, ok=True):
    doc = [{"hosts": "localhost", "gather_facts": False,
            "vars": dict(hooks_install_packages=False, hooks_reload_daemon=False, **vlan_vars),
            "roles": ["netvirt.libvirt_hooks.hooks", "netvirt.libvirt_hooks.vlan"]}]
    path = site["tmp"] / "play.yml"
    path.write_text(json.dumps(doc))
    tmp = site["tmp"]
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(tmp / "coll"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_HOME=str(tmp / "ah"), ANSIBLE_LOCAL_TEMP=str(tmp / "at"), ANSIBLE_REMOTE_TEMP=str(tmp / "at"),
               ANSIBLE_LOCALHOST_WARNING="0")
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-playbook"), "-i", "localhost,", "-c", "local",
                           "-e", "ansible_python_interpreter=/usr/bin/python3", str(path), *extra],
                          capture_output=True, text=True, env=env, timeout=1200, check=False)
    assert (proc.returncode == 0) is ok, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.timeout(1500)   # three playbook runs under emulation
def test_role_sets_bridge_now_check_real_check(site):
    vlan_vars = {"vlan_bridges": {site["bridge"]: {"uplinks": [site["uplink"]], "uplink_vids": "200-201"}}}
    predicted = play(site, vlan_vars, "--check", "--diff")
    assert "Set up the bridges" in predicted
    assert vids(site["uplink"]) == {1: ["Egress Untagged", "PVID"]}          # check mode changed nothing
    play(site, vlan_vars)
    assert "vlan_filtering 1" in sh("ip", "-d", "link", "show", site["bridge"]).stdout
    assert vids(site["uplink"]) == {1: ["Egress Untagged", "PVID"], 200: [], 201: []}
    assert vids(site["port"]) == {100: ["Egress Untagged", "PVID"]}        # the running guest's policy
    with open("/etc/libvirt/hooks/netvirt/policy.json", encoding="utf-8") as handle:
        assert json.load(handle)["bridges"][site["bridge"]]["uplink_vids"] == "200-201"
    again = play(site, vlan_vars, "--check")
    assert "changed=0" in again, again


@pytest.mark.timeout(900)
def test_role_rejects_bad_variable_naming_it(site):
    out = play(site, {"vlan_rules": [{"match": {"guest": "x"}, "vlan": {"pvid": 5000}}]}, ok=False)
    assert "vlan_rules[0].vlan.pvid: VLAN id 5000 is outside 1-4094" in out
