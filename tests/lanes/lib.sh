# shellcheck shell=bash
# Common settings for the lane runners; sourced, not executed.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${NVT_BUILD:-$REPO/build}
VENV=$BUILD/venv                   # ansible-core 2.19, pyroute2 0.9.7, virtme-ng
DEBPY=/usr/bin/python3             # Debian's python3 + python3-pyroute2 0.7.2
RESULTS=$BUILD/results
# per lane: lanes may run at the same time (one per developer)
COLL=$BUILD/tree-${LANE:-x}/ansible_collections/netvirt/libvirt_hooks
export COLLS=${COLL%/ansible_collections/*}   # for ANSIBLE_COLLECTIONS_PATH
LIBVIRT_LOCK=/run/nvt-libvirt.lock
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
mkdir -p "$RESULTS"

say() { printf '\n=== %s\n' "$*"; }
die() { printf 'LANE ERROR: %s\n' "$*" >&2; exit 1; }
need_root() { [ "$(id -u)" = 0 ] || die "this lane must run as root"; }
need_setup() { [ -x "$VENV/bin/python" ] || die "no $VENV: run 'make setup' first"; }

# pytest with a count from its junit file; exit 5 (no tests) is a failure.
# usage: run_pytest LABEL PYTHON [pytest args...]
run_pytest() {
    local label=$1 py=$2; shift 2
    local xml=$RESULTS/$label.xml rc=0
    rm -f "$xml"
    "$py" -m pytest -c "$REPO/tests/pytest.ini" --rootdir "$REPO/tests" \
        --junitxml="$xml" "$@" || rc=$?
    report_junit "$label" "$xml"
    [ "$rc" = 5 ] && { echo "LANE ERROR: $label collected no tests" >&2; return 1; }
    return "$rc"
}

report_junit() {  # LABEL XML: prints "LABEL: ran N tests (...)"
    "$DEBPY" - "$1" "$2" <<'PY'
import sys, xml.etree.ElementTree as ET
label, path = sys.argv[1:3]
try:
    root = ET.parse(path).getroot()
except (OSError, ET.ParseError) as e:
    print(f"{label}: no junit result ({e})"); sys.exit(0)
suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
n = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
print(f"{label}: ran {n['tests']} tests ({n['failures']} failed, {n['errors']} errors, {n['skipped']} skipped)")
PY
}

# Lanes that have nothing to run by design (no targets/scenario yet) say so here.
note_empty() { echo "EMPTY: $*" | tee "$RESULTS/$LANE.note"; }

# ansible_collections/netvirt/libvirt_hooks: a fresh copy of the files git sees
# (tracked + untracked-not-ignored) with its own index, since ansible-test
# needs that path layout and checks only files git knows.
make_coll_tree() {
    rm -rf "$COLL" && mkdir -p "$COLL"
    (cd "$REPO" && git ls-files -z --cached --others --exclude-standard --deduplicate \
        | "$DEBPY" -c 'import os,sys; sys.stdout.write("".join(p+"\0" for p in sys.stdin.read().split("\0") if p and os.path.lexists(p)))' \
        | tar --null -T - -cf -) | tar -C "$COLL" -xf -
    (cd "$COLL" && git init -q && git add -A)
}

# Run a command holding the libvirt lock; -o: the command and its daemons
# (libvirtd -d) must not inherit the lock fd, or it is never released.
with_libvirt_lock() {
    flock -n "$LIBVIRT_LOCK" true || echo "waiting up to ${NVT_LIBVIRT_LOCK_TIMEOUT:-1800}s for $LIBVIRT_LOCK"
    flock -o -w "${NVT_LIBVIRT_LOCK_TIMEOUT:-1800}" "$LIBVIRT_LOCK" \
        env NVT_LIBVIRT_LOCK_HELD=1 "$@"
}

debian_kver() {  # newest Debian kernel with an image in /boot (for virtme-ng)
    local d k=""
    for d in /lib/modules/*-amd64; do
        [ -f "/boot/vmlinuz-${d##*/}" ] && k=${d##*/}
    done
    [ -n "$k" ] || die "no Debian kernel in /boot (apt linux-image-amd64): run make setup"
    echo "$k"
}
