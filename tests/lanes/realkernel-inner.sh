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
        venv) py=$VENV/bin/python; paths=(tests/realkernel) ;;
        *) die "bad python $which" ;;
    esac
    [ $# -eq 0 ] || paths=("$@")
    say "realkernel: $which python: ${paths[*]}"
    run_pytest "realkernel-$which" "$py" --timeout=1200 "${paths[@]}" || rc=1
done
echo "$rc" >"$RESULTS/realkernel.rc"
exit $rc
