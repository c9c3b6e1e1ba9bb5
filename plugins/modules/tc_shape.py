#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
---
module: tc_shape
short_description: Shape a network device (a guest's tap) with HTB in both directions, or query its shaping
version_added: "0.1.0"
description:
  - Shapes one network device the way the netvirt libvirt hook shapes a guest's port, through
    netlink (pyroute2), changing only the difference to the live kernel state.
  - I(inbound) is the guest's inbound traffic, the device's egress - HTB on the device.
  - I(outbound) is the guest's outbound traffic, the device's ingress - redirected to an ifb
    device (named C(nvo) + a hash of the device name) and shaped there with HTB. Nothing is
    policed, so TCP and UDP reach the configured rate instead of far less.
  - The leaf queue is the best the kernel offers (fq_codel, then sfq, then pfifo), found by a
    capability probe that is cached per boot under C(/run/netvirt-hooks).
  - With I(group), the device becomes a member of a bandwidth group - the group's members share
    its ceiling, each keeps its guaranteed rate (floor) and borrows up to the ceiling when the
    others are idle. The group's shared objects appear with the first member and go with the last.
  - O(state=absent) removes everything this collection created for the device (its ifb, its HTB
    tree, its redirect, its group membership) and nothing else.
  - O(state=query) changes nothing and returns the live shaping of the device with per-class
    counters (bytes, packets, drops, overlimits) - the one-call troubleshooting view.
  - Any failure midway is rolled back, so the device is left exactly as it was.
author:
  - netvirt developers (@netvirt)
requirements:
  - pyroute2 (0.7 or later) on the managed host
  - root, and a kernel with HTB (C(CONFIG_NET_SCH_HTB)); I(outbound) and I(group) also need ifb (C(CONFIG_IFB))
attributes:
  check_mode:
    support: full
    description: Computes the exact list of changes against the live kernel and stops before applying them.
  diff_mode:
    support: full
    description: Before and after are the device's (and its ifb devices') tc objects in readable units.
  platform:
    support: full
    platforms: posix
    description: Linux only (tc and netlink).
options:
  device:
    description: The network device to shape, for example a guest's tap C(vnet3).
    type: str
    required: true
  netns:
    description: Name of a network namespace (under C(/run/netns)) that holds I(device); the ifb devices are created there too.
    type: str
  state:
    description:
      - C(present) shapes I(device) as given; C(absent) removes our shaping; C(query) reports the live shaping with counters.
    type: str
    choices: [present, absent, query]
    default: present
  inbound:
    description:
      - Guest inbound traffic (the device's egress).
      - Rates and sizes follow libvirt when given as a plain integer - rates in KiB/s (1 = 8192 bit/s), I(burst) in KiB.
      - A string may carry a unit, read as tc reads it - C(bit kbit mbit gbit tbit) are decimal bits/s,
        C(kibit mibit gibit tibit) binary bits/s, C(bps kbps mbps gbps) are decimal BYTES/s (tc's meaning),
        and C(KB/s MB/s) (decimal) or C(KiB/s MiB/s) (binary) bytes/s. Sizes - C(b), C(k)/C(kb)/C(kib) = 1024 bytes,
        C(m)/C(mb)/C(mib), C(g)/C(gb)/C(gib).
      - Decimals are exact (C(1.5gbit)); zero, negative, unknown units and values the kernel cannot hold are errors naming the field.
    type: dict
    suboptions:
      average:
        description: Average rate (HTB rate). Required unless the device is a group member.
        type: raw
      peak:
        description: Rate the device may reach when the link allows (HTB ceil); at least I(average). Defaults to I(average).
        type: raw
      burst:
        description: Bytes that may be sent at I(peak) in one go. Default - enough for TCP at the rate (at least 16 KiB, or 5 ms of traffic).
        type: raw
      floor:
        description: Guaranteed rate of a group member (defaults to the group's I(floor)). Only with I(group).
        type: raw
  outbound:
    description: Guest outbound traffic (the device's ingress, shaped on an ifb). Same suboptions and units as I(inbound).
    type: dict
    suboptions:
      average:
        description: Average rate (HTB rate on the ifb).
        type: raw
      peak:
        description: Rate the device may reach (HTB ceil); at least I(average).
        type: raw
      burst:
        description: Bytes that may be sent at I(peak) in one go.
        type: raw
      floor:
        description: Guaranteed rate of a group member. Only with I(group).
        type: raw
  group:
    description:
      - Make I(device) a member of a bandwidth group. Same format as a group in the host policy file
        (C(groups) in C(/etc/libvirt/hooks/netvirt/policy.json)) and the shaping role's C(shaping_groups).
      - For each direction the group sets, the member's I(average)/I(peak) become its ceiling inside the group
        (capped at the group's ceiling) and I(floor) its guaranteed rate.
      - The group's shared objects take the ceiling given here; give the same group definition to every member.
    type: dict
    suboptions:
      name:
        description: Group name - 1 to 64 letters, digits, C(-) or C(_).
        type: str
        required: true
      inbound:
        description: Inbound side of the group.
        type: dict
        suboptions:
          ceiling:
            description: Rate shared by all members.
            type: raw
            required: true
          floor:
            description: Default guaranteed rate of each member.
            type: raw
          burst:
            description: Burst of the shared class.
            type: raw
      outbound:
        description: Outbound side of the group.
        type: dict
        suboptions:
          ceiling:
            description: Rate shared by all members.
            type: raw
            required: true
          floor:
            description: Default guaranteed rate of each member.
            type: raw
          burst:
            description: Burst of the shared class.
            type: raw
  mac:
    description:
      - The guest's MAC address behind I(device) (what the guest sends from), needed with I(group) to tell members apart,
        and with O(state=absent) to leave a group. For a libvirt tap this is the C(<mac address>) of the interface,
        not the tap's own address.
    type: str
notes:
  - The same code shapes guests' ports in the libvirt hook (netvirt.libvirt_hooks.hooks and
    netvirt.libvirt_hooks.shaping roles); this module is for ad-hoc use, tests and devices libvirt does not manage.
  - Taking a device over replaces its root qdisc and its ingress/clsact qdisc (libvirt's own
    C(<bandwidth>) uses both), so one device is never shaped twice.
seealso:
  - name: Shaping role and module
    description: How rules, groups and units work, and how to troubleshoot.
    link: https://github.com/netvirt/libvirt_hooks/blob/main/docs/shaping-role.md
"""

EXAMPLES = r"""
- name: Shape a guest's tap - 100 Mbit/s in, 50 Mbit/s out, short bursts to 200 Mbit/s in
  netvirt.libvirt_hooks.tc_shape:
    device: vnet3
    inbound:
      average: 100mbit
      peak: 200mbit
      burst: 256k
    outbound:
      average: 50mbit

- name: The same in libvirt's units (KiB/s and KiB), as in a domain's <bandwidth>
  netvirt.libvirt_hooks.tc_shape:
    device: vnet3
    inbound: {average: 12207, peak: 24414, burst: 256}
    outbound: {average: 6103}

- name: Put a tap into a group sharing 1 Gbit/s each way, guaranteeing it 100 Mbit/s
  netvirt.libvirt_hooks.tc_shape:
    device: vnet7
    mac: "52:54:00:6b:3c:58"
    group:
      name: web
      inbound: {ceiling: 1gbit, floor: 100mbit}
      outbound: {ceiling: 1gbit, floor: 100mbit}

- name: What is shaped on vnet3, with counters (bytes, packets, drops, overlimits)
  netvirt.libvirt_hooks.tc_shape:
    device: vnet3
    state: query
  register: vnet3_shaping

- name: Shape a device inside a network namespace
  netvirt.libvirt_hooks.tc_shape:
    device: veth0
    netns: lab1
    inbound: {average: 10mbit}

- name: Remove our shaping from vnet7 (and its group membership)
  netvirt.libvirt_hooks.tc_shape:
    device: vnet7
    mac: "52:54:00:6b:3c:58"
    state: absent
"""

RETURN = r"""
changes:
  description: The changes made (or, in check mode, that would be made), one readable line each, in order.
  returned: state is present or absent
  type: list
  elements: str
  sample:
    - "add qdisc htb 1: dev vnet3 root default 1"
    - "add class htb 1:1 dev vnet3 parent 1: rate 100mbit ceil 200mbit burst 256KiB cburst 256KiB quantum 200000"
plan:
  description: The desired tc objects, one readable line each (empty for O(state=absent)).
  returned: state is present or absent
  type: list
  elements: str
  sample:
    - "qdisc htb 1: dev vnet3 root default 1"
    - "class htb 1:1 dev vnet3 parent 1: rate 100mbit ceil 200mbit burst 256KiB cburst 256KiB quantum 200000"
shaping:
  description: Our tc objects per device after the run (predicted in check mode), one readable line each.
  returned: state is present or absent
  type: dict
  sample: {"vnet3": ["class htb 1:1 dev vnet3 parent 1: rate 100mbit ceil 200mbit burst 256KiB cburst 256KiB quantum 200000"]}
present:
  description: Whether the device carries shaping of ours (O(state=query)).
  returned: state is query
  type: bool
  sample: true
classes:
  description:
    - Every HTB class on the device and on the ifb devices it redirects to, with live counters.
    - C(direction) is the guest's direction the class shapes; C(group) names the group for a group's ifb.
  returned: state is query
  type: list
  elements: dict
  sample:
    - {"device": "vnet3", "classid": "1:1", "direction": "inbound", "group": null, "rate": "100mbit", "ceil": "200mbit",
       "burst": "256KiB", "bytes": 1514000, "packets": 1000, "drops": 0, "overlimits": 12}
devices:
  description: The raw query - per device its qdiscs, classes and filters as the core reads them, with counters.
  returned: state is query
  type: dict
  sample: {"vnet3": {"kind": "tun", "alias": null, "qdiscs": [], "classes": [], "filters": []}}
"""

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    import pyroute2  # noqa: F401  pylint: disable=unused-import
except ImportError:
    PYROUTE2_ERROR = traceback.format_exc()
else:
    PYROUTE2_ERROR = None

from ansible_collections.netvirt.libvirt_hooks.plugins.module_utils.nvhooks.shaping import device as tcdevice
from ansible_collections.netvirt.libvirt_hooks.plugins.module_utils.nvhooks.errors import NetvirtError

RATE_SPEC = dict(average=dict(type="raw"), peak=dict(type="raw"), burst=dict(type="raw"), floor=dict(type="raw"))
GROUP_SIDE_SPEC = dict(ceiling=dict(type="raw", required=True), floor=dict(type="raw"), burst=dict(type="raw"))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            device=dict(type="str", required=True),
            netns=dict(type="str"),
            state=dict(type="str", default="present", choices=["present", "absent", "query"]),
            inbound=dict(type="dict", options=RATE_SPEC),
            outbound=dict(type="dict", options=RATE_SPEC),
            group=dict(type="dict", options=dict(
                name=dict(type="str", required=True),
                inbound=dict(type="dict", options=GROUP_SIDE_SPEC),
                outbound=dict(type="dict", options=GROUP_SIDE_SPEC))),
            mac=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    if PYROUTE2_ERROR is not None:
        module.fail_json(msg=missing_required_lib("pyroute2"), exception=PYROUTE2_ERROR)
    try:
        result, warnings = tcdevice.run(module.params, check=module.check_mode,
                                        diff=module._diff)  # pylint: disable=protected-access
    except NetvirtError as err:
        module.fail_json(msg=str(err), **getattr(err, "fields", {}))
    for warning in warnings:
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
