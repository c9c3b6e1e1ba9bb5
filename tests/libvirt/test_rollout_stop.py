"""site.yml rolls out batch by batch; a failed host stops the next batch, not its own.

Three inventory hosts, all this machine over the local connection, in
batches of two (serial and max_fail_percentage from the inventory's
group_vars/all/rollout.yml, as docs/getting-started.md tells a fleet to set
them); one fork, so two "hosts" never write the same files at once. The
first host's shaping policy is invalid. With max_fail_percentage 0 the other
host of its batch finishes and the second batch never starts; with 50 (one
of two failed is not more than 50 %) the second batch runs: the setting, not
something else, is what stops the rollout.
"""
import json
import re

import pytest

HOST = {"ansible_connection": "local", "ansible_python_interpreter": "/usr/bin/python3"}
BAD_RULES = [{"match": {"guest": "web*"}, "inbound": {"average": "fast"}}]


@pytest.fixture
def rollout(tmp_path, restore_host, run_roles, monkeypatch):
    monkeypatch.setenv("ANSIBLE_FORKS", "1")

    def run(max_fail):
        inv = tmp_path / f"inventory-{max_fail}"
        (inv / "group_vars" / "all").mkdir(parents=True)
        (inv / "group_vars" / "all" / "rollout.yml").write_text(
            f"netvirt_serial: 2\nnetvirt_max_fail_percentage: {max_fail}\n")
        hosts = {"hv-bad": dict(HOST, shaping_rules=BAD_RULES), "hv-good1": HOST, "hv-good2": HOST}
        (inv / "hosts.yml").write_text(json.dumps({"hypervisors": {"hosts": hosts}}))
        out = run_roles(playbook="netvirt.libvirt_hooks.site", inventory=inv, expect_rc=2)
        rows = {}
        for host, counts in re.findall(r"^(hv-\S+)\s+:\s+(.*)$", out, re.M):     # the PLAY RECAP
            rows[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counts)}
        return out, rows
    return run


def test_failed_host_stops_the_next_batch_not_its_own(rollout):
    out, rows = rollout(0)
    assert rows["hv-bad"]["failed"] == 1, out[-3000:]
    assert "inbound.average" in out, out[-3000:]                     # the core's message names the key
    assert rows["hv-good1"]["failed"] == 0 and rows["hv-good1"]["ok"] > 5, out[-3000:]
    assert "hv-good2" not in rows and "[hv-good2]" not in out, out[-3000:]


def test_control_the_next_batch_runs_within_the_allowed_percentage(rollout):
    out, rows = rollout(50)
    assert rows["hv-bad"]["failed"] == 1, out[-3000:]
    assert rows["hv-good2"]["failed"] == 0 and rows["hv-good2"]["ok"] > 5, out[-3000:]
