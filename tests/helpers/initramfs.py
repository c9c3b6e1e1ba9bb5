"""A tiny guest OS for hot-unplug: busybox in a gzip'd newc cpio (tests/libvirt/test_agent.py,
bench/agent_latency.py)."""
import gzip


def write(path):
    """A gzip'd newc cpio: busybox and an /init that sleeps. Linux' built-in ACPI PCI
    hot-plug (acpiphp) then completes detach-interface; firmware alone never would."""
    with open("/bin/busybox", "rb") as handle:
        busybox = handle.read()
    init = b"#!/bin/busybox sh\nwhile :; do /bin/busybox sleep 3600; done\n"
    entries = [("bin", 0o40755, b""), ("bin/busybox", 0o100755, busybox), ("init", 0o100755, init)]
    out = bytearray()
    for ino, (name, mode, data) in enumerate(entries + [("TRAILER!!!", 0, b"")], 1):
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0)
        head = b"070701" + b"".join(b"%08x" % f for f in fields) + name.encode() + b"\0"
        out += head + b"\0" * (-len(head) % 4) + data + b"\0" * (-len(data) % 4)
    with gzip.open(path, "wb", compresslevel=1) as handle:
        handle.write(bytes(out))
