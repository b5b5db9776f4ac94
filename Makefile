# KVM dirty tracking for Linux 5.10: build, boot and test machinery.
# See README.md.  The two commands for users are "make demo" and
# "make check"; the other targets are their steps.

SHELL := /bin/bash
S := scripts
# DEBUG=1 selects the debug kernel (KASAN, lockdep, UBSAN, ...).
# KVMGT=1 selects a kernel with KVMGT built in, as Debian builds it.
export DEBUG KVMGT BOOTS ONLY

.PHONY: all demo check deps fetch tree kernel selftests initramfs vm \
	export series-check checkpatch sparse bench-memslot clean distclean

all: demo

deps:
	@$(S)/deps.sh

fetch: deps
	@$(S)/fetch-base.sh

tree: fetch
	@$(S)/make-tree.sh

kernel: tree
	@$(S)/build-kernel.sh

selftests: kernel
	@$(S)/build-selftests.sh

initramfs: selftests
	@$(S)/mk-initramfs.sh

# Everything, then the suite under all three MMU configurations.
# BOOTS="npt tdp shadow" and ONLY=test,test narrow it down.
check: initramfs
	@[ "$(DEBUG)" = 1 ] || [ "$(KVMGT)" = 1 ] || $(S)/series-check.sh
	@$(S)/check.sh

# The main job: build and show the dirty logging modes on a guest.
demo: initramfs
	@$(S)/demo.sh

# Boot one configuration and show the console (BOOT=npt|tdp|shadow).
vm: initramfs
	@BOOTS=$${BOOT:-npt} $(S)/check.sh

# Export the work tree's commits into patches/.
export:
	@$(S)/export-series.sh

# checkpatch --strict on every patch, and every patch building the
# files it touches (bisectability).
series-check: tree
	@$(S)/series-check.sh

checkpatch: tree
	@$(S)/series-check.sh --checkpatch-only

# sparse (make C=2) on KVM: the warnings the series adds in the files it
# touches, compared with the pinned base.
sparse: kernel
	@$(S)/sparse-check.sh

# Benchmark: memslot metadata per page, pinned base vs series, side by side.
bench-memslot: initramfs
	@$(S)/bench-memslot.sh

clean:
	rm -rf build/out build/out-debug

distclean:
	rm -rf build
