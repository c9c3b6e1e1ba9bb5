#!/usr/bin/env bash
# tests/libvirt against the machine's libvirtd; the conftest takes the lock.
export LANE=libvirt; . "$(dirname "$0")/lib.sh"; need_root; need_setup
PATH=$VENV/bin:$PATH run_pytest libvirt "$VENV/bin/python" --timeout=900 "$REPO/tests/libvirt"
