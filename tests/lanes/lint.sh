#!/usr/bin/env bash
# ansible-lint (production profile) and antsibull-changelog lint, on the checkout.
export LANE=lint; . "$(dirname "$0")/lib.sh"; need_setup
make_coll_tree  # so playbooks resolve netvirt.libvirt_hooks.* without Galaxy
cd "$REPO" || exit 1
export PATH=$VENV/bin:$PATH ANSIBLE_COLLECTIONS_PATH=$COLLS NO_COLOR=1
rc=0
say "lint: ansible-lint $(ansible-lint --version 2>/dev/null | head -1 | awk '{print $2}') --profile production"
ansible-lint --profile production --offline --nocolor || rc=1
say "lint: antsibull-changelog lint"
antsibull-changelog lint && echo "changelog: ok" || rc=1
exit $rc
