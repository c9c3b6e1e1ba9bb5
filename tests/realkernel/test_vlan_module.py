"""The bridge_vlan module itself, run as Ansible runs it (real-kernel lane).

Each call executes the module file with ANSIBLE_MODULE_ARGS, the way
Ansible's module runner does, with the venv's ansible-core (pyroute2 0.9);
one test runs a real ansible-playbook. The collection is made importable
by a symlink ansible_collections/netvirt/libvirt_hooks -> the checkout.
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
nsrun = _fx.nsrun

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
VENV_BIN = os.environ.get("NVT_VENV_BIN", os.path.join(REPO, "build", "venv", "bin"))


@pytest.fixture(scope="module")
def collections(tmp_path_factory):
    if not os.path.exists(os.path.join(VENV_BIN, "ansible-playbook")):
        pytest.fail(f"no ansible-core in {VENV_BIN}: run 'make setup'", pytrace=False)
    root = tmp_path_factory.mktemp("coll")
    (root / "ansible_collections" / "netvirt").mkdir(parents=True)
    os.symlink(REPO, root / "ansible_collections" / "netvirt" / "libvirt_hooks")
    return root


@pytest.fixture
def lan(veth, bridge, kprobe):
    """Devices in the lane VM's root namespace: a module run there skips the
    netns set-up, which costs a minute per process under emulation (the
    netns path of the core is covered by test_vlan_core)."""
    if not kprobe.bridge_vlan_filtering():
        pytest.fail("this kernel lacks bridge VLAN filtering: run under virtme-ng", pytrace=False)
    br = bridge(name="nvtb0", vlan_filtering="1")
    veth(None, None, name="nvtp0", peer="nvtq0")
    nsrun(None, "ip", "link", "set", "nvtp0", "master", br)
    bridge(name="nvtb1")
    return None


def run_module(collections, tmp_path, check=False, diff=True, **args):
    path = tmp_path / "args.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": dict(args, _ansible_check_mode=check, _ansible_diff=diff)}))
    proc = subprocess.run(
        [os.path.join(VENV_BIN, "python"), "-m",
         "ansible_collections.netvirt.libvirt_hooks.plugins.modules.bridge_vlan", str(path)],
        capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(collections)), timeout=300, check=False)
    try:
        return json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(f"module output is not JSON (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}") from None


def table(ns, dev):
    """{(first, last): flags} runs, as iproute2 sees the port (it lists ids one by one)."""
    data = json.loads(nsrun(ns, "bridge", "-j", "vlan", "show", "dev", dev).stdout or "[]")
    single = {}
    for entry in (data[0]["vlans"] if data else []):
        for vid in range(entry["vlan"], entry.get("vlanEnd", entry["vlan"]) + 1):
            single[vid] = tuple(sorted(entry.get("flags", [])))
    runs, start = {}, None
    for vid in sorted(single):
        if start is not None and vid == prev + 1 and single[vid] == single[start]:
            prev = vid
            continue
        if start is not None:
            runs[(start, prev)] = list(single[start])
        start = prev = vid
    if start is not None:
        runs[(start, prev)] = list(single[start])
    return runs


@pytest.mark.timeout(900)    # each module run imports ansible: slow under emulation
def test_present_check_real_check_and_query(collections, tmp_path, lan):
    ns = lan
    args = dict(port="nvtp0", bridge="nvtb0", netns=ns, pvid=100, vids=[300, "200-210"], exclusive=True)
    predicted = run_module(collections, tmp_path, check=True, **args)
    assert predicted["changed"] and table(ns, "nvtp0") == {(1, 1): ["Egress Untagged", "PVID"]}
    real = run_module(collections, tmp_path, **args)
    assert real["changed"] and real["after"] == predicted["after"] and real["actions"] == predicted["actions"]
    assert real["diff"]["before"] == "pvid: 1\nuntagged: 1\ntagged: none\n"
    assert real["diff"]["after"] == "pvid: 100\nuntagged: 100\ntagged: 200-210,300\n"
    assert table(ns, "nvtp0") == {(100, 100): ["Egress Untagged", "PVID"], (200, 210): [], (300, 300): []}
    again = run_module(collections, tmp_path, check=True, **args)
    assert not again["changed"] and "diff" not in again
    query = run_module(collections, tmp_path, port="nvtp0", netns=ns, state="query")
    assert query["lines"] == ["100 pvid untagged", "200-210", "300"] and not query["changed"]


@pytest.mark.slow_vm
@pytest.mark.timeout(900)
def test_absent_and_non_exclusive(collections, tmp_path, lan):
    ns = lan
    run_module(collections, tmp_path, port="nvtp0", netns=ns, vids=["200-205"])
    assert table(ns, "nvtp0") == {(1, 1): ["Egress Untagged", "PVID"], (200, 205): []}
    gone = run_module(collections, tmp_path, port="nvtp0", netns=ns, vids=["202-203"], state="absent")
    assert gone["actions"] == ["del dev nvtp0 vid 202-203"]
    assert table(ns, "nvtp0") == {(1, 1): ["Egress Untagged", "PVID"], (200, 201): [], (204, 205): []}
    everything = run_module(collections, tmp_path, port="nvtp0", netns=ns, state="absent")
    assert everything["changed"] and table(ns, "nvtp0") == {}


@pytest.mark.slow_vm
@pytest.mark.timeout(900)
def test_bridge_level(collections, tmp_path, lan):
    ns = lan
    result = run_module(collections, tmp_path, bridge="nvtb0", netns=ns, default_pvid=0, vlan_filtering=True)
    assert result["changed"] and result["after"] == {"vlan_filtering": True, "default_pvid": 0}
    assert "default_pvid: 0" in result["diff"]["after"]
    own = run_module(collections, tmp_path, bridge="nvtb0", netns=ns, vids=[50])
    assert own["actions"] == ["add dev nvtb0 self vid 50"]
    query = run_module(collections, tmp_path, bridge="nvtb0", netns=ns, state="query")
    assert query["default_pvid"] == 0 and query["table"]["tagged"] == "50" and "nvtp0" in query["ports"]


@pytest.mark.slow_vm
@pytest.mark.parametrize("args, message", [
    # argument validation is also covered on the build host by the integration target
    (dict(port="nvtnone", pvid=5), "port nvtnone: no such interface"),
    (dict(port="nvtp0", bridge="nvtb1", pvid=5), "port nvtp0: is a port of bridge nvtb0, not of bridge nvtb1"),
])
def test_errors_change_nothing(collections, tmp_path, lan, args, message):
    before = table(lan, "nvtp0")
    result = run_module(collections, tmp_path, netns=lan, **args)
    assert result.get("failed") and message in result["msg"]
    assert table(lan, "nvtp0") == before


@pytest.mark.timeout(1200)   # three playbook runs under emulation
def test_playbook(collections, tmp_path, lan):
    """A real ansible-playbook run: check, apply, check again (idempotent)."""
    play = tmp_path / "play.yml"
    play.write_text("""
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Access port on VLAN 100
      netvirt.libvirt_hooks.bridge_vlan:
        port: nvtp0
        bridge: nvtb0
        pvid: 100
        exclusive: true
""")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0", ANSIBLE_PYTHON_INTERPRETER=os.path.join(VENV_BIN, "python"),
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default", ANSIBLE_NOCOLOR="1",
               # the lane VM's /root is read-only
               ANSIBLE_HOME=str(tmp_path / "ansible"), ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
               ANSIBLE_REMOTE_TEMP=str(tmp_path / "tmp"))

    def play_run(*extra):
        proc = subprocess.run([os.path.join(VENV_BIN, "ansible-playbook"), "-i", "localhost,", "-c", "local",
                               str(play), *extra], capture_output=True, text=True, env=env, timeout=600, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    assert "changed=1" in play_run("--check", "--diff")
    assert table(lan, "nvtp0") == {(1, 1): ["Egress Untagged", "PVID"]}
    assert "changed=1" in play_run()
    assert table(lan, "nvtp0") == {(100, 100): ["Egress Untagged", "PVID"]}
    assert "changed=0" in play_run("--check")
