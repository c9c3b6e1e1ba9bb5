"""Issue #11.3 through the roles, with real YAML host vars as an operator writes them.

YAML 1.1 (Ansible's) reads an unquoted MAC of digits as a base-60 integer, and
`guest: 1234` as an int; a rule with `mac:` and nothing after it has a null
match. Each once matched every port of every guest (or crashed every guest
start). The shaping role must refuse them in check mode already, naming the
variable and with a hint, and write nothing.
"""
import os


PLAY = """- hosts: hv
  gather_facts: false
  roles:
    - netvirt.libvirt_hooks.shaping
"""
CASES = {
    "unquoted-mac": ("shaping_rules:\n  - match: {mac: 52:54:00:12:34:56}\n    inbound: {average: 10mbit}\n",
                     "shaping_rules[0].match.mac: 41135085296 is a int, not a string: quote MAC addresses in YAML"),
    "numeric-guest": ("shaping_rules:\n  - match: {guest: 1234}\n    inbound: {average: 10mbit}\n",
                      "shaping_rules[0].match.guest: 1234 is a int, not a string: quote it in YAML"),
    "null-match": ("shaping_rules:\n  - match:\n      mac:\n    inbound: {average: 10mbit}\n",
                   "shaping_rules[0].match.mac: is null"),
    # issue #14: the unshaped exemptions are matches too
    "unshaped-exempt-mac": ("shaping_unshaped_exempt:\n  ports:\n    - {mac: 52:54:00:12:34:56}\n",
                            "shaping_unshaped_exempt.ports[0].mac: 41135085296 is a int, not a string"),
}


def test_the_shaping_role_refuses_mistyped_yaml_naming_the_variable(run_roles, tmp_path):
    # one inventory host per case: one ansible-playbook run shows every refusal
    inventory = tmp_path / "inventory"
    (inventory / "host_vars").mkdir(parents=True)
    (inventory / "hosts").write_text("[hv]\n" + "".join(
        f"{case} ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n" for case in CASES))
    for case, (host_vars, _message) in CASES.items():
        (inventory / "host_vars" / f"{case}.yml").write_text(host_vars)
    play = tmp_path / "site.yml"
    play.write_text(PLAY)
    fragment = "/etc/libvirt/hooks/netvirt/policy.d/shaping.json"
    before = open(fragment, "rb").read() if os.path.exists(fragment) else None
    out = run_roles(playbook=str(play), inventory=str(inventory), check=True, expect_rc=2)
    for case, (_host_vars, message) in CASES.items():
        failed = [line for line in out.splitlines() if line.startswith(f"fatal: [{case}]")]
        assert failed and message in failed[-1], (case, out[-4000:])
    assert (open(fragment, "rb").read() if os.path.exists(fragment) else None) == before
