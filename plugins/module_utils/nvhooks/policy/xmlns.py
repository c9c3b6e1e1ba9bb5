# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The XML namespace of our guest <metadata> policy (docs/policy.md).

A module of its own: the policy model needs it without importing the
domain XML reader.
"""

NS_NETVIRT = "https://github.com/netvirt/libvirt_hooks/xmlns/policy/1"
# for the handlers' cheap wants() test on the raw XML (no parser)
NS_BYTES = NS_NETVIRT.encode()
