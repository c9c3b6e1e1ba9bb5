"""The hooks role installs the core as the collection's whole tree, and keeps it so.

After the role, /usr/lib/netvirt-hooks/nvhooks is exactly
plugins/module_utils/nvhooks (subfolders included; __pycache__ aside, the
host's interpreter makes those). A stale module, a stale subfolder, an empty
folder, the .pyc of a removed module and an edited or chmod-ed shipped file
are all put right by the next run; check mode predicts that without touching
anything; the run after is changed=0; verify.yml names the stale file.
Host paths are put back afterwards (restore_host).
"""
import os

from conftest import REPO

SRC = os.path.join(REPO, "plugins", "module_utils", "nvhooks")
DST = "/usr/lib/netvirt-hooks/nvhooks"
HOOKS = ["netvirt.libvirt_hooks.hooks"]


def tree(top):
    """{relative path: bytes} of files and {relative path} of folders, without __pycache__."""
    files, dirs = {}, set()
    for here, subdirs, names in os.walk(top):
        subdirs[:] = [d for d in subdirs if d != "__pycache__"]
        rel = os.path.relpath(here, top)
        if rel != ".":
            dirs.add(rel)
        for name in names:
            if not name.endswith((".pyc", ".pyo")):
                with open(os.path.join(here, name), "rb") as handle:
                    files[os.path.normpath(os.path.join(rel, name))] = handle.read()
    return files, dirs


def assert_exact_tree():
    want_files, want_dirs = tree(SRC)
    got_files, got_dirs = tree(DST)
    assert sorted(got_dirs) == sorted(want_dirs)
    assert sorted(got_files) == sorted(want_files)
    assert [rel for rel in want_files if got_files[rel] != want_files[rel]] == []
    assert any("/" in rel for rel in got_files)            # subpackages, not only top-level modules
    for rel in got_files:
        st = os.stat(os.path.join(DST, rel))
        assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o644, 0, 0), rel


def write(path, text="# stale\n"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)


def recap(out):
    line = [line for line in out.splitlines() if line.startswith("localhost ")][-1]
    return dict(part.split("=") for part in line.split(":", 1)[1].split())


def plant_drift():
    """Stale and edited things at depth; returns (paths that must go, paths that must stay)."""
    gone = [DST + "/policy/stale_mod.py", DST + "/policy/__pycache__/stale_mod.cpython-311.pyc",
            DST + "/oldpkg/__init__.py", DST + "/oldpkg/deep/mod.py", DST + "/oldpkg/__pycache__/mod.cpython-311.pyc",
            DST + "/__pycache__/removed.cpython-311.pyc"]
    for path in gone:
        write(path)
    os.makedirs(DST + "/empty/inner")
    gone += [DST + "/oldpkg", DST + "/empty"]
    kept = DST + "/policy/__pycache__/fragments.cpython-311.pyc"   # of a shipped module: the host's own cache
    write(kept)
    with open(DST + "/policy/model.py", "a") as handle:            # edited by hand
        handle.write("# edited\n")
    os.chmod(DST + "/shaping/plan.py", 0o600)
    os.unlink(DST + "/vlan/hook.py")                                # deleted by hand
    return gone, [kept]


def test_core_tree_installed_exactly_and_stale_files_removed(restore_host, run_roles):
    out = run_roles(HOOKS)
    assert "failed=0" in out
    assert_exact_tree()

    gone, kept = plant_drift()
    out = run_roles(HOOKS, check=True)                              # predicts, changes nothing
    assert recap(out)["changed"] != "0", out[-3000:]
    assert all(os.path.lexists(path) for path in gone + kept)
    assert "policy/stale_mod.py" in out and "oldpkg" in out

    out = run_roles(HOOKS)
    assert [path for path in gone if os.path.lexists(path)] == []
    assert all(os.path.exists(path) for path in kept)
    assert_exact_tree()

    out = run_roles(HOOKS)                                          # idempotent
    assert recap(out)["changed"] == "0", out[-3000:]
    out = run_roles(HOOKS, check=True)
    assert recap(out)["changed"] == "0", out[-3000:]


def test_verify_reports_a_stale_core_file_at_depth(restore_host, run_roles):
    run_roles(playbook="netvirt.libvirt_hooks.site", variables={"vlan_failure": "warn"})
    write(DST + "/shaping/stale_mod.py")
    with open(DST + "/policy/model.py", "a") as handle:
        handle.write("# edited\n")
    out = run_roles(playbook="netvirt.libvirt_hooks.verify", variables={"vlan_failure": "warn"}, expect_rc=2)
    assert "localhost: core file not shipped by the collection: shaping/stale_mod.py" in out, out[-3000:]
    assert "localhost: core file edited or stale: policy/model.py" in out, out[-3000:]
    assert os.path.exists(DST + "/shaping/stale_mod.py")            # verify changes nothing
