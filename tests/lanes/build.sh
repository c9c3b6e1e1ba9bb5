#!/usr/bin/env bash
# Build the collection tarball, install it elsewhere, list its plugins from there.
export LANE=build; . "$(dirname "$0")/lib.sh"; need_setup
make_coll_tree
export PATH=$VENV/bin:$PATH
out=$BUILD/dist inst=$BUILD/installed
rm -rf "$out" "$inst"
say "build: ansible-galaxy collection build"
ansible-galaxy collection build --output-path "$out" "$COLL"
tarball=$(ls "$out"/netvirt-libvirt_hooks-*.tar.gz)
ansible-galaxy collection install --offline -p "$inst" "$tarball"
say "build: ansible-doc -l netvirt.libvirt_hooks (from $inst)"
listed=$(ANSIBLE_COLLECTIONS_PATH=$inst ansible-doc -l netvirt.libvirt_hooks)
echo "$listed"
rc=0 n=0
for m in "$COLL"/plugins/modules/*.py; do
    [ -e "$m" ] || continue
    name=netvirt.libvirt_hooks.$(basename "$m" .py)
    n=$((n + 1))
    grep -q "^$name " <<<"$listed" || { echo "build: $name missing from the installed collection" >&2; rc=1; }
done
echo "build: $n modules checked in $(basename "$tarball")"
exit $rc
