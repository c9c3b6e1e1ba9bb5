"""policy.d fragments: merge order, clashes, validation, the validator command."""
import json
import os
import subprocess
import sys

import pytest

from nvhooks.policy import fragments as policycheck
from nvhooks.errors import PolicyError

MODULE_UTILS = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(policycheck.__file__))))

SHAPING = {
    "version": 1,
    "settings": {"native_bandwidth": "takeover"},
    "groups": {"web": {"inbound": {"ceiling": "100mbit", "floor": "10mbit"}}},
    "rules": [{"match": {"guest": "web-*"}, "group": "web"},
              {"match": {"mac": "52:54:00:*"}, "inbound": {"average": "10mbit"}}],
}
VLAN = {
    "version": 1,
    "settings": {"vlan_failure": "warn"},
    "bridges": {"br0": {"uplinks": ["eth1"], "uplink_vids": "100"}},
    "rules": [{"match": {"guest": "db*"}, "vlan": {"pvid": 100}}],
}


def write(directory, name, doc):
    path = directory / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def test_merge_concatenates_rules_in_fragment_name_order():
    merged = policycheck.merge([("vlan.json", VLAN), ("shaping.json", SHAPING)])
    assert merged["rules"] == SHAPING["rules"] + VLAN["rules"]
    assert merged["settings"] == {"native_bandwidth": "takeover", "vlan_failure": "warn"}
    assert set(merged["groups"]) == {"web"} and set(merged["bridges"]) == {"br0"}


def test_group_defined_twice_names_both_fragments():
    other = {"groups": {"web": {"outbound": {"ceiling": "1gbit"}}}}
    with pytest.raises(PolicyError) as err:
        policycheck.merge([("shaping.json", SHAPING), ("zz.json", other)])
    assert err.value.where == "zz.json: groups.web"
    assert "'shaping.json'" in err.value.message and "defines it too" in err.value.message


def test_settings_same_value_merges_different_value_fails():
    same = {"settings": {"native_bandwidth": "takeover"}}
    assert policycheck.merge([("a.json", SHAPING), ("b.json", same)])["settings"]["native_bandwidth"] == "takeover"
    with pytest.raises(PolicyError, match="different value") as err:
        policycheck.merge([("a.json", SHAPING), ("b.json", {"settings": {"native_bandwidth": "libvirt"}})])
    assert err.value.where == "b.json: settings.native_bandwidth"


def test_assemble_reads_directory_and_replacement(tmp_path):
    write(tmp_path, "vlan.json", VLAN)
    write(tmp_path, "shaping.json", {"rules": [{"match": {"dev": "vnet*"}, "outbound": {"average": 100}}]})
    write(tmp_path, "notes.txt", "ignored")
    doc = policycheck.assemble(str(tmp_path), {"shaping.json": json.dumps(SHAPING).encode()})
    assert doc["rules"][0] == SHAPING["rules"][0]      # the replacement, not the file on disk
    assert len(doc["rules"]) == 3


def test_assemble_missing_directory_is_empty_policy(tmp_path):
    doc = policycheck.assemble(str(tmp_path / "nope"))
    assert doc == {"version": 1, "settings": {}, "groups": {}, "bridges": {}, "rules": []}


def test_bad_fragment_error_names_fragment_and_key(tmp_path):
    bad = dict(SHAPING, rules=[{"match": {"guest": "x"}, "inbound": {"average": "10mbit", "peak": "1mbit"}}])
    write(tmp_path, "shaping.json", bad)
    with pytest.raises(PolicyError) as err:
        policycheck.assemble(str(tmp_path))
    assert err.value.where == "shaping.json: rules[0].inbound.peak"


def test_write_atomic_only_when_changed(tmp_path):
    path = str(tmp_path / "policy.json")
    text = policycheck.render(SHAPING)
    assert policycheck.write_atomic(path, text) is True
    inode = os.stat(path).st_ino
    assert policycheck.write_atomic(path, text) is False
    assert os.stat(path).st_ino == inode
    assert sorted(os.listdir(tmp_path)) == ["policy.json"]      # no temp file left


def test_rename_where_points_at_variable():
    err = PolicyError("peak 1mbit is below average 10mbit", "tmpx: rules[2].inbound.peak")
    assert policycheck.rename_where(err, {"rules": "shaping_rules"}) == \
        "shaping_rules[2].inbound.peak: peak 1mbit is below average 10mbit"
    err = PolicyError("x", "tmpx: settings.native_bandwidth")
    assert policycheck.rename_where(err, {"settings.native_bandwidth": "shaping_native_bandwidth",
                                          "settings": "other"}).startswith("shaping_native_bandwidth: ")


def run_cli(*args, stdin=None):
    """The validator as roles call it: a fresh interpreter, core on sys.path."""
    code = ("import sys; sys.path.insert(0, sys.argv.pop(1)); "
            "from nvhooks.policy.fragments import main; sys.exit(main())")
    return subprocess.run([sys.executable, "-c", code, MODULE_UTILS, *args], input=stdin,
                          capture_output=True, text=True, timeout=60, check=False)


def test_cli_validate_ok_and_error_with_var_name(tmp_path):
    good = write(tmp_path, "good", SHAPING)
    assert run_cli(str(good)).returncode == 0
    bad = write(tmp_path, "bad", dict(SHAPING, groups={"web": {"inbound": {"ceiling": "10furlong"}}}))
    proc = run_cli(str(bad), "--var", "groups=shaping_groups", "--var", "rules=shaping_rules")
    assert proc.returncode == 1
    assert proc.stderr.startswith("policycheck: shaping_groups.web.inbound.ceiling: unknown rate unit 'furlong'")


def test_cli_assemble_output_and_stdin_fragment(tmp_path):
    pdir = tmp_path / "policy.d"
    pdir.mkdir()
    write(pdir, "vlan.json", VLAN)
    out = tmp_path / "policy.json"
    proc = run_cli("--assemble", str(pdir), "--fragment", "shaping.json=-", "--output", str(out),
                   stdin=json.dumps(SHAPING))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"changed": True, "path": str(out)}
    assert json.loads(out.read_text())["rules"][0] == SHAPING["rules"][0]
    assert not (pdir / "shaping.json").exists()          # --fragment never writes the fragment
    proc = run_cli("--assemble", str(pdir), "--fragment", "shaping.json=-", "--output", str(out),
                   stdin=json.dumps(SHAPING))
    assert json.loads(proc.stdout)["changed"] is False


def test_cli_assemble_clash_leaves_output_untouched(tmp_path):
    pdir = tmp_path / "policy.d"
    pdir.mkdir()
    write(pdir, "a.json", SHAPING)
    write(pdir, "b.json", {"groups": {"web": {"inbound": {"ceiling": "1mbit"}}}})
    out = write(tmp_path, "policy.json", "{}")
    proc = run_cli("--assemble", str(pdir), "--output", str(out))
    assert proc.returncode == 1
    assert "b.json: groups.web" in proc.stderr
    assert out.read_text() == "{}"


def test_cli_validate_stdin():
    proc = run_cli("-", "--var", "rules=shaping_rules",
                   stdin=json.dumps({"rules": [{"match": {"guest": "a"}, "group": "nope"}]}))
    assert proc.returncode == 1
    assert "shaping_rules[0].group: unknown group 'nope'" in proc.stderr
    assert run_cli("-", stdin=json.dumps(SHAPING)).returncode == 0
