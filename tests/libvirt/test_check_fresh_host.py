"""site.yml --check on a hypervisor the hooks role never ran on predicts instead of failing.

The shaping and vlan roles validate with the core the hooks role installs;
in check mode nothing is installed yet, so they use a scratch copy of this
collection's core (removed afterwards). What the test checks: the run
succeeds and reports changes, writes nothing, leaves no scratch copy, and a
bad variable still fails naming the variable.
"""
import glob
import os
import shutil

from conftest import SAVED

VARS = {"shaping_rules": [{"match": {"guest": "web*"}, "inbound": {"average": "10mbit"}}],
        "vlan_rules": [{"match": {"guest": "web*"}, "vlan": {"pvid": 100}}]}


def fresh_host():
    for path in SAVED:                      # restore_host puts them back afterwards
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.unlink(path)


def test_check_mode_on_a_fresh_host_predicts_and_writes_nothing(restore_host, run_roles):
    fresh_host()
    scratch_before = set(glob.glob("/tmp/netvirt-core.*"))
    out = run_roles(playbook="netvirt.libvirt_hooks.site", variables=VARS, check=True)
    assert "Copy this collection's core to a scratch folder" in out
    recap = [line for line in out.splitlines() if line.startswith("localhost ")]
    assert recap and "failed=0" in recap[0] and "changed=0" not in recap[0], out[-3000:]
    assert not [path for path in SAVED if os.path.lexists(path)]             # nothing written
    assert set(glob.glob("/tmp/netvirt-core.*")) == scratch_before            # scratch copy removed

    bad = dict(VARS, shaping_rules=[{"match": {"guest": "web*"}, "inbound": {"average": "fast"}}])
    out = run_roles(playbook="netvirt.libvirt_hooks.site", variables=bad, check=True, expect_rc=2)
    assert "shaping_rules[0].inbound.average" in out, out[-3000:]
    assert set(glob.glob("/tmp/netvirt-core.*")) == scratch_before
