#!/usr/bin/env bash
# The demo: one command, as root, on a fresh Debian 12 machine.
#
#   demo/demo.sh        (make demo)
#
# Installs what it needs (apt: libvirt, qemu, python3-pyroute2; a venv
# with ansible-core unless build/venv exists), starts libvirtd if no libvirt
# daemon runs, creates the bridge nvdemo0, rolls the collection out to this
# machine with playbooks/site.yml and the example inventory, starts the demo
# guest (demo/netvirt-demo.xml: 64 MiB, no disk) and prints
# `netvirt-hooks status netvirt-demo`. demo/clean.sh removes what it made.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || die "run as root (it installs packages and hooks)"

APT_PKGS="libvirt-daemon-system libvirt-clients qemu-system-x86 seabios ipxe-qemu
 python3 python3-venv python3-pyroute2 iproute2 util-linux procps"
missing=$(for p in $APT_PKGS; do dpkg-query -W -f='${db:Status-Status}\n' "$p" 2>/dev/null | grep -qx installed || echo "$p"; done)
if [ -n "$missing" ]; then
    say "apt: installing ${missing//$'\n'/ }"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # shellcheck disable=SC2086 # a list of package names
    apt-get install -y -q --no-install-recommends $missing
fi
find_ansible

take_lock
say "libvirtd"
ensure_libvirtd
"${VIRSH[@]}" version

say "bridge $DEMO_BRIDGE"
ensure_bridge
extra=()
if kernel_has_vlan_filtering; then
    echo "this kernel's bridge filters VLANs: VLAN policy is enforced (vlan_failure: abort)"
else
    echo "this kernel has no bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING):"
    echo "the demo uses the warn-only setting (vlan_failure: warn); the guest starts, its VLAN policy is NOT applied"
    extra=(-e @"$DEMO_DIR/vars-novlan.yml")
fi

say "ansible-playbook netvirt.libvirt_hooks.site (example inventory, this machine)"
"$ANSIBLE_BIN/ansible-playbook" -i "$REPO/examples/inventory" netvirt.libvirt_hooks.site \
    --limit localhost "${extra[@]}" "$@"

say "guest $DEMO_GUEST"
remove_guest "$DEMO_GUEST"
"${VIRSH[@]}" create "$DEMO_DIR/netvirt-demo.xml"

say "netvirt-hooks status $DEMO_GUEST"
rc=0
/usr/local/sbin/netvirt-hooks status "$DEMO_GUEST" || rc=$?
echo
echo "exit $rc (netvirt-hooks --help explains exit codes). Try: netvirt-hooks explain $DEMO_GUEST"
echo "The demo guest keeps running; demo/clean.sh (make demo-clean) removes it and the bridge."
