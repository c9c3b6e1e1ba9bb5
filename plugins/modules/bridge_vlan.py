#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
---
module: bridge_vlan
short_description: VLANs of Linux bridge ports and bridges, like a switch port's access/trunk set-up
version_added: "1.0.0"
description:
  - Sets the VLAN membership of a Linux bridge port through netlink (the
    kernel's bridge VLAN filtering), the way C(bridge vlan add|del) does, but
    diffing against the kernel so that a second run changes nothing.
  - A port gets an access VLAN (O(pvid), untagged by default) and tagged
    (trunk) VLANs (O(vids)). With O(exclusive=true) the port carries exactly
    these, so the bridge's default VLAN 1 is removed too.
  - When only O(bridge) is given, the module sets the bridge itself,
    O(vlan_filtering), O(default_pvid) and, with O(pvid)/O(vids), the
    bridge device's own VLANs (C(bridge vlan ... self), what the host sees).
  - Fails with a clear error, changing nothing, when the kernel has no bridge
    VLAN filtering (C(CONFIG_BRIDGE_VLAN_FILTERING)), the port does not exist,
    or the port is a member of another bridge than O(bridge).
author:
  - netvirt developers (@netvirt)
requirements:
  - pyroute2 (0.7 or later)
options:
  port:
    description:
      - Bridge port (e.g. a guest's tap device, an uplink) whose VLANs to set.
      - Leave out to work on O(bridge) itself.
    type: str
  bridge:
    description:
      - The bridge. With O(port), the port must be a member of this bridge.
      - Without O(port), the settings apply to the bridge itself.
    type: str
  netns:
    description:
      - Network namespace (name under C(/run/netns)) holding the devices.
    type: str
  pvid:
    description:
      - Access VLAN (port VLAN id) for untagged frames entering the port, 1-4094.
      - With O(state=absent), this VLAN is removed.
    type: int
  untagged:
    description:
      - Whether frames of O(pvid) leave the port untagged (an access port).
    type: bool
    default: true
  vids:
    description:
      - Tagged VLANs, as ids and ranges, for example C([100, "200-210"]) or C("100,200-210").
      - Ids outside 1-4094 and overlapping items are errors.
      - With O(state=absent), these VLANs are removed.
    type: list
    elements: raw
    default: []
  exclusive:
    description:
      - With O(state=present), remove every VLAN not listed in O(pvid)/O(vids),
        including the bridge's default VLAN 1.
    type: bool
    default: false
  state:
    description:
      - V(present) adds (or updates) the listed VLANs.
      - V(absent) removes the listed VLANs; with none listed it removes every VLAN of the port.
      - V(query) changes nothing and returns the VLAN table.
    type: str
    choices: [present, absent, query]
    default: present
  vlan_filtering:
    description:
      - Bridge level (only O(bridge) given). Turn the bridge's VLAN filtering on or off.
    type: bool
  default_pvid:
    description:
      - Bridge level (only O(bridge) given). VLAN new ports get as untagged pvid;
        C(0) gives new ports no VLAN at all.
      - The kernel only changes it with filtering off; the module turns filtering
        off for that moment and back on.
    type: int
attributes:
  check_mode:
    support: full
    description: Predicts exactly the changes a real run makes.
  diff_mode:
    support: full
    description: Shows the VLAN sets (pvid, untagged, tagged) before and after.
  platform:
    support: full
    platforms: linux
    description: Linux with bridge VLAN filtering (C(CONFIG_BRIDGE_VLAN_FILTERING)).
notes:
  - Needs a kernel with bridge VLAN filtering. Without it every call fails
    with a message saying so, which is also what the hook does when a guest
    with a VLAN policy starts.
  - A port that is not filtering (bridge O(vlan_filtering) off) still takes VLANs,
    but the kernel does not enforce them; the module then warns.
seealso:
  - name: bridge(8)
    description: C(bridge vlan) of iproute2, the command-line view of the same table.
    link: https://man7.org/linux/man-pages/man8/bridge.8.html
  - module: netvirt.libvirt_hooks.tc_shape
"""

EXAMPLES = r"""
- name: Make a guest's tap an access port on VLAN 100 (and nothing else)
  netvirt.libvirt_hooks.bridge_vlan:
    port: vnet3
    bridge: br0
    pvid: 100
    exclusive: true

- name: Trunk VLANs 100 and 200-210 on the uplink, keeping what else it has
  netvirt.libvirt_hooks.bridge_vlan:
    port: bond0
    bridge: br0
    vids: [100, "200-210"]

- name: Turn on VLAN filtering of br0, new ports get no VLAN
  netvirt.libvirt_hooks.bridge_vlan:
    bridge: br0
    vlan_filtering: true
    default_pvid: 0

- name: Give the host itself VLAN 50 on the bridge (for br0.50)
  netvirt.libvirt_hooks.bridge_vlan:
    bridge: br0
    vids: [50]

- name: Remove VLANs 200-205 from a port
  netvirt.libvirt_hooks.bridge_vlan:
    port: bond0
    vids: ["200-205"]
    state: absent

- name: Read a port's VLAN table
  netvirt.libvirt_hooks.bridge_vlan:
    port: vnet3
    state: query
  register: vnet3_vlans
"""

RETURN = r"""
port:
  description: The port worked on.
  returned: when O(port) was given
  type: str
  sample: vnet3
bridge:
  description: The bridge (of the port, or the one given).
  returned: always
  type: str
  sample: br0
before:
  description: VLANs before the run; for the bridge switches, vlan_filtering and default_pvid.
  returned: state is present or absent
  type: dict
  sample: {"pvid": 1, "vids": "1", "untagged": "1", "tagged": ""}
after:
  description: VLANs after the run (in check mode, what a real run would leave).
  returned: state is present or absent
  type: dict
  sample: {"pvid": 100, "vids": "100,200-210", "untagged": "100", "tagged": "200-210"}
actions:
  description: The changes made (or, in check mode, that would be made), as C(bridge vlan) words.
  returned: state is present or absent
  type: list
  elements: str
  sample: ["del dev vnet3 vid 1", "add dev vnet3 vid 100 pvid untagged"]
table:
  description: The VLAN table (pvid, all vids, untagged, tagged), ids and ranges as text.
  returned: state is query
  type: dict
  sample: {"pvid": 100, "vids": "100,200-210", "untagged": "100", "tagged": "200-210"}
lines:
  description: The table one run of ids per line, like C(bridge vlan show).
  returned: state is query
  type: list
  elements: str
  sample: ["100 pvid untagged", "200-210"]
ports:
  description: For a bridge query, each member port's VLAN table.
  returned: state is query and only O(bridge) was given
  type: dict
vlan_filtering:
  description: Whether the bridge filters by VLAN.
  returned: state is query
  type: bool
"""

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    import pyroute2  # the core imports it lazily; checked here for a clear message
    HAS_PYROUTE2, PYROUTE2_ERROR = bool(pyroute2.__name__), None
except ImportError:
    HAS_PYROUTE2, PYROUTE2_ERROR = False, traceback.format_exc()

from ansible_collections.netvirt.libvirt_hooks.plugins.module_utils.nvhooks.vlan import port as vlanport
from ansible_collections.netvirt.libvirt_hooks.plugins.module_utils.nvhooks.errors import NetvirtError


def main():
    module = AnsibleModule(
        argument_spec=dict(
            port=dict(type="str"),
            bridge=dict(type="str"),
            netns=dict(type="str"),
            pvid=dict(type="int"),
            untagged=dict(type="bool", default=True),
            vids=dict(type="list", elements="raw", default=[]),
            exclusive=dict(type="bool", default=False),
            state=dict(type="str", choices=["present", "absent", "query"], default="present"),
            vlan_filtering=dict(type="bool"),
            default_pvid=dict(type="int"),
        ),
        required_one_of=[("port", "bridge")],
        mutually_exclusive=[("port", "vlan_filtering"), ("port", "default_pvid")],
        supports_check_mode=True,
    )
    if not HAS_PYROUTE2:
        module.fail_json(msg=missing_required_lib("pyroute2"), exception=PYROUTE2_ERROR)
    try:
        result, warnings = vlanport.run(module.params, check=module.check_mode,
                                        diff=module._diff)  # pylint: disable=protected-access
    except NetvirtError as err:
        module.fail_json(msg=str(err), **getattr(err, "fields", {}))
    for warning in warnings:
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
