"""netvirt-hooks: parsing, exit codes, explain/status from a scratch status dir.

Pure: NETVIRT_HOOKS_ROOT points every path into tmp_path; no kernel, no libvirt.
The live tc/VLAN parts are covered in tests/libvirt/test_cli_libvirt.py.
"""
import json
import subprocess
import sys
import os

import pytest

import nvhooks

from nvhooks.cli import command as cli

GUEST = """<domstatus state='running' pid='4242'>
<domain type='qemu' id='3'>
  <name>{name}</name>
  <uuid>7c1c4b4e-8b86-4e4b-9a0c-2d9c1d0f0a11</uuid>
  <metadata>
    <nv:policy xmlns:nv="https://github.com/netvirt/libvirt_hooks/xmlns/policy/1">
      <nv:interface mac="52:54:00:aa:00:01">
        <nv:outbound average="5mbit"/>
        <nv:vlan pvid="100" tagged="200-210"/>
      </nv:interface>
    </nv:policy>
  </metadata>
  <devices>
    <interface type='bridge'>
      <mac address='52:54:00:AA:00:01'/>
      <source bridge='nvtbr0'/>
      <target dev='vnet7'/>
      <bandwidth><inbound average='1250'/></bandwidth>
    </interface>
    <interface type='ethernet'>
      <mac address='52:54:00:aa:00:02'/>
      <target dev='vnet8'/>
    </interface>
  </devices>
</domain>
</domstatus>
"""

POLICY = {"version": 1,
          "groups": {"tenant-a": {"inbound": {"ceiling": "100mbit", "floor": "10mbit"}}},
          "rules": [{"match": {"guest": "web*", "index": 0}, "group": "tenant-a"},
                    {"match": {"mac": "52:54:00:aa:00:02"}, "inbound": {"average": "20mbit", "peak": "40mbit"}}]}


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("NETVIRT_HOOKS_ROOT", str(tmp_path))
    status = tmp_path / "run/libvirt/qemu"
    status.mkdir(parents=True)
    (status / "web1.xml").write_text(GUEST.format(name="web1"))
    etc = tmp_path / "etc/libvirt/hooks/netvirt"
    etc.mkdir(parents=True)
    (etc / "policy.json").write_text(json.dumps(POLICY))
    # the unit lane has no kernel to probe (and may run without root): this
    # boot's capability cache says what a shaping-capable kernel would
    from nvhooks.shaping import caps
    os.makedirs(os.path.dirname(caps.cache_path()), exist_ok=True)
    with open(caps.cache_path(), "w", encoding="utf-8") as handle:
        json.dump(dict(caps.Caps().as_dict(), boot_id=caps.boot_id(), kernel="unit"), handle)
    return tmp_path


def run(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_explain_names_every_source(root, capsys):
    code, out, _err = run(capsys, "explain", "web1")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"guest web1 policy {root}/etc/libvirt/hooks/netvirt/policy.json"
    port0 = "\n".join(lines[lines.index(next(x for x in lines if x.startswith("port 0"))):])
    # 1250 KiB/s * 8192 = 10.24 Mbit/s exactly; keys aligned to the widest one
    assert "  inbound.average    10.24mbit    native <bandwidth>" in port0
    assert "  group              tenant-a     host policy rules[0]" in port0
    assert "  outbound.average   5mbit        metadata interface[0]" in port0
    assert "  vlan.tagged        200-210      metadata interface[0]" in port0
    assert "  inbound.peak     40mbit       host policy rules[1]" in lines


def test_explain_json_has_sources(root, capsys):
    code, out, _err = run(capsys, "--json", "explain", "web1")
    data = json.loads(out)
    assert code == 0 and data["exit"] == 0
    port1 = data["ports"][1]
    assert port1["values"]["inbound.average"] == {"value": "20mbit", "source": "host policy rules[1]"}
    assert port1["values"]["inbound.peak"]["value"] == "40mbit"
    assert data["ports"][0]["values"]["vlan.tagged"]["value"] == "200-210"


def test_json_flag_after_subcommand(root, capsys):
    code, out, _err = run(capsys, "explain", "web1", "--json")
    assert code == 0 and json.loads(out)["guest"] == "web1"


def test_not_running_is_exit_3(root, capsys):
    code, out, err = run(capsys, "status", "nosuch")
    assert code == cli.EXIT_NOT_RUNNING == 3
    assert out == ""
    assert err == f"netvirt-hooks: guest 'nosuch' is not running here (no {root}/run/libvirt/qemu/nosuch.xml)\n"


def test_not_running_json(root, capsys):
    code, out, _err = run(capsys, "--json", "apply", "nosuch")
    assert code == 3 and json.loads(out) == {
        "error": f"guest 'nosuch' is not running here (no {root}/run/libvirt/qemu/nosuch.xml)", "exit": 3}


def test_bad_policy_is_exit_4_and_names_key(root, capsys):
    bad = dict(POLICY, rules=[{"match": {"guest": "x"}, "inbound": {"average": "fast"}}])
    (root / "etc/libvirt/hooks/netvirt/policy.json").write_text(json.dumps(bad))
    code, _out, err = run(capsys, "explain", "web1")
    assert code == 4
    assert "rules[0].inbound.average" in err


def test_bad_metadata_is_exit_4(root, capsys):
    (root / "run/libvirt/qemu/web1.xml").write_text(
        GUEST.format(name="web1").replace('average="5mbit"', 'average="-5"'))
    code, _out, err = run(capsys, "explain", "web1")
    assert code == 4 and "web1: metadata interface[0]" in err


def test_guest_name_with_slash_is_usage(root, capsys):
    code, _out, err = run(capsys, "explain", "../etc/passwd")
    assert code == 2 and "is not a guest name" in err


def test_usage_error_is_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["frobnicate"])
    assert exc.value.code == 2


def test_policy_option_overrides_file(root, tmp_path, capsys):
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"version": 1}))
    code, out, _err = run(capsys, "explain", "web1", "--policy", str(other))
    assert code == 0 and f"policy {other}" in out.splitlines()[0]
    assert "group" not in out


def test_status_overview_lists_each_port(root, capsys):
    code, out, _err = run(capsys, "--json", "status")
    data = json.loads(out)
    ports = data["guests"][0]["ports"]
    assert [p["dev"] for p in ports] == ["vnet7", "vnet8"]
    assert ports[0]["group"] == {"name": "tenant-a", "source": "host policy rules[0]"}
    assert ports[0]["vlan"]["source"] == "metadata interface[0]"


def test_status_no_guests(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NETVIRT_HOOKS_ROOT", str(tmp_path))
    code, out, _err = run(capsys, "status")
    assert code == 0 and out.startswith("no running guests")


def test_help_teaches_and_imports_nothing_heavy():
    """--help lists examples and exit codes, and loads no XML parser or pyroute2."""
    here = os.path.dirname(os.path.abspath(nvhooks.__file__))
    code = ("import sys; sys.path.insert(0, %r); sys.argv=['netvirt-hooks','--help']\n"
            "from nvhooks import cli\n"
            "try: cli.main()\nexcept SystemExit: pass\n"
            "bad = [m for m in ('pyexpat', 'lxml', 'pyroute2', 'nvhooks.cli.run', 'json') if m in sys.modules]\n"
            "print('LOADED', bad)") % os.path.dirname(here)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "netvirt-hooks status web1" in proc.stdout
    assert "3  guest not running" in proc.stdout
    assert proc.stdout.rstrip().endswith("LOADED ['json']") or proc.stdout.rstrip().endswith("LOADED []")


def test_parsing_options_imports_no_shutil():
    # argparse imports shutil (and bz2, lzma) for the terminal width at every add_argument
    here = os.path.dirname(os.path.abspath(nvhooks.__file__))
    code = ("import sys; sys.path.insert(0, %r); from nvhooks.cli import command\n"
            "command.build_parser().parse_args(['agent', '--only', 'x'])\n"
            "print(sorted(m for m in ('shutil', 'bz2', 'lzma') if m in sys.modules))") % os.path.dirname(here)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize("columns, width", [("60", 60), ("x", 80), ("0", 80)])
def test_help_width_follows_columns_like_shutil(monkeypatch, columns, width):
    from nvhooks.cli import command
    monkeypatch.setenv("COLUMNS", columns)
    monkeypatch.setattr(sys, "__stdout__", None)          # no terminal: shutil's fallback
    assert command._columns() == width  # pylint: disable=protected-access


def test_status_lists_scripts_in_dispatcher_order(root, capsys):
    hooks = root / "etc/libvirt/hooks"
    for rel in ("custom/all_log.sh", "custom/started_arp.sh", "qemu_started_begin.d/10-mark"):
        path = hooks / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    for d in (root, *root.rglob("*")):
        if d.is_dir():
            d.chmod(0o755)
    code, out, _err = run(capsys, "status", "web1")
    lines = out.splitlines()
    started = next(x for x in lines if x.strip().startswith("started/begin"))
    assert started.split(None, 1)[1] == ("vlanhook > shapehook > qemu_started_begin.d/10-mark > "
                                         "custom/started_arp.sh > custom/all_log.sh")
    stopped = next(x for x in lines if x.strip().startswith("stopped/end"))
    assert stopped.split(None, 1)[1] == "vlanhook > shapehook > custom/all_log.sh"


def test_status_drift_is_exit_1_and_shows_the_diff(root, capsys, monkeypatch):
    """The exit code follows the probes' verdict (real probes: tests/libvirt/test_cli_libvirt.py)."""
    from nvhooks.cli import probe as cli_probe

    def shaping(domain, port, host, counters):
        if port.index == 1:
            return {"state": "drift", "diff": ["change class htb 1:1 dev vnet8 parent 1: rate 20mbit ceil 40mbit"]}
        return {"state": "in sync", "objects": ["qdisc htb 1: dev vnet7 root default 1"]}

    monkeypatch.setattr(cli_probe, "shaping", shaping)
    monkeypatch.setattr(cli_probe, "vlan", lambda d, p, h: {"state": "none"})
    code, out, _err = run(capsys, "status", "web1")
    assert code == 1
    lines = out.splitlines()
    assert "  tc       drift" in lines
    assert "    ! change class htb 1:1 dev vnet8 parent 1: rate 20mbit ceil 40mbit" in lines
    assert "    qdisc htb 1: dev vnet7 root default 1" in lines
    code, out, _err = run(capsys, "status")
    assert code == 1 and "web1 1 vnet8: inb 20mbit; tc drift, vlans none" in out.splitlines()


def test_apply_check_exit_codes(root, capsys, monkeypatch):
    from nvhooks.cli import probe as cli_probe
    result = {"changed": True, "changes": ["web1 port 1: add class htb 1:1"], "errors": []}
    monkeypatch.setattr(cli_probe, "run_handlers", lambda *a: dict(result))
    code, out, _err = run(capsys, "apply", "web1", "--check")
    assert (code, out) == (1, "would change: web1 port 1: add class htb 1:1\n")
    code, out, _err = run(capsys, "apply", "web1")
    assert (code, out) == (0, "changed: web1 port 1: add class htb 1:1\n")
    result.update(changed=False, changes=[], errors=["web1 port 0: device does not exist"])
    code, out, _err = run(capsys, "teardown", "web1")
    assert (code, out) == (1, "error: web1 port 0: device does not exist\n")


def test_a_bad_value_in_one_guests_xml_is_exit_4_and_spares_the_others(root, capsys):
    # Issue #11.7: a 4 GiB burst in a status XML made explain/status die with a
    # traceback (unit errors were not policy errors), for every guest at once.
    bad = GUEST.format(name="bad").replace("<inbound average='1250'/>", "<inbound average='1000' burst='4194304'/>")
    (root / "run/libvirt/qemu/bad.xml").write_text(bad)
    want = "bad: interface[0] <bandwidth> inbound.burst: 4194304 exceeds the kernel's largest size"
    for argv in (["status", "bad"], ["explain", "bad"], ["apply", "bad", "--check"], ["teardown", "bad", "--check"]):
        code, out, err = run(capsys, *argv)
        assert (code, out) == (4, "") and err.startswith(f"netvirt-hooks: {want}"), argv
    code, out, _err = run(capsys, "status")
    lines = out.splitlines()
    assert code == 4 and any(line.startswith(want) for line in lines)
    web1 = [line.split()[:3] for line in lines if line.startswith("web1")]
    assert web1 == [["web1", "0", "vnet7:"], ["web1", "1", "vnet8:"]]
    code, out, _err = run(capsys, "--json", "status")
    guests = {g["guest"]: g for g in json.loads(out)["guests"]}
    assert code == 4 and guests["bad"]["error"].startswith(want) and len(guests["web1"]["ports"]) == 2


def test_status_lists_lxc_guests_too(root, capsys):
    # one view of running guests: qemu and lxc status XML alike (issue #10)
    lxc = root / "run/libvirt/lxc"
    lxc.mkdir(parents=True)
    (lxc / "ct1.xml").write_text(GUEST.format(name="ct1").replace("<domain type='qemu'", "<domain type='lxc'"))
    code, out, _err = run(capsys, "--json", "status")
    assert [g["guest"] for g in json.loads(out)["guests"]] == ["web1", "ct1"]
    code, out, _err = run(capsys, "--json", "status", "ct1")
    data = json.loads(out)
    assert data["guest"] == "ct1" and len(data["ports"]) == 2
    assert data["hooks"]["started/begin"][0]["what"] == "vlanhook"
