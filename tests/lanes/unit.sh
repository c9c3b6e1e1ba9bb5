#!/usr/bin/env bash
# tests/unit. After `make setup` (root, CI): Debian's python3 (pyroute2 0.7.2) and
# the lanes' venv (pyroute2 0.9.7). Otherwise, without root or apt: one venv of
# its own from PyPI (tests/requirements-unit.txt), with whatever python3 is here.
export LANE=unit; . "$(dirname "$0")/lib.sh"
rc=0
# VENV comes from lib.sh
# shellcheck disable=SC2153
if [ -x "$VENV/bin/python" ] && "$DEBPY" -c 'import pyroute2, pytest' 2>/dev/null; then
    say "unit: Debian python3, pyroute2 0.7"
    NVT_EXPECT_PYROUTE2=0.7 run_pytest unit-debian "$DEBPY" "$REPO/tests/unit" || rc=1
    say "unit: venv, pyroute2 0.9"
    NVT_EXPECT_PYROUTE2=0.9 run_pytest unit-venv "$VENV/bin/python" "$REPO/tests/unit" || rc=1
    if [ "$(id -u)" = 0 ]; then
        # the promise of `make test-unit`: nothing in the lane needs root
        say "unit: Debian python3 as an unprivileged user (nobody)"
        scratch=$(mktemp -d) && chown 65534:65534 "$scratch"
        setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$scratch" TMPDIR="$scratch" \
            NVT_EXPECT_PYROUTE2=0.7 "$DEBPY" -m pytest -c "$REPO/tests/pytest.ini" --rootdir "$REPO/tests" \
            --junitxml="$scratch/unit-nobody.xml" "$REPO/tests/unit" || rc=1
        cp "$scratch/unit-nobody.xml" "$RESULTS/" 2>/dev/null || true
        report_junit unit-nobody "$RESULTS/unit-nobody.xml"
        rm -rf "$scratch"
    fi
    exit $rc
fi
UVENV=$BUILD/venv-unit
REQ=$REPO/tests/requirements-unit.txt
want=$(sha256sum <"$REQ" | cut -c1-16)
if [ "$(cat "$UVENV/.nvt-stamp" 2>/dev/null)" != "$want" ]; then
    say "unit: making $UVENV (no root needed)"
    rm -rf "$UVENV"
    "${PYTHON:-python3}" -m venv "$UVENV" || die "cannot make a venv: install python3-venv (or set PYTHON)"
    "$UVENV/bin/python" -m pip install -q -r "$REQ"
    echo "$want" >"$UVENV/.nvt-stamp"
fi
say "unit: $UVENV ($("$UVENV/bin/python" -V))"
run_pytest unit-local "$UVENV/bin/python" "$REPO/tests/unit"
