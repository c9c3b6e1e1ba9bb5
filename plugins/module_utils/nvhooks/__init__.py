# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runtime core of netvirt.libvirt_hooks.

Shared by the Ansible modules (shipped inside them by Ansible) and by the
hook on the hypervisor (installed as a plain package by the hooks role).
Never imports ansible; imports pyroute2, libvirt and the XML parser lazily.
"""

__version__ = "0.1.0"
