# KVM dirty tracking for Linux 5.10: build, boot and test machinery.
# See README.md.  The two commands for users are "make demo" and
# "make check"; the other targets are their steps.

SHELL := /bin/bash
S := scripts
KVMTEST := PYTHONPATH=$(S) python3 -m kvmtest
# DEBUG=1 selects the debug kernel (KASAN, lockdep, UBSAN, ...).
# KVMGT=1 selects a kernel with KVMGT built in, as Debian builds it.
# FAULT=1 selects the fault-injected kernel (make check-fault).
# MMUS="npt tdp shadow" (which MMU configurations), GROUP=suite|stress
# (which test group each boots), ONLY=test,test (only these tests).
# EMULATORS="qemu7fix qemu7 qemu10": the QEMU builds that run the AMD test
# VM (default qemu7fix, Debian 12's 7.2 rebuilt with qemu/*.patch; qemu7
# is Debian 12's 7.2 as installed, qemu10 Debian 13's 10.0).
# REPEAT=N: every test N times in its boot, every run counted, and a table
# of rates at the end.
export DEBUG KVMGT FAULT MMUS GROUP ONLY MMU KERNEL QUICK BENCH BENCH_COUNTS BENCH_KERNELS BENCH_SIZES EMULATORS REPEAT

.PHONY: all demo check deps fetch tree kernel selftests initramfs vm \
	export series-check checkpatch sparse bench-memslot harness-test base-kernel debian11 migrate mainline bench \
	dkms debian11-dkms check-dkms check-fault exports-check qemu10 qemu7fix qemu7race qtest qemu10-client clean distclean

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
	@$(S)/mk-migrate-initramfs.sh

# The pinned base without the series, built like the test kernel
# (build/out/bench/bzImage-base), for make bench-memslot.
base-kernel: kernel
	@$(S)/build-base-kernel.sh

# Stock Debian kernels, unmodified, KVM as modules (pinned, checksummed,
# cached in build/cache/): Debian 11's 5.10.223-1 (the base without the
# series: QEMU must refuse the ring there) and Debian 12's 6.1
# (mainline's ring, the benchmarks' anchor).
debian11: fetch
	@$(S)/fetch-kernel.sh debian11

mainline: deps
	@$(S)/fetch-kernel.sh mainline

# Debian 13's QEMU 10.0 in a cached Debian 13 root (pinned, checksummed):
# the second emulator of the AMD test VM.  Every target that boots needs
# it when EMULATORS names it.
qemu10: deps
	@$(S)/deps.sh qemu10
	@$(S)/fetch-qemu10.sh
# Debian 12's QEMU 7.2 rebuilt from its source package with qemu/*.patch
# (the fix of the test VM's own failures, README): the emulator qemu7fix.
qemu7fix: deps
	@$(S)/deps.sh qemu7fix
	@$(S)/build-qemu7fix.sh

# Diagnostic: the same 7.2 with qemu/diag/*.patch instead of the fix
# (the race's window widened by QEMU_IGNNE_RACE_NS=N), EMULATORS=qemu7race.
qemu7race: deps
	@$(S)/deps.sh qemu7fix
	@$(S)/build-qemu7fix.sh qemu7race
# Debian 13's QEMU 10.0 as a second VMM in the test VM (make migrate):
# build/out/qemu10-client.cpio.gz.
qemu10-client: qemu10
	@$(S)/mk-qemu10-client.sh
# QEMU's own migration-test, built in that tree, for the test VM
# (tests/migrate/qemu-migration-test): build/out/qtest.cpio.gz.  It needs
# the tree of qemu7fix even when EMULATORS names other emulators.
qtest: qemu7fix
	@$(S)/mk-qtest-archive.sh
EMULATORS_USED := $(or $(strip $(EMULATORS)),qemu7fix)
EMULATOR_DEPS := $(if $(filter qemu10,$(EMULATORS_USED)),qemu10) \
		 $(if $(filter qemu7fix,$(EMULATORS_USED)),qemu7fix) \
		 $(if $(filter qemu7race,$(EMULATORS_USED)),qemu7race)

# The harness's own tests first (recorded consoles, seconds, no QEMU),
# everything built, then the suite under all three MMU configurations and
# the Intel machine, Debian 11's stock kernel (QEMU refuses the ring) and
# Debian 11's kernel with the DKMS-built KVM; build/out/results.tap holds
# the run.  The debug and KVMGT variants boot the series kernel only.
# Every kernel a subcommand boots is a prerequisite of its target
# (KERNELS in scripts/kvmtest/suite.py names each kernel's target; the
# harness tests check both against "make -n").
ifeq ($(DEBUG)$(KVMGT)$(FAULT),)
CHECK_EXTRA := series-check exports-check debian11 debian11-dkms
# The stress group runs its nested-paging tests on Debian 12's 6.1 too.
CHECK_EXTRA += $(if $(filter stress,$(GROUP)),mainline)
endif
check: harness-test initramfs qtest $(CHECK_EXTRA) $(EMULATOR_DEPS)
	@$(KVMTEST) check

harness-test:
	@$(KVMTEST) selftest

# The migration matrix: QEMU 7.2 live-migrates an L2 guest with one and
# two vCPUs (ring, small ring, bitmap) under all three AMD MMUs, and the
# base kernel refuses the ring.  make check runs the one-vCPU migrations
# under shadow paging only.
migrate: initramfs qtest qemu10-client debian11 $(EMULATOR_DEPS)
	@GROUP=migrate MMUS="npt tdp shadow" $(KVMTEST) check

# The migration test's power: the series with a fault injection that is
# never part of it (tests/fault/*.patch, in build/linux-fault) loses one
# dirty page in N during a migration, and the migration must fail naming
# the lost pages; with the fault off it passes (all three AMD MMUs).
check-fault: export FAULT := 1
check-fault: initramfs $(EMULATOR_DEPS)
	@GROUP=fault MMUS="npt tdp shadow" $(KVMTEST) check

# The series as a DKMS package for Debian 11's kernels, which applies
# patches/ to each kernel's own linux-source-5.10 at build time:
# build/out/dkms/kvm-dirty-ring-dkms_*_all.deb and its source package.
dkms: tree
	@$(S)/deps.sh dkms
	@$(S)/mk-dkms.sh

# The package's life in a Debian 11 root (debootstrap): installed on
# 5.10.0-32, a kernel upgrade to 5.10.0-46 before and after its source,
# an in-place upload, apt remove and purge, the source package rebuilt
# with Debian 11's tools; Debian 11's vmlinuz and the DKMS-built modules
# for the test VM, build/out/debian11-dkms/.
debian11-dkms: dkms debian11
	@$(S)/dkms-root.sh

# Debian 11's own kernel booted with those modules runs the dirty ring,
# dirty-log and clear-log tests and QEMU's migrations on the ring under
# the three AMD MMUs and, under Bochs, on Intel with EPT and PML (make
# check: under shadow paging only).
check-dkms: initramfs qtest debian11-dkms $(EMULATOR_DEPS)
	@GROUP=dkms MMUS="npt tdp shadow pml" $(KVMTEST) check

# The main job: build and show the dirty logging modes on a guest.
demo: initramfs $(EMULATOR_DEPS)
	@$(KVMTEST) demo

# Boot one MMU configuration with its console on the terminal
# (MMU=npt|tdp|shadow, GROUP, ONLY).
vm: initramfs qtest $(EMULATOR_DEPS)
	@$(KVMTEST) vm

# Export the work tree's commits into patches/.
export:
	@$(S)/export-series.sh

# Every symbol KVM takes from the rest of the kernel is exported by
# Debian 11's 5.10.223-1 (a modular kvm.ko links; the test kernel has
# KVM built in).
exports-check: kernel
	@$(S)/exports-check.sh

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

# Benchmark: collect and re-arm of the dirty logging modes (bitmap,
# clear-log as mainline's test and as QEMU clear, the ring re-armed once
# per iteration and harvested as QEMU does) against the memory size, 256
# MiB to 256 GiB (BENCH=fractions: against the dirty fraction), on the
# series and the base, and on the like-for-like distro kernels (Debian 11
# with the DKMS modules, its stock KVM, Debian 12's 6.1), under the three
# AMD MMUs, with op counts from ftrace; writes build/out/bench/.  QUICK=1:
# two cells; BENCH_KERNELS, MMUS narrow it.
bench: initramfs base-kernel mainline debian11 debian11-dkms $(EMULATOR_DEPS)
	@$(S)/deps.sh bench
	@$(KVMTEST) bench

# Benchmark: memslot metadata per page, pinned base vs series, side by side.
bench-memslot: initramfs base-kernel $(EMULATOR_DEPS)
	@$(KVMTEST) bench-memslot

clean:
	rm -rf build/out build/out-debug build/out-kvmgt build/out-fault

distclean:
	rm -rf build
