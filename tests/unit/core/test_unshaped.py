"""settings.unshaped / unshaped_exempt (policy/unshaped.py): parsing, which ports, warn and abort."""
import logging

import pytest

from nvhooks.errors import PolicyError
from nvhooks.policy import domxml, model as policy, resolve, unshaped

XML = """<domain type='qemu'><name>web1</name><uuid>1b4e28ba-2fa1-11d2-883f-0016d3cca427</uuid><devices>
<interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br0'/><target dev='vnet1'/></interface>
<interface type='bridge'><mac address='52:54:00:00:00:02'/><source bridge='brmgmt'/><target dev='vnet2'/></interface>
<interface type='bridge'><mac address='52:54:00:00:00:03'/><source bridge='br0'/><target dev='vnet3'/>
<bandwidth><inbound average='1000'/></bandwidth></interface>
<interface type='bridge'><mac address='52:54:00:00:00:04'/><source bridge='br0'/><target dev='vnet4'/></interface>
</devices></domain>"""


def host(**settings):
    return policy.parse_host_policy({"settings": settings, "rules": [
        {"match": {"mac": "52:54:00:00:00:04"}, "outbound": {"average": "10mbit"}}]})


def offending(settings):
    domain = domxml.parse_domain(XML)
    return [(port.dev, why) for port, why in unshaped.offenders(domain, resolve.resolve(domain, settings), settings.settings)]


def test_default_is_allow_and_no_policy_file_too():
    assert policy.parse_host_policy({}).settings.unshaped == "allow"
    assert policy.HostPolicy().settings.unshaped == "allow"


def test_unshaped_ports_are_those_no_source_limits():
    # vnet3: native <bandwidth> (taken over); vnet4: a host rule
    assert offending(host(unshaped="warn")) == [("vnet1", None), ("vnet2", None)]


def test_native_left_to_libvirt_is_not_unshaped():
    assert [dev for dev, _why in offending(host(native_bandwidth="libvirt"))] == ["vnet1", "vnet2"]


def test_exempt_by_bridge_glob_and_by_match():
    settings = host(unshaped="abort", unshaped_exempt={"bridges": ["brm*"], "ports": [{"dev": "vnet1"}]})
    assert offending(settings) == [("vnet1", "unshaped_exempt.ports[0]"),
                                   ("vnet2", "bridge brmgmt matches unshaped_exempt.bridges 'brm*'")]


@pytest.mark.parametrize("settings, where", [
    ({"unshaped": "deny"}, "settings.unshaped"),
    ({"unshaped": True}, "settings.unshaped"),
    ({"unshaped_exempt": ["br0"]}, "settings.unshaped_exempt"),
    ({"unshaped_exempt": {"bridge": ["br0"]}}, "settings.unshaped_exempt.bridge"),
    ({"unshaped_exempt": {"bridges": "br0"}}, "settings.unshaped_exempt.bridges"),
    ({"unshaped_exempt": {"bridges": [7]}}, "settings.unshaped_exempt.bridges[0]"),
    ({"unshaped_exempt": {"ports": [{"guest": None}]}}, "settings.unshaped_exempt.ports[0].guest"),
    ({"unshaped_exempt": {"ports": [{}]}}, "settings.unshaped_exempt.ports[0]"),
])
def test_wrong_values_are_refused_naming_the_key(settings, where):
    with pytest.raises(PolicyError) as err:
        policy.parse_host_policy({"settings": settings})
    assert err.value.where == f"policy.json: {where}"


def test_warn_logs_one_warning_per_port_naming_tap_mac_and_guest(caplog):
    settings = host(unshaped="warn", unshaped_exempt={"bridges": ["brmgmt"]})
    domain = domxml.parse_domain(XML)
    with caplog.at_level(logging.INFO, logger="t"):
        found = unshaped.enforce(domain, resolve.resolve(domain, settings), settings.settings, logging.getLogger("t"))
    assert [p.dev for p in found] == ["vnet1"]
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "no bandwidth limit: tap=vnet1 mac=52:54:00:00:00:01 guest=web1 (port 0) (settings.unshaped is warn)")]
    assert caplog.records[0].netvirt_fields == {"PORT": "vnet1", "MAC": "52:54:00:00:00:01", "ACTION": "unshaped",
                                                "CHANGED": 0}


def test_abort_refuses_naming_the_taps():
    settings = host(unshaped="abort")
    domain = domxml.parse_domain(XML)
    with pytest.raises(PolicyError, match=r"without a bandwidth limit \(vnet1, vnet2\)"):
        unshaped.enforce(domain, resolve.resolve(domain, settings), settings.settings, logging.getLogger("t"))


@pytest.fixture
def root(tmp_path, monkeypatch):
    import json
    import os
    from nvhooks.shaping import caps
    monkeypatch.setenv("NETVIRT_HOOKS_ROOT", str(tmp_path))
    (tmp_path / "run/libvirt/qemu").mkdir(parents=True)
    (tmp_path / "run/libvirt/qemu/web1.xml").write_text(f"<domstatus state='running'>{XML}</domstatus>")
    (tmp_path / "etc/libvirt/hooks/netvirt").mkdir(parents=True)
    (tmp_path / "etc/libvirt/hooks/netvirt/policy.json").write_text(json.dumps(
        {"settings": {"unshaped": "warn", "unshaped_exempt": {"bridges": ["brmgmt"]}},
         "rules": [{"match": {"mac": "52:54:00:00:00:04"}, "outbound": {"average": "10mbit"}}]}))
    os.makedirs(os.path.dirname(caps.cache_path()), exist_ok=True)     # no kernel probe in the unit lane
    with open(caps.cache_path(), "w", encoding="utf-8") as handle:
        json.dump(dict(caps.Caps().as_dict(), boot_id=caps.boot_id(), kernel="unit"), handle)
    return tmp_path


def test_status_lists_unshaped_ports(root, capsys):
    import json
    from nvhooks.cli import command as cli
    cli.main(["--json", "status"])
    data = json.loads(capsys.readouterr().out)
    assert data["unshaped"] == {"setting": "warn",
                                "ports": ["no bandwidth limit: tap=vnet1 mac=52:54:00:00:00:01 guest=web1 (port 0)"]}
    assert [p.get("unshaped") for p in data["guests"][0]["ports"]] == [
        {"setting": "warn", "exempt": None},
        {"setting": "warn", "exempt": "bridge brmgmt matches unshaped_exempt.bridges 'brmgmt'"}, None, None]
    cli.main(["status"])
    out = capsys.readouterr().out
    assert "unshaped ports (settings.unshaped is warn):\n  no bandwidth limit: tap=vnet1" in out
    cli.main(["status", "web1"])
    out = capsys.readouterr().out
    assert "  unshaped no bandwidth limit (settings.unshaped is warn)" in out
    assert "  unshaped no bandwidth limit (exempt: bridge brmgmt" in out
