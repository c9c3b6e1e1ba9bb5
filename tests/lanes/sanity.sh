#!/usr/bin/env bash
# ansible-test sanity + units from build/ansible_collections/netvirt/libvirt_hooks.
export LANE=sanity; . "$(dirname "$0")/lib.sh"; need_setup
make_coll_tree
cd "$COLL" || exit 1
export PATH=$VENV/bin:$PATH
rc=0
say "sanity: ansible-test $(ansible-test --version) sanity --local --python 3.11"
ansible-test sanity --local --python 3.11 --color no 2>&1 | tee "$RESULTS/sanity.log" || rc=1
echo "sanity: ran $(grep -c "^Running sanity test" "$RESULTS/sanity.log") sanity tests"
say "units: ansible-test units --local --python 3.11"
ansible-test units --local --python 3.11 --color no 2>&1 | tee "$RESULTS/units.log" || rc=1
xml=
for x in tests/output/junit/*units*.xml; do [ -f "$x" ] && xml=$x; done
[ -n "$xml" ] || { echo "LANE ERROR: ansible-test units left no junit result" >&2; exit 1; }
cp "$xml" "$RESULTS/ansible-units.xml"
report_junit ansible-units "$RESULTS/ansible-units.xml"
exit $rc
