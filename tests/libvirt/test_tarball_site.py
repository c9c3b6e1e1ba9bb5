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
import shutil
import subprocess
import tarfile

import pytest

from conftest import bridge_iface, sh

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.join(os.environ.get("NVT_BUILD", os.path.join(REPO, "build")), "venv", "bin")
SAVED = ("/etc/libvirt/hooks", "/usr/lib/netvirt-hooks", "/usr/local/sbin/netvirt-hooks")
NS = "https://github.com/netvirt/libvirt_hooks/xmlns/policy/1"


@pytest.fixture
def restore_host(tmp_path, libvirtd):
    archive = tmp_path / "before.tar"
    with tarfile.open(archive, "w") as tar:
        for path in SAVED:
            if os.path.lexists(path):
                tar.add(path)
    yield
    for path in SAVED:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.unlink(path)
    with tarfile.open(archive) as tar:
        tar.extractall("/")  # noqa: S202  our own archive of root-owned paths
    libvirtd.restart()


def run(argv, env=None, cwd=None):
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, env=env, cwd=cwd, check=False)
    return proc


def test_installed_tarball_runs_site(tmp_path, restore_host, guest, host_bridge):
    dist, installed = tmp_path / "dist", tmp_path / "installed"
    proc = run([os.path.join(VENV_BIN, "ansible-galaxy"), "collection", "build", "--output-path", str(dist), REPO])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (tarball,) = dist.glob("netvirt-libvirt_hooks-*.tar.gz")
    proc = run([os.path.join(VENV_BIN, "ansible-galaxy"), "collection", "install", "-p", str(installed),
                str(tarball)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    coll = installed / "ansible_collections" / "netvirt" / "libvirt_hooks"
    assert (coll / "MANIFEST.json").is_file() and not (coll / "build").exists()

    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(installed), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"))
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps({"hooks_install_packages": False, "vlan_failure": "warn"}))
    # run from an unrelated directory: nothing may come from the source tree
    proc = run([os.path.join(VENV_BIN, "ansible-playbook"), "-i", str(coll / "examples" / "inventory"),
                "netvirt.libvirt_hooks.site", "-e", "@" + str(extra)], env=env, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "PLAY RECAP" in proc.stdout and "failed=0" in proc.stdout

    # the hypervisor got the installed collection's core, byte for byte
    src, dst = coll / "plugins" / "module_utils" / "nvhooks", "/usr/lib/netvirt-hooks/nvhooks"
    names = sorted(p.name for p in src.glob("*.py"))
    match, mismatch, errors = filecmp.cmpfiles(str(src), dst, names, shallow=False)
    assert (mismatch, errors) == ([], []) and match == names
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
    proc = run([os.path.join(VENV_BIN, "ansible-playbook"), "-i", str(coll / "examples" / "inventory"),
                "netvirt.libvirt_hooks.verify", "-e", "@" + str(extra)], env=env, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "localhost: no drift" in proc.stdout or '"no drift"' in proc.stdout
