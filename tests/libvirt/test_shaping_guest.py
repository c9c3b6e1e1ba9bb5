"""Shaping end to end: real libvirtd, real guest, hooks and policy installed by the roles.

The hooks role (netvirt.libvirt_hooks.hooks) installs the dispatcher and the
core into the real /etc/libvirt/hooks and /usr/lib/netvirt-hooks; the shaping
role writes the host policy. Both run through ansible-playbook exactly as an
operator would. What this test changes under /etc/libvirt/hooks,
/usr/lib/netvirt-hooks and /usr/local/sbin/netvirt-hooks is put back as it
was afterwards (the session holds the libvirt flock).

The guest has a type='bridge' port (host policy: inbound rate + outbound
group) and a type='ethernet' port (guest <metadata>: both directions).
After `virsh start` the taps carry exactly the planned tc state (the core's
check mode reports nothing to change, and tc shows the rates); after
`virsh destroy` no ifb, qdisc, class or filter of ours remains.
"""
import os
import sys

from conftest import REPO, bridge_iface, ethernet_iface, sh, uid

sys.path.insert(0, os.path.join(REPO, "plugins", "module_utils"))
NS = "https://github.com/netvirt/libvirt_hooks/xmlns/policy/1"
MAC_BR, MAC_ETH = "52:54:00:5a:00:01", "52:54:00:5a:00:02"


def ifbs():
    """{name: alias} of every ifb in the host namespace."""
    out = {}
    for line in sh("ip", "-o", "link", "show", "type", "ifb").stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        alias = line.split("alias ", 1)[1].strip() if "alias " in line else ""
        out[name] = alias
    return out


def planned_state_in_sync(guest_name):
    """The core's own verdict: for every shaped port, check mode finds nothing to change."""
    from nvhooks.shaping import caps, apply as tcapply, plan as tcplan
    from nvhooks.policy import domxml, model as policy, resolve
    domain = domxml.read_status_xml(f"/run/libvirt/qemu/{guest_name}.xml")
    host = policy.load_host_policy("/etc/libvirt/hooks/netvirt/policy.json")
    kcaps = caps.get()
    verdict = {}
    for port in resolve.resolve(domain, host):
        plan = tcplan.plan_port(port, kcaps)
        if plan is not None:
            result = tcapply.apply(plan, kcaps, check_mode=True)
            verdict[port.dev] = [a.text() for a in result.actions]
    return verdict


def test_guest_ports_shaped_at_start_and_clean_after_destroy(restore_host, run_roles, guest, host_bridge):
    br = host_bridge()
    tap_br, tap_eth = "nvtt" + uid(), "nvtt" + uid()
    group = "nvtg" + uid()
    run_roles(["netvirt.libvirt_hooks.hooks", "netvirt.libvirt_hooks.shaping"], {
        "shaping_groups": {group: {"outbound": {"ceiling": "30mbit", "floor": "5mbit"}}},
        "shaping_rules": [{"match": {"dev": tap_br}, "inbound": {"average": "8mbit", "peak": "16mbit"},
                           "group": group, "comment": "test_shaping_guest"}],
    })
    metadata = (f"<nv:policy xmlns:nv='{NS}'><nv:interface mac='{MAC_ETH}'>"
                f"<nv:inbound average='1250' burst='64'/><nv:outbound average='3mbit'/>"
                f"</nv:interface></nv:policy>")
    g = guest(interfaces=[bridge_iface(br, target=tap_br, mac=MAC_BR), ethernet_iface(target=tap_eth, mac=MAC_ETH)],
              metadata=metadata)
    assert g.is_active()

    # what the hook did at `started` is exactly the plan: nothing left to change
    assert planned_state_in_sync(g.name) == {tap_br: [], tap_eth: []}
    # and, read with tc itself: host policy on the bridge port, metadata on the ethernet port
    assert "rate 8Mbit ceil 16Mbit" in sh("tc", "class", "show", "dev", tap_br).stdout
    assert "rate 10240Kbit ceil 10240Kbit" in sh("tc", "class", "show", "dev", tap_eth).stdout  # 1250 KiB/s
    from nvhooks.shaping import plan as tcplan
    have = ifbs()
    port_ifb, group_ifb = tcplan.port_ifb(tap_eth), tcplan.group_ifb(group, "outbound")
    assert have.get(port_ifb) == tcplan.port_ifb_alias(tap_eth)
    assert have.get(group_ifb) == tcplan.group_ifb_alias(group, "outbound")
    assert "rate 3Mbit" in sh("tc", "class", "show", "dev", port_ifb).stdout
    assert "mirred" in sh("tc", "filter", "show", "dev", tap_br, "ingress").stdout
    member = sh("tc", "class", "show", "dev", group_ifb).stdout
    assert "rate 5Mbit ceil 30Mbit" in member and "rate 30Mbit ceil 30Mbit" in member

    g.destroy()
    left = ifbs()
    assert port_ifb not in left and group_ifb not in left, left
    assert not [name for name, alias in left.items() if tap_br in alias or tap_eth in alias or group in alias]
    for tap in (tap_br, tap_eth):     # libvirt removes the taps; nothing of ours may keep them alive
        assert sh("ip", "link", "show", tap, check=False).returncode != 0
    # the bridge the guest was on carries nothing of ours either
    assert "htb" not in sh("tc", "qdisc", "show", "dev", br).stdout
