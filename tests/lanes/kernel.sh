#!/usr/bin/env bash
# tests/kernel as root on the host kernel, with both pyroute2 versions.
export LANE=kernel; . "$(dirname "$0")/lib.sh"; need_root; need_setup
rc=0
say "kernel: host $(uname -r), Debian python3, pyroute2 0.7"
run_pytest kernel-debian "$DEBPY" "$REPO/tests/kernel" || rc=1
say "kernel: host $(uname -r), venv, pyroute2 0.9"
run_pytest kernel-venv "$VENV/bin/python" "$REPO/tests/kernel" || rc=1
exit $rc
