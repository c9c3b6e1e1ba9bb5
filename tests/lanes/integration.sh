#!/usr/bin/env bash
# ansible-test integration (destructive, on this host) for tests/integration/targets/*.
export LANE=integration; . "$(dirname "$0")/lib.sh"; need_root; need_setup
targets=$(find "$REPO/tests/integration/targets" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | wc -l)
if [ "$targets" = 0 ]; then
    note_empty "no targets under tests/integration/targets yet: 0 targets run"
    exit 0
fi
make_coll_tree
cd "$COLL" || exit 1
export PATH=$VENV/bin:$PATH
say "integration: $targets targets (holding $LIBVIRT_LOCK)"
rc=0
with_libvirt_lock ansible-test integration --local --allow-destructive --python 3.11 --color no --continue-on-error \
    2>&1 | tee "$RESULTS/integration.log" || rc=1
echo "integration: ran $(grep -cE '^Running .* integration test role' "$RESULTS/integration.log") of $targets targets"
exit $rc
