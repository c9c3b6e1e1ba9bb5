#!/usr/bin/env bash
# `make test`: setup, then every lane in turn; goes on past a failing lane,
# prints one summary line per lane and exits non-zero if any failed.
export LANE=all; . "$(dirname "$0")/lib.sh"
LANES=${NVT_LANES:-lint build unit sanity kernel realkernel libvirt libvirt11 integration molecule}
export PYTHONUNBUFFERED=1
here=$(dirname "$0")
rm -f "$RESULTS"/*.xml "$RESULTS"/*.note "$RESULTS"/*.log "$RESULTS"/realkernel.rc
summary=() failed=0 t_all=$SECONDS

run_lane() {  # NAME SCRIPT
    local t0=$SECONDS rc=0 status
    say "LANE $1: start $(date -u +%H:%M:%S)"
    bash "$2" || rc=$?
    local note=""
    if [ "$rc" != 0 ]; then status=FAIL failed=$((failed + 1))
    else status=PASS; fi
    [ ! -f "$RESULTS/$1.note" ] || note=" (empty: $(sed 's/^EMPTY: //' "$RESULTS/$1.note"))"
    summary+=("$(printf 'lane %-12s %-5s %5ss' "$1" "$status" $((SECONDS - t0)))$note")
    [ "$rc" = 0 ]
}

if run_lane setup "$here/setup.sh"; then
    for lane in $LANES; do run_lane "$lane" "$here/$lane.sh" || true; done
else
    echo "setup failed: lanes not run" >&2
fi

say "SUMMARY (total $((SECONDS - t_all))s)"
printf '%s\n' "${summary[@]}"
"$DEBPY" - "$RESULTS" <<'PY'
import glob, sys, xml.etree.ElementTree as ET
t = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
for path in glob.glob(sys.argv[1] + "/*.xml"):
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        continue
    for s in ([root] if root.tag == "testsuite" else root.iter("testsuite")):
        for k in t:
            t[k] += int(s.get(k, 0))
bad = t["failures"] + t["errors"]
print(f"pytest: {t['tests'] - bad - t['skipped']} passed, {bad} failed, {t['skipped']} skipped")
PY
if [ "$failed" != 0 ]; then echo "$failed LANE(S) FAILED" >&2; exit 1; fi
echo "ALL LANES PASSED"
