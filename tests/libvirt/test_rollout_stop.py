"""site.yml rolls out batch by batch and stops when a batch fails.

Two inventory hosts, both this machine over the local connection, one
batch each (serial and max_fail_percentage from the inventory's
group_vars/all/rollout.yml, as docs/getting-started.md tells a fleet to set
them). The first host's shaping policy is invalid: its batch fails, so the
second host must never be touched. The control run allows failures and
shows the second host would have run.
"""
import json
import re

HOST = {"ansible_connection": "local", "ansible_python_interpreter": "/usr/bin/python3"}
BAD_RULES = [{"match": {"guest": "web*"}, "inbound": {"average": "fast"}}]


def inventory(tmp_path, max_fail):
    inv = tmp_path / f"inventory-{max_fail}"
    (inv / "group_vars" / "all").mkdir(parents=True)
    (inv / "group_vars" / "all" / "rollout.yml").write_text(
        f"netvirt_serial: 1\nnetvirt_max_fail_percentage: {max_fail}\n")
    hosts = {"hypervisors": {"hosts": {"hv-bad": dict(HOST, shaping_rules=BAD_RULES), "hv-good": dict(HOST)}}}
    (inv / "hosts.yml").write_text(json.dumps(hosts))
    return inv


def recap(out):
    """{host: {'ok': n, 'failed': n, ...}} from the PLAY RECAP."""
    rows = {}
    for host, counts in re.findall(r"^(hv-\S+)\s+:\s+(.*)$", out, re.M):
        rows[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counts)}
    return rows


def test_failed_batch_stops_the_rollout(tmp_path, restore_host, run_roles):
    out = run_roles(playbook="netvirt.libvirt_hooks.site", inventory=inventory(tmp_path, 0), expect_rc=2)
    rows = recap(out)
    assert rows["hv-bad"]["failed"] == 1, out[-3000:]
    assert "shaping_rules[0].inbound.average" in out or "inbound.average" in out, out[-3000:]
    assert "hv-good" not in rows and "[hv-good]" not in out, out[-3000:]


def test_control_the_next_batch_runs_when_failures_are_allowed(tmp_path, restore_host, run_roles):
    out = run_roles(playbook="netvirt.libvirt_hooks.site", inventory=inventory(tmp_path, 100), expect_rc=2)
    rows = recap(out)
    assert rows["hv-bad"]["failed"] == 1 and rows["hv-good"]["failed"] == 0, out[-3000:]
    assert rows["hv-good"]["ok"] > 5, out[-3000:]
