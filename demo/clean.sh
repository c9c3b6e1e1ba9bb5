#!/usr/bin/env bash
# Remove what demo/demo.sh made: the demo guest (and with it its taps and
# our tc/ifb state), the bridge nvdemo0 and build/demo (venv, collection
# link). The installed hooks, core and host policy stay: they are what
# site.yml installs, the same as on any hypervisor; `--hooks` also removes
# them (entry programs, /usr/lib/netvirt-hooks, /usr/local/sbin/netvirt-hooks,
# /etc/libvirt/hooks/netvirt) and puts back any hook program they had moved aside.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || die "run as root"
take_lock
if pgrep -x libvirtd >/dev/null || pgrep -x virtqemud >/dev/null; then
    remove_guest "$DEMO_GUEST"
fi
ip link del "$DEMO_BRIDGE" 2>/dev/null || true
rm -rf "$BUILD/demo"
if [ "${1:-}" = --hooks ]; then
    remove_hooks
fi
echo "demo removed"
