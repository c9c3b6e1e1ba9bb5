#!/usr/bin/env bash
# Runs inside the virtme-ng guest (see realkernel.sh). The rc file proves we got here.
# Default: Debian python runs tests/kernel + tests/realkernel; the 0.9 venv only
# tests/realkernel (it ran tests/kernel on the host already; TCG is slow).
export LANE=realkernel; . "$(dirname "$0")/lib.sh"
export NVT_REALKERNEL=1
cd "$REPO" || exit 1
echo "inside: $(uname -r), pythons: ${NVT_REALKERNEL_PYTHONS:=debian venv}"
rc=0
for which in $NVT_REALKERNEL_PYTHONS; do
    case $which in
        debian) py=$DEBPY; paths=(tests/kernel tests/realkernel) ;;
        # pyroute2 0.9 on this kernel: the core paths (ansible-driven tests use the
        # venv's ansible whichever python runs pytest, so they run once, above)
        venv) py=$VENV/bin/python
              paths=(tests/realkernel/test_shape_native.py tests/realkernel/test_vlan_core.py
                     tests/realkernel/test_vlan_traffic.py
                     tests/realkernel/test_agent_vlan_hotplug.py) ;;
        *) die "bad python $which" ;;
    esac
    extra=()
    if [ $# -eq 0 ]; then
        # Rate accuracy needs a CPU that can carry 10 Mbit/s: TCG cannot, so those
        # tests run in the host kernel lane only (bench/ measures this kernel).
        extra=(--ignore=tests/kernel/test_shape_accuracy.py)
        echo "realkernel: not here: tests/kernel/test_shape_accuracy.py (emulated CPU too slow; runs in the kernel lane)"
        # ~1 min under TCG for what the host kernel shows alike (netlink dumps, no VLAN feature)
        extra+=(--ignore=tests/kernel/test_dump_interrupted.py)
        echo "realkernel: not here: tests/kernel/test_dump_interrupted.py (link churn under TCG is slow; runs in the kernel lane)"
        if [ -z "${NVT_REALKERNEL_SLOW:-}" ]; then
            extra+=(-m "not slow_vm")
            echo "realkernel: not here: slow_vm tests (ansible-playbook under TCG; NVT_REALKERNEL_SLOW=1 runs them)"
        fi
    else
        paths=("$@")
    fi
    say "realkernel: $which python: ${paths[*]}"
    run_pytest "realkernel-$which" "$py" --timeout=1200 "${extra[@]}" "${paths[@]}" || rc=1
done
echo "$rc" >"$RESULTS/realkernel.rc"
exit $rc
