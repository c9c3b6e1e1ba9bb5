#!/usr/bin/env bash
# tests/unit under Debian's python3 (pyroute2 0.7.2) and the venv (pyroute2 0.9.7).
export LANE=unit; . "$(dirname "$0")/lib.sh"; need_setup
rc=0
say "unit: Debian python3, pyroute2 0.7"
NVT_EXPECT_PYROUTE2=0.7 run_pytest unit-debian "$DEBPY" "$REPO/tests/unit" || rc=1
say "unit: venv, pyroute2 0.9"
NVT_EXPECT_PYROUTE2=0.9 run_pytest unit-venv "$VENV/bin/python" "$REPO/tests/unit" || rc=1
exit $rc
