"""Which steps an event runs, in which order, and which are refused (scripts.py)."""
import os

import pytest

from hooktree import Tree

from nvhooks.dispatch import dispatcher as dispatch


@pytest.fixture
def tree(tmp_path, monkeypatch):
    monkeypatch.setenv("NETVIRT_HOOKS_ROOT", str(tmp_path))
    return Tree(tmp_path)


def names(order):
    return [(item["kind"], item["name"]) for item in order]


def test_total_order_across_original_builtins_and_both_layouts(tree):
    tree.dispatcher_conf("builtins: yes\nsyslog: no\n")
    tree.script("netvirt/original/qemu", "true")
    tree.script("qemu_migrate_begin.d/20-z", "true")
    tree.script("qemu_migrate_begin.d/10-y", "true")
    tree.script("custom/all_cde.sh", "true")
    tree.script("custom/migrate_abc.py", "pass", shell="/usr/bin/python3")
    tree.script("custom/started_nope", "true")       # another operation: not listed
    tree.script("qemu.d/libvirt-own", "true")        # libvirt runs it: shown last, ours never
    tree.script("qemu_started_begin.d/30-s", "true")
    order = dispatch.query("qemu/migrate/begin")
    # built-in handlers act only where taps exist or go away (started, reconnect, stopped, release)
    assert names(order) == [
        ("original", "original-qemu"),
        ("script", "10-y"), ("script", "20-z"),
        ("script", "migrate_abc.py"), ("script", "all_cde.sh"),
        ("libvirt", "libvirt-own")]
    assert [item["position"] for item in order] == list(range(1, 7))
    assert order[1]["timeout"] == 600.0 and order[1]["fail"] == "abort"
    assert order[-1]["status"] == "run by libvirt, not by the dispatcher"
    assert names(dispatch.query("qemu/started/begin")) == [
        ("original", "original-qemu"), ("builtin", "vlanhook"), ("builtin", "shapehook"),
        ("script", "30-s"), ("script", "all_cde.sh"), ("script", "started_nope"),
        ("libvirt", "libvirt-own")]


def test_daemon_events_use_daemon_op_folders_and_builtins(tree):
    tree.dispatcher_conf("builtins: yes\nsyslog: no\n")
    tree.script("daemon_start.d/a", "true")
    tree.script("custom/all_x", "true")  # custom folder is for qemu only
    order = dispatch.query("daemon/start")
    assert [(i["kind"], i.get("function", i["name"])) for i in order] == [
        ("builtin", "vlanhook.bridge_init"), ("builtin", "shapehook.reconcile_all"), ("builtin", "loggc.collect"),
        ("script", "a")]
    # reload re-reads the hooks; only start collects the logs of guests gone (dispatch.loggc)
    assert [i.get("function") for i in dispatch.query("daemon/reload") if i["kind"] == "builtin"] == [
        "vlanhook.bridge_init", "shapehook.reconcile_all"]


def test_symlinked_script_shares_one_conf_and_runs_once_per_event(tree):
    real = tree.script("netvirt/scripts/shared.sh", "true", conf="timeout: 7\nfail: ignore\n")
    os.makedirs(os.path.join(tree.hooks, "qemu_started_begin.d"))
    os.symlink(real, os.path.join(tree.hooks, "qemu_started_begin.d", "50-shared"))
    os.makedirs(os.path.join(tree.hooks, "custom"), exist_ok=True)
    os.symlink(real, os.path.join(tree.hooks, "custom", "all_shared"))
    order = dispatch.query("qemu/started/begin")
    assert [(i["name"], i["status"].split(":")[0]) for i in order] == [
        ("shared.sh", "runs"), ("shared.sh", "skip")]
    assert order[0]["timeout"] == 7.0 and order[0]["fail"] == "ignore"
    assert "already runs as" in order[1]["status"]


@pytest.mark.parametrize("where, mode, problem", [
    ("script", 0o757, "world-writable"),
    ("script", 0o775, "group-writable"),
    ("folder", 0o777, "world-writable"),
])
def test_writable_scripts_and_folders_are_refused(tree, where, mode, problem):
    path = tree.script("qemu_prepare_begin.d/s", "true")
    os.chmod(path if where == "script" else os.path.dirname(path), mode)
    (item,) = dispatch.query("qemu/prepare/begin")
    assert item["status"].startswith("refuse:") and problem in item["status"]


def test_script_owned_by_another_user_is_refused(tree, monkeypatch):
    path = tree.script("qemu_prepare_begin.d/s", "true")
    if os.geteuid() == 0:
        os.chown(path, 4321, 0)
        owner = 4321
    else:   # without root: the dispatcher runs as someone else, who trusts only root and itself
        owner = os.geteuid()
        monkeypatch.setattr(os, "geteuid", lambda: 4321)
    (item,) = dispatch.query("qemu/prepare/begin")
    assert f"owned by uid {owner}" in item["status"]


def test_not_executable_is_skipped_and_backups_ignored(tree):
    tree.script("qemu_prepare_begin.d/s", "true", mode=0o644)
    tree.script("qemu_prepare_begin.d/s.dpkg-old", "true")
    tree.script("qemu_prepare_begin.d/.hidden", "true")
    (item,) = dispatch.query("qemu/prepare/begin")
    assert item["status"].startswith("skip:") and "not executable" in item["status"]


def test_script_living_in_libvirts_own_folder_is_not_run_again(tree):
    real = tree.script("qemu.d/own", "true")
    os.makedirs(os.path.join(tree.hooks, "qemu_prepare_begin.d"))
    os.symlink(real, os.path.join(tree.hooks, "qemu_prepare_begin.d", "own"))
    order = dispatch.query("qemu/prepare/begin")
    assert order[0]["status"].startswith("skip: libvirt itself runs")
    assert order[1]["kind"] == "libvirt"


def test_bad_script_conf_refuses_the_script_naming_the_key(tree):
    tree.script("qemu_prepare_begin.d/s", "true", conf="fail: maybe\n")
    (item,) = dispatch.query("qemu/prepare/begin")
    assert "s.conf: fail" in item["status"] and "abort|ignore" in item["status"]


def test_query_rejects_unknown_events():
    with pytest.raises(ValueError, match="unknown operation 'boot'"):
        dispatch.query("qemu/boot/begin")
    with pytest.raises(ValueError, match="unknown driver 'xen'"):
        dispatch.query("xen/start/begin")
