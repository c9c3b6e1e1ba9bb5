# Test entry points; everything lives in tests/lanes/ (see docs/dev/testing.md).
# Run as root on Debian 12: `make test` installs what it needs, then runs every lane.
LANES := tests/lanes
SH := bash

.PHONY: test setup test-unit test-sanity test-kernel test-realkernel test-libvirt \
	test-integration test-molecule test-build lint clean

test:
	@$(SH) $(LANES)/all.sh

setup:
	@$(SH) $(LANES)/setup.sh

test-unit: setup
	@$(SH) $(LANES)/unit.sh
test-sanity: setup
	@$(SH) $(LANES)/sanity.sh
test-kernel: setup
	@$(SH) $(LANES)/kernel.sh
test-realkernel: setup
	@$(SH) $(LANES)/realkernel.sh
test-libvirt: setup
	@$(SH) $(LANES)/libvirt.sh
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
