# Test entry points; everything lives in tests/lanes/ (see docs/dev/testing.md).
# Run as root on Debian 12: `make test` installs what it needs, then runs every lane.
LANES := tests/lanes
SH := bash

.PHONY: help demo demo-clean test setup test-unit test-sanity test-kernel test-realkernel test-libvirt test-libvirt11 \
	test-integration test-molecule test-build lint clean

help:
	@echo "make demo        show the product working (libvirtd, bridge, site.yml, a shaped guest)"
	@echo "make demo-clean  remove what the demo made"
	@echo "make test        set up and run every test lane (docs/dev/testing.md)"
	@echo "make test-LANE   one lane: unit sanity kernel realkernel libvirt libvirt11 integration molecule build; make lint"

# The product working on this machine: libvirtd, a bridge, site.yml, a shaped guest.
demo:
	@$(SH) demo/demo.sh
demo-clean:
	@$(SH) demo/clean.sh

test:
	@$(SH) $(LANES)/all.sh

setup:
	@$(SH) $(LANES)/setup.sh

# no root, no apt: without `make setup` it makes a venv of its own (tests/lanes/unit.sh)
test-unit:
	@$(SH) $(LANES)/unit.sh
test-sanity: setup
	@$(SH) $(LANES)/sanity.sh
test-kernel: setup
	@$(SH) $(LANES)/kernel.sh
test-realkernel: setup
	@$(SH) $(LANES)/realkernel.sh
test-libvirt: setup
	@$(SH) $(LANES)/libvirt.sh
test-libvirt11: setup
	@$(SH) $(LANES)/libvirt11.sh
test-integration: setup
	@$(SH) $(LANES)/integration.sh
test-molecule: setup
	@$(SH) $(LANES)/molecule.sh
test-build: setup
	@$(SH) $(LANES)/build.sh
lint: setup
	@$(SH) $(LANES)/lint.sh

clean:
	rm -rf build
