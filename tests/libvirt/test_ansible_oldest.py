"""site.yml with the oldest ansible-core meta/runtime.yml claims (2.16, on Debian's Python 3.11).

ansible-core < 2.19 turns a template result that looks like a dict back into
one: the roles' JSON fragment reached the validator as a Python repr
("policycheck: <stdin>: not valid JSON"). Here: check mode on a fresh host
predicts, a real run installs, and the venv's newer ansible-core (2.19) then
finds nothing to change: both write the same bytes.
"""
import os

from conftest import SAVED, VENV_BIN
from test_check_fresh_host import VARS, fresh_host

OLDEST_BIN = os.path.join(os.path.dirname(os.path.dirname(VENV_BIN)), "venv-ansible-oldest", "bin")


def recap(out):
    lines = [line for line in out.splitlines() if line.startswith("localhost ")]
    assert lines and "failed=0" in lines[-1], out[-3000:]
    return lines[-1]


def test_site_with_the_oldest_ansible_core(restore_host, run_roles):
    assert os.path.exists(os.path.join(OLDEST_BIN, "ansible-playbook")), "no %s: run 'make setup'" % OLDEST_BIN
    fresh_host()
    out = run_roles(playbook="netvirt.libvirt_hooks.site", variables=VARS, check=True, venv_bin=OLDEST_BIN)
    assert "changed=0" not in recap(out)
    assert not [path for path in SAVED if os.path.lexists(path)]
    out = run_roles(playbook="netvirt.libvirt_hooks.site", variables=VARS, venv_bin=OLDEST_BIN)
    assert "changed=0" not in recap(out)
    out = run_roles(playbook="netvirt.libvirt_hooks.site", variables=VARS)
    assert "changed=0" in recap(out), out[-3000:]
