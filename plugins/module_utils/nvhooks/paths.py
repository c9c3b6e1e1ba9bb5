# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netvirt developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every on-host path in one place.

NETVIRT_HOOKS_ROOT, when set, is prepended to all of them so tests can run
against a scratch tree instead of the real /etc, /var and /run.
"""

import os


def root():
    return os.environ.get("NETVIRT_HOOKS_ROOT", "")


def _p(path):
    return root() + path


def hooks_dir():
    return _p("/etc/libvirt/hooks")


def netvirt_etc():
    return _p("/etc/libvirt/hooks/netvirt")


def dispatcher_conf():
    return _p("/etc/libvirt/hooks/netvirt/dispatcher.conf")


def policy_file():
    return _p("/etc/libvirt/hooks/netvirt/policy.json")


def originals_dir():
    """Where an operator's pre-existing entry programs are moved aside."""
    return _p("/etc/libvirt/hooks/netvirt/original")


def custom_dir():
    return _p("/etc/libvirt/hooks/custom")


def script_conf_dir():
    return _p("/etc/libvirt/hooks/conf")


def lib_dir():
    return _p("/usr/lib/netvirt-hooks")


def log_dir():
    return _p("/var/log/libvirt/hooks")


def run_dir():
    return _p("/run/netvirt-hooks")


def qemu_status_dir():
    """Running guests' status XML, readable without calling libvirt."""
    return _p("/run/libvirt/qemu")


def lxc_status_dir():
    return _p("/run/libvirt/lxc")
