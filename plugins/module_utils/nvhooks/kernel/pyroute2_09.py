# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pyroute2 0.9.x behind kernel/compat.py: netns by IPRoute(netns=), raw requests by its async core."""

VERSION = "0.9"


def open_in_netns(name):
    from pyroute2 import IPRoute
    return IPRoute(netns=name)


def request(sock, msg, msg_type, flags):
    # the sync nlm_request trips over a missing status key; the async core it wraps works
    return tuple(sock._generate_with_cleanup(  # pylint: disable=protected-access
        sock.asyncore.nlm_request, msg, msg_type, flags, None, None, None))


def reset_nla_cache(klass):
    # same mangled class attribute as 0.7: compile_nla_table() sets it, and the maps, on the class
    klass._nlmsg_base__compiled_nla = False  # pylint: disable=protected-access
