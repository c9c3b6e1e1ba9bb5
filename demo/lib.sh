# shellcheck shell=bash
# Shared by demo.sh, clean.sh and the molecule scenario; sourced, not run.
# Every wait is bounded; libvirtd and /etc/libvirt/hooks are touched only
# under the machine-wide lock (one libvirtd, shared /etc).
set -euo pipefail
DEMO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$DEMO_DIR/.." && pwd)
BUILD=${NVT_BUILD:-$REPO/build}
DEMO_BRIDGE=${DEMO_BRIDGE:-nvdemo0}
DEMO_GUEST=${DEMO_GUEST:-netvirt-demo}
LIBVIRT_LOCK=/run/nvt-libvirt.lock
VIRSH=(virsh -q -c qemu:///system)
# The collection as Ansible finds it: <path>/ansible_collections/netvirt/libvirt_hooks -> this tree.
DEMO_COLLECTIONS=$BUILD/demo/collections

say() { printf '\n== %s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

# Hold the machine-wide libvirt lock for the rest of this shell (fd 9).
take_lock() {
    [ "${NVT_LIBVIRT_LOCK_HELD:-0}" = 1 ] && return 0
    exec 9>"$LIBVIRT_LOCK"
    flock -w "${NVT_LIBVIRT_LOCK_TIMEOUT:-900}" 9 || die "another run held $LIBVIRT_LOCK for ${NVT_LIBVIRT_LOCK_TIMEOUT:-900} s; try again later"
    export NVT_LIBVIRT_LOCK_HELD=1
}

# libvirtd (monolithic, no systemd) unless a libvirt daemon already runs.
ensure_libvirtd() {
    if ! pgrep -x libvirtd >/dev/null && ! pgrep -x virtqemud >/dev/null; then
        # 9>&-: the daemons must not inherit the lock fd, or it is never released
        pgrep -x virtlogd >/dev/null || virtlogd -d 9>&-
        libvirtd -d 9>&-
    fi
    local _
    for _ in $(seq 1 120); do
        "${VIRSH[@]}" version >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    die "libvirtd does not answer on qemu:///system after 60 s"
}

# Does this kernel's bridge do VLAN filtering? (CONFIG_BRIDGE_VLAN_FILTERING)
kernel_has_vlan_filtering() {
    local probe=nvdprobe$$
    if ip link add "$probe" type bridge vlan_filtering 1 2>/dev/null; then
        ip link del "$probe"
        return 0
    fi
    ip link del "$probe" 2>/dev/null || true
    return 1
}

ensure_bridge() {
    ip link show "$DEMO_BRIDGE" >/dev/null 2>&1 || ip link add "$DEMO_BRIDGE" type bridge
    ip link set "$DEMO_BRIDGE" up
}

# ansible-core: the lanes' venv (make setup) if present, else a small one.
find_ansible() {
    if [ -x "$BUILD/venv/bin/ansible-playbook" ]; then
        ANSIBLE_BIN=$BUILD/venv/bin
    else
        ANSIBLE_BIN=$BUILD/demo/venv/bin
        if [ ! -x "$ANSIBLE_BIN/ansible-playbook" ]; then
            say "venv with ansible-core in $BUILD/demo/venv"
            /usr/bin/python3 -m venv "$BUILD/demo/venv"
            "$ANSIBLE_BIN/pip" install -q --disable-pip-version-check 'ansible-core>=2.19,<2.20'
        fi
    fi
    mkdir -p "$DEMO_COLLECTIONS/ansible_collections/netvirt"
    ln -sfn "$REPO" "$DEMO_COLLECTIONS/ansible_collections/netvirt/libvirt_hooks"
    export ANSIBLE_COLLECTIONS_PATH=$DEMO_COLLECTIONS ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0
}

remove_guest() {
    "${VIRSH[@]}" destroy "$1" >/dev/null 2>&1 || true
    "${VIRSH[@]}" undefine "$1" --nvram >/dev/null 2>&1 || true
}

# Undo what site.yml installed: entry programs (only ours), the core, the
# command and /etc/libvirt/hooks/netvirt; put back a moved-aside program.
remove_hooks() {
    local hooks=/etc/libvirt/hooks driver
    for driver in qemu lxc network daemon; do
        if grep -qs "installed by the netvirt.libvirt_hooks.hooks role" "$hooks/$driver"; then
            rm -f "$hooks/$driver"
            if [ -e "$hooks/netvirt/original/$driver" ]; then
                mv "$hooks/netvirt/original/$driver" "$hooks/$driver"
            fi
        fi
    done
    rm -rf "$hooks/netvirt" /usr/lib/netvirt-hooks /usr/local/sbin/netvirt-hooks
    echo "hooks removed; libvirtd notices at its next start or reload"
}
