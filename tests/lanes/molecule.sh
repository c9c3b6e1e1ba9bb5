#!/usr/bin/env bash
# molecule test for extensions/molecule/default (delegated driver, localhost).
export LANE=molecule; . "$(dirname "$0")/lib.sh"; need_root; need_setup
if [ ! -d "$REPO/extensions/molecule/default" ]; then
    note_empty "no extensions/molecule/default scenario yet: 0 scenarios run"
    exit 0
fi
make_coll_tree
export PATH=$VENV/bin:$PATH ANSIBLE_COLLECTIONS_PATH=$COLLS
cd "$COLL/extensions" || exit 1
say "molecule: default scenario (holding $LIBVIRT_LOCK)"
with_libvirt_lock molecule test -s default
echo "molecule: ran 1 scenario"
