"""The built collection works, not only the source tree (libvirt lane).

`ansible-galaxy collection build` -> `ansible-galaxy collection install` into
a temp path -> playbooks/site.yml and verify.yml run FROM THE INSTALLED
collection against localhost with its own example inventory. Proves the
tarball carries the roles, the playbooks, the example inventory and the core
the hooks role installs on the hypervisor (byte for byte), and that a real
guest gets shaped by that installed core. Host paths are put back afterwards.
"""
import filecmp
import json
import os
import subprocess

from conftest import REPO, VENV_BIN, bridge_iface, sh

NS = "https://github.com/netvirt/libvirt_hooks/xmlns/policy/1"


def run(argv):
    return subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)


def test_installed_tarball_runs_site(tmp_path, restore_host, run_roles, guest, host_bridge):
    dist, installed = tmp_path / "dist", tmp_path / "installed"
    proc = run([os.path.join(VENV_BIN, "ansible-galaxy"), "collection", "build", "--output-path", str(dist), REPO])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (tarball,) = dist.glob("netvirt-libvirt_hooks-*.tar.gz")
    proc = run([os.path.join(VENV_BIN, "ansible-galaxy"), "collection", "install", "-p", str(installed),
                str(tarball)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    coll = installed / "ansible_collections" / "netvirt" / "libvirt_hooks"
    assert (coll / "MANIFEST.json").is_file() and not (coll / "build").exists()

    # the installed collection and its example inventory, run from an unrelated directory:
    # nothing may come from the source tree
    installed_play = dict(variables={"vlan_failure": "warn"}, inventory=coll / "examples" / "inventory",
                          collections_path=installed, cwd=tmp_path)
    out = run_roles(playbook="netvirt.libvirt_hooks.site", **installed_play)
    assert "PLAY RECAP" in out and "failed=0" in out

    # the hypervisor got the installed collection's core, byte for byte, subpackages included,
    # and nothing else (the host's own __pycache__ aside)
    src, dst = coll / "plugins" / "module_utils" / "nvhooks", "/usr/lib/netvirt-hooks/nvhooks"
    names = sorted(str(p.relative_to(src)) for p in src.rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")
    assert any("/" in name for name in names)
    match, mismatch, errors = filecmp.cmpfiles(str(src), dst, names, shallow=False)
    assert (mismatch, errors) == ([], []) and match == names
    installed = sorted(os.path.relpath(os.path.join(here, name), dst) for here, _dirs, files in os.walk(dst)
                       for name in files if "__pycache__" not in here.split(os.sep))
    assert installed == names
    proc = run(["/usr/local/sbin/netvirt-hooks", "--help"])
    assert proc.returncode == 0 and "exit codes:" in proc.stdout

    # and that core shapes a real guest (policy in its <metadata>)
    br = host_bridge()
    meta = (f'<nv:policy xmlns:nv="{NS}"><nv:interface index="0">'
            '<nv:inbound average="7mbit"/></nv:interface></nv:policy>')
    g = guest(interfaces=[bridge_iface(br)], metadata=meta)
    (tap,) = g.taps()
    assert "rate 7Mbit ceil 7Mbit" in sh("tc", "class", "show", "dev", tap).stdout
    proc = run(["/usr/local/sbin/netvirt-hooks", "--json", "status", g.name])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["ports"][0]["shaping"]["state"] == "in sync"

    # verify.yml from the installed collection: nothing drifted
    out = run_roles(playbook="netvirt.libvirt_hooks.verify", **installed_play)
    assert "localhost: no drift" in out or '"no drift"' in out
