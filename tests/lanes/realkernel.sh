#!/usr/bin/env bash
# One virtme-ng boot of Debian's kernel running tests/kernel + tests/realkernel.
# Arguments, if any, replace those pytest paths (e.g. tests/realkernel -k vlan).
export LANE=realkernel; . "$(dirname "$0")/lib.sh"; need_root; need_setup
KVER=$(debian_kver)
rm -f "$RESULTS"/realkernel-*.xml "$RESULTS/realkernel.rc"
say "realkernel: booting $KVER under virtme-ng (TCG)"
rc=0
# --disable-kvm: /dev/kvm here cannot run a stock kernel; --force-9p: Debian's
# virtiofsd fails with vng. Writes outside --rwdir are thrown away.
PATH=$VENV/bin:$PATH timeout "${NVT_REALKERNEL_TIMEOUT:-2400}" vng --disable-kvm --force-9p \
    --memory "${NVT_REALKERNEL_MEMORY:-2G}" --cpus "${NVT_REALKERNEL_CPUS:-2}" \
    --rwdir="$REPO" --rwdir="$BUILD" --run "/boot/vmlinuz-$KVER" \
    --exec "NVT_REALKERNEL_SLOW='${NVT_REALKERNEL_SLOW:-}' NVT_REALKERNEL_PYTHONS='${NVT_REALKERNEL_PYTHONS:-debian venv}' bash $REPO/tests/lanes/realkernel-inner.sh ${*@Q}" </dev/null 2>&1 | cat || rc=$?
# (| cat: vng's console handling truncates a log file given as stdout)
for x in "$RESULTS"/realkernel-*.xml; do
    if [ -e "$x" ]; then report_junit "$(basename "$x" .xml)" "$x"; fi
done
[ -f "$RESULTS/realkernel.rc" ] || die "no results came back from the VM (vng rc=$rc)"
echo "realkernel: vng rc=$rc, inner rc=$(cat "$RESULTS/realkernel.rc")"
[ "$rc" = 0 ] && [ "$(cat "$RESULTS/realkernel.rc")" = 0 ]
