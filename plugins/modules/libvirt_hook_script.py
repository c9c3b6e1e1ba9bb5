#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
---
module: libvirt_hook_script
short_description: Install, remove or inspect a custom libvirt hook script run by the netvirt dispatcher
version_added: 0.1.0
description:
  - Installs one custom script for the netvirt hook dispatcher (installed by the
    C(netvirt.libvirt_hooks.hooks) role), links it into the folder of every event
    it should run for, and writes its per-script conf file.
  - The script lives once in C(/etc/libvirt/hooks/netvirt/scripts/NAME); each event gets a
    symlink to it (C(qemu_started_begin.d/NAME), C(daemon_start.d/NAME), C(custom/all_NAME),
    C(custom/OP_NAME)); its conf is C(/etc/libvirt/hooks/conf/NAME.conf).
  - Before installing it checks the script (shebang present, interpreter exists, C(sh -n)/C(bash -n)
    for shell, a compile for Python), writes atomically, owner root, mode 0755.
  - O(state=query) shows what the dispatcher would run for an O(event), in order, with each
    step's timeout and fail policy; see the order in C(docs/hooks.md).
author:
  - netvirt developers (@netvirt)
options:
  name:
    description:
      - Script name; also the name of its conf file and part of its log file names.
      - Letters, digits, C(.), C(_), C(+), C(-); starts with a letter or digit.
      - Required unless O(state=query).
    type: str
  events:
    description:
      - Events the script runs for, as C(driver/op/subop) (C(qemu/started/begin),
        C(network/port-created/begin)), C(daemon/op) (C(daemon/start)), C(qemu/OP) for every
        sub-operation of a qemu operation, or C(qemu/all) for every qemu operation.
      - Required with O(state=present). Links for events no longer listed are removed.
    type: list
    elements: str
  content:
    description:
      - The script itself. Mutually exclusive with O(src).
    type: str
  src:
    description:
      - Path of the script on the managed host. Mutually exclusive with O(content).
    type: path
  timeout:
    description:
      - Seconds before the script's process group gets SIGTERM (then SIGKILL after the
        dispatcher's grace). Default is the dispatcher's (600).
    type: float
  fail:
    description:
      - What a failure of this script does at C(prepare), C(start), C(started), C(migrate) and
        C(restore). V(abort) the operation, or V(ignore) it (logged).
      - Failures never abort C(reconnect), C(stopped) or C(release).
    type: str
    choices: [abort, ignore]
  xml_filter:
    description:
      - At C(migrate) and C(restore) the script's stdout is a new domain XML, chained with other
        filters and validated (same name and uuid). Other scripts' stdout only goes to their log.
    type: bool
  log_level:
    description:
      - Level of this script's log file.
    type: str
    choices: [DEBUG, INFO, WARNING, ERROR]
  config:
    description:
      - More C(key=value) settings for the script's conf file, written as C(key) colon C(value) lines
        (the script reads them through E(NETVIRT_HOOK_CONF)). One-line values.
    type: dict
    default: {}
  state:
    description:
      - V(present) installs, V(absent) removes the script, its links and conf,
        V(query) changes nothing and returns RV(order) for O(event).
    type: str
    choices: [present, absent, query]
    default: present
  event:
    description:
      - The event to show with O(state=query), such as C(qemu/prepare/begin).
    type: str
attributes:
  check_mode:
    support: full
    description: Computes the exact file, conf and link changes and stops before writing them.
  diff_mode:
    support: full
    description: Before and after of the script, its conf file and its event links.
  platform:
    support: full
    platforms: posix
    description: Linux hypervisors running libvirt.
notes:
  - Runs on the hypervisor. Paths honour the dispatcher conf (C(events_dir), C(custom_dir)).
seealso:
  - name: libvirt hooks
    description: What libvirt passes to hook scripts.
    link: https://libvirt.org/hooks.html
"""

EXAMPLES = r"""
- name: Tag guest ports with a firewall mark when guests start
  netvirt.libvirt_hooks.libvirt_hook_script:
    name: fwmark.sh
    events: [qemu/started/begin, qemu/reconnect/begin]
    content: |
      #!/bin/sh
      exec /usr/local/sbin/fwmark-guest "$1"
    timeout: 30
    fail: ignore

- name: Rewrite the description of restored guests
  netvirt.libvirt_hooks.libvirt_hook_script:
    name: describe
    events: [qemu/restore/begin]
    src: /usr/local/lib/hooks/describe.py
    xml_filter: true

- name: What runs when a guest is prepared?
  netvirt.libvirt_hooks.libvirt_hook_script:
    state: query
    event: qemu/prepare/begin
  register: hook_order

- name: Remove a script
  netvirt.libvirt_hooks.libvirt_hook_script:
    name: fwmark.sh
    state: absent
"""

RETURN = r"""
script:
  description: Path of the installed script.
  returned: state is present or absent
  type: str
  sample: /etc/libvirt/hooks/netvirt/scripts/fwmark.sh
conf_file:
  description: Path of the script's conf file.
  returned: state is present or absent
  type: str
  sample: /etc/libvirt/hooks/conf/fwmark.sh.conf
links:
  description: The event links after the run.
  returned: state is present or absent
  type: list
  elements: str
  sample: [/etc/libvirt/hooks/qemu_started_begin.d/fwmark.sh]
order:
  description:
    - What the dispatcher runs for O(event), in order. C(kind) is C(original) (the operator's
      former entry program), C(builtin) (VLAN/shaping handlers), C(script), or C(libvirt) (a
      C(<driver>.d/) script that libvirt runs itself after the dispatcher).
    - "C(status) is C(runs), C(skip: REASON) (not executable, already listed) or C(refuse: REASON)
      (unsafe owner or mode; counts as a failure)."
  returned: state is query
  type: list
  elements: dict
  sample:
    - {position: 1, kind: builtin, name: vlanhook, function: vlanhook.handle, status: runs when its wants() matches}
    - {position: 2, kind: script, name: fwmark.sh, path: /etc/libvirt/hooks/qemu_started_begin.d/fwmark.sh,
       target: /etc/libvirt/hooks/netvirt/scripts/fwmark.sh, timeout: 30.0, fail: ignore, xml_filter: false,
       status: runs}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netvirt.libvirt_hooks.plugins.module_utils.nvhooks.dispatch import hookscript
from ansible_collections.netvirt.libvirt_hooks.plugins.module_utils.nvhooks.errors import NetvirtError


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str"),
            events=dict(type="list", elements="str"),
            content=dict(type="str"),
            src=dict(type="path"),
            timeout=dict(type="float"),
            fail=dict(type="str", choices=["abort", "ignore"]),
            xml_filter=dict(type="bool"),
            log_level=dict(type="str", choices=["DEBUG", "INFO", "WARNING", "ERROR"]),
            config=dict(type="dict", default={}),
            state=dict(type="str", choices=["present", "absent", "query"], default="present"),
            event=dict(type="str"),
        ),
        mutually_exclusive=[("content", "src")],
        required_if=[("state", "present", ("name", "events")),
                     ("state", "present", ("content", "src"), True),
                     ("state", "absent", ("name",)),
                     ("state", "query", ("event",))],
        supports_check_mode=True,
    )
    try:
        result, warnings = hookscript.run(module.params, check=module.check_mode,
                                          diff=module._diff)  # pylint: disable=protected-access
    except NetvirtError as err:
        module.fail_json(msg=str(err), **getattr(err, "fields", {}))
    for warning in warnings:
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
