#!/usr/bin/env bash
# Run by libvirt11.sh holding the libvirt lock: stop the host's libvirtd, run
# the tests against the chroot's libvirtd 11.3 in a private mount namespace
# (`ns`: its mounts vanish with it, even on a kill), start the host's again.
export LANE=libvirt11; . "$(dirname "$0")/lib.sh"
root=$NVT_CHROOT
daemons="libvirtd virtlogd virtlockd"

stop_daemons() {  # every libvirtd/virtlogd/virtlockd there is; waits until gone
    local d pid tries=0
    for d in $daemons; do
        for pid in $(pgrep -x "$d"); do kill "$pid" 2>/dev/null || true; done
    done
    while [ $((tries += 1)) -le 150 ]; do
        pgrep -x libvirtd >/dev/null || pgrep -x virtlogd >/dev/null || return 0
        sleep 0.2
    done
    for d in $daemons; do
        for pid in $(pgrep -x "$d"); do kill -9 "$pid" 2>/dev/null || true; done
    done
}

# shellcheck disable=SC2317  # run by the EXIT trap
restore_host() {
    set +e
    stop_daemons
    say "libvirt11 $(date -u +%T): host daemons back:${host_had:- none were running}"
    for d in $host_had; do "$d" -d; done
}

if [ "${1:-}" != ns ]; then
    host_had=""
    for d in $daemons; do if pgrep -x "$d" >/dev/null; then host_had="$host_had $d"; fi; done
    trap restore_host EXIT
    say "libvirt11 $(date -u +%T): stopping the host's daemons:${host_had:- none running}"
    stop_daemons
    unshare --mount --propagation private bash "$0" ns
    exit $?
fi

trap stop_daemons EXIT
# the chroot's / must be a mount point: libvirt (qemu's namespace) and `ip netns
# exec` make it a slave mount
mount --bind "$root" "$root"
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"
mount -t tmpfs -o mode=755 tmpfs "$root/run"      # its own /run: none of the host's libvirt state
mkdir -p "$root$REPO"
mount --bind "$REPO" "$root$REPO"
# each run starts clean: no guests, hooks, logs or scratch of the last one
rm -rf "$root/etc/libvirt/hooks" "$root/usr/lib/netvirt-hooks" "$root/usr/local/sbin/netvirt-hooks" \
    "$root"/var/log/libvirt/* "$root"/var/lib/libvirt/qemu/* "$root"/etc/libvirt/qemu/*.xml "$root"/tmp/*
in_chroot() { chroot "$root" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 NVT_BUILD=/opt/nvt-build NVT_VENV=/opt/nvt-build/venv \
    NVT_LIBVIRT_LOCK_HELD=1 NVT_EXPECT_ANSIBLE="$NVT_EXPECT_ANSIBLE" PYTHONDONTWRITEBYTECODE=1 "$@"; }
in_chroot virtlogd -d
in_chroot libvirtd -d
rc=0
say "libvirt11 $(date -u +%T): unit lane on $(in_chroot python3 -V)"
in_chroot env NVT_EXPECT_PYROUTE2=0.8 /opt/nvt-build/venv/bin/python -m pytest -c "$REPO/tests/pytest.ini" \
    --rootdir "$REPO/tests" --junitxml="$RESULTS/libvirt11-unit.xml" -q "$REPO/tests/unit" || rc=1
report_junit libvirt11-unit "$RESULTS/libvirt11-unit.xml"
say "libvirt11 $(date -u +%T): guest tests on libvirtd $(in_chroot libvirtd --version | awk '{print $NF}')"
args=()
for t in $NVT_LIBVIRT11_TESTS; do args+=("$REPO/tests/libvirt/$t"); done
in_chroot /opt/nvt-build/venv/bin/python -m pytest -c "$REPO/tests/pytest.ini" --rootdir "$REPO/tests" \
    --junitxml="$RESULTS/libvirt11.xml" --timeout=900 --durations=8 "${args[@]}" || rc=1
report_junit libvirt11 "$RESULTS/libvirt11.xml"
exit $rc
