"""A module through whichever ansible-core the lane runs (the libvirt11 lane:
the newest, 2.21 on Python 3.13; the host lane: the venv's 2.19).

tc_shape on a veth in a throwaway netns: check mode predicts, apply changes,
a second apply changes nothing, absent removes. The roles themselves run
through the same ansible-playbook in the guest tests (run_roles).
"""
import json
import os
import subprocess

from conftest import REPO, VENV_BIN, sh, uid

PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Shape (check mode)
      netvirt.libvirt_hooks.tc_shape: &shape
        device: "{{ dev }}"
        netns: "{{ ns }}"
        inbound: {average: 10mbit, peak: 20mbit, burst: 64k}
        outbound: {average: 1250}
      check_mode: true
      register: check
    - name: Shape
      netvirt.libvirt_hooks.tc_shape: *shape
      register: first
    - name: Shape again
      netvirt.libvirt_hooks.tc_shape: *shape
      register: again
    - name: Remove
      netvirt.libvirt_hooks.tc_shape: {device: "{{ dev }}", netns: "{{ ns }}", state: absent}
      register: gone
    - name: Results
      ansible.builtin.copy:
        content: "{{ {'check': check is changed, 'first': first is changed, 'again': again is changed,
                      'gone': gone is changed} | to_json }}"
        dest: "{{ out }}"
        mode: "0644"
"""


def test_tc_shape_module_with_this_lanes_ansible_core(tmp_path):
    version = subprocess.run([os.path.join(VENV_BIN, "ansible-playbook"), "--version"], capture_output=True,
                             text=True, check=True).stdout.splitlines()[0]
    want = os.environ.get("NVT_EXPECT_ANSIBLE")   # set by tests/lanes/libvirt11.sh
    if want:
        assert f"[core {want}." in version, version
    ns, dev = "nvtns" + uid(), "nvtv" + uid()
    coll = tmp_path / "collections" / "ansible_collections" / "netvirt"
    coll.mkdir(parents=True)
    (coll / "libvirt_hooks").symlink_to(REPO)
    (tmp_path / "play.yml").write_text(PLAY)
    out = tmp_path / "out.json"
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "-n", ns, "link", "add", dev, "type", "veth", "peer", "name", dev + "p")
        sh("ip", "-n", ns, "link", "set", dev, "up")
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(tmp_path / "collections"), ANSIBLE_NOCOLOR="1",
                   ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"))
        proc = subprocess.run([os.path.join(VENV_BIN, "ansible-playbook"), "-i", "localhost,", "-c", "local",
                               "-e", "ansible_python_interpreter=/usr/bin/python3",
                               "-e", json.dumps({"dev": dev, "ns": ns, "out": str(out)}), str(tmp_path / "play.yml")],
                              capture_output=True, text=True, env=env, timeout=600, check=False)
        assert proc.returncode == 0, version + "\n" + proc.stdout[-4000:] + proc.stderr[-2000:]
        assert json.loads(out.read_text()) == {"check": True, "first": True, "again": False, "gone": True}
    finally:
        sh("ip", "netns", "del", ns, check=False)
