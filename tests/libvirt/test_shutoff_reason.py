"""The shutoff reason at `release end`, with a real guest under the real libvirtd.

libvirt >= 10.5 passes why the guest stopped as the 4th argument of the qemu
hook's `release end` (qemuProcessStop); the dispatcher logs it and gives it
to scripts as NETVIRT_HOOK_SHUTOFF_REASON. Older libvirt (Debian 12's 9.0)
passes "-": the variable is there and empty. The libvirt11 lane runs this on
11.3; the host lane on 9.0.
"""
import os
import re
import time

import pytest

from conftest import ethernet_iface, virsh

OUT = "/run/nvt-shutoff-reason"
SCRIPT = """#!/bin/sh
case "$1" in nvt-*) echo "$1|$4|${NETVIRT_HOOK_SHUTOFF_REASON-unset}" >> /run/nvt-shutoff-reason ;; esac
"""


def libvirt_version():
    out = virsh("version", "--daemon").stdout
    match = re.search(r"Running against daemon: (\d+)\.(\d+)", out) or re.search(r"libvirt (\d+)\.(\d+)", out)
    return int(match.group(1)), int(match.group(2))


def releases(name):
    try:
        with open(OUT) as handle:
            return [line.split("|")[1:] for line in handle.read().splitlines() if line.split("|")[0] == name]
    except FileNotFoundError:
        return []


@pytest.fixture
def recorder(run_roles, restore_host):
    if os.path.exists(OUT):
        os.unlink(OUT)
    run_roles(["netvirt.libvirt_hooks.hooks"], {
        "hooks_scripts": [{"name": "nvt-reason", "events": ["qemu/release/end"], "content": SCRIPT}]})
    yield
    if os.path.exists(OUT):
        os.unlink(OUT)


def test_release_gets_the_shutoff_reason(recorder, guest):
    new = libvirt_version() >= (10, 5)
    g = guest([ethernet_iface()])
    g.destroy()
    # a guest of ours has no OS to power off: quitting qemu from its monitor
    # is a shutdown libvirt did not ask for (qemu says "host-qmp-quit")
    g.start()
    virsh("qemu-monitor-command", g.name, "--hmp", "quit", check=False)
    end = time.monotonic() + 60
    while len(releases(g.name)) < 2 and time.monotonic() < end:
        time.sleep(0.2)
    got = releases(g.name)
    if new:
        assert got == [["destroyed", "destroyed"], ["shutdown", "shutdown"]]
    else:
        assert got == [["-", ""], ["-", ""]]
    with open("/var/log/libvirt/hooks/qemu_release_end_%s_nvt-reason.log" % g.name) as handle:
        log = handle.read()
    assert ("shutoff reason destroyed" in log) == new
