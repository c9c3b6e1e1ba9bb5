"""Issue #11.6: every hop of a symlink chain and every folder on each hop's path is
checked, and the file run is the file checked."""
import os

import pytest

from hooktree import XML, Tree, call

from nvhooks.dispatch import dispatcher as dispatch, scripts


@pytest.fixture
def tree(tmp_path, monkeypatch):
    monkeypatch.setenv("NETVIRT_HOOKS_ROOT", str(tmp_path))
    return Tree(tmp_path)


def _chain(tree, middle_folder_mode=0o755):
    """qemu_started_begin.d/x -> <root>/mid/link -> <root>/real/script (root's own)."""
    real = tree.script("../../../real/script", f'echo ran >> "{tree.path("/ran")}"')
    mid = tree.path("/mid")
    os.makedirs(mid)
    os.symlink(real, os.path.join(mid, "link"))
    os.makedirs(os.path.join(tree.hooks, "qemu_started_begin.d"))
    os.symlink(os.path.join(mid, "link"), os.path.join(tree.hooks, "qemu_started_begin.d", "x"))
    os.chmod(mid, middle_folder_mode)
    return mid, real


def _ran(tree):
    return os.path.exists(tree.path("/ran"))


def test_a_safe_chain_runs(tree):
    _chain(tree)
    (item,) = dispatch.query("qemu/started/begin")
    assert item["status"] == "runs" and item["target"].endswith("/real/script")
    assert call("qemu", ["g1", "started", "begin", "-"], XML)[0] == 0 and _ran(tree)


def test_a_middle_link_in_a_writable_folder_is_refused(tree):
    # Seen: only the first link's folder and the final target's folder were checked.
    mid, _real = _chain(tree, 0o777)
    (item,) = dispatch.query("qemu/started/begin")
    assert item["status"].startswith("refuse:") and f"folder {mid} is world-writable" in item["status"]
    rc, _out, err = call("qemu", ["g1", "started", "begin", "-"], XML)
    assert rc == 1 and "world-writable" in err and not _ran(tree)


def test_a_middle_link_folder_owned_by_another_user_is_refused(tree):
    if os.geteuid() != 0:
        pytest.skip("chown needs root; the writable-folder case above runs everywhere")
    mid, _real = _chain(tree)
    os.chown(mid, 4321, 4321)
    (item,) = dispatch.query("qemu/started/begin")
    assert f"folder {mid} is owned by uid 4321" in item["status"]


def test_a_middle_link_owned_by_another_user_is_refused(tree):
    if os.geteuid() != 0:
        pytest.skip("lchown needs root")
    mid, _real = _chain(tree)
    os.lchown(os.path.join(mid, "link"), 4321, 4321)
    (item,) = dispatch.query("qemu/started/begin")
    assert f"symlink {mid}/link is owned by uid 4321" in item["status"]


def test_a_symlinked_event_folder_is_followed_and_checked(tree):
    real_folder = tree.path("/elsewhere/started.d")
    os.makedirs(real_folder)
    tree.script("../../../elsewhere/started.d/s", f'echo ran >> "{tree.path("/ran")}"')
    os.symlink(real_folder, os.path.join(tree.hooks, "qemu_started_begin.d"))
    (item,) = dispatch.query("qemu/started/begin")
    assert item["status"] == "runs"
    os.chmod(tree.path("/elsewhere"), 0o777)
    (item,) = dispatch.query("qemu/started/begin")
    assert "world-writable" in item["status"]


def test_a_link_repointed_after_the_check_is_not_run(tree, monkeypatch):
    mid, _real = _chain(tree)
    other = tree.script("../../../real/other", f'echo other >> "{tree.path("/ran")}"')
    planned = scripts.plan

    def plan_then_swap(*args):
        steps = planned(*args)
        os.unlink(os.path.join(mid, "link"))          # between the check and the exec
        os.symlink(other, os.path.join(mid, "link"))
        return steps
    monkeypatch.setattr(scripts, "plan", plan_then_swap)
    rc, _out, err = call("qemu", ["g1", "started", "begin", "-"], XML)
    assert rc == 1 and "now leads to another file than the one checked" in err and not _ran(tree)


def test_a_link_loop_is_refused(tree):
    folder = os.path.join(tree.hooks, "qemu_started_begin.d")
    os.makedirs(folder)
    os.symlink("b", os.path.join(folder, "a"))
    os.symlink("a", os.path.join(folder, "b"))
    items = dispatch.query("qemu/started/begin")
    assert all("too many symlinks" in item["status"] for item in items)
