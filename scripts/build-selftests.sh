#!/bin/bash
# Build tools/testing/selftests/kvm from the work tree, statically
# linked, against the work tree's own uapi headers (usr/include, made by
# "make headers" in build-kernel.sh).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ -f "$TREE/usr/include/linux/kvm.h" ] || die "no uapi headers: build the kernel first"
mkdir -p "$OUT/selftests"
use_ccache "$TREE"
# LDFLAGS given on the command line replaces the Makefile's own, so it
# repeats -pthread and -no-pie.
run_logged "building the KVM selftests" "$OUT/selftests-build.log" \
	make -C "$TREE/tools/testing/selftests/kvm" -j"$JOBS" \
		CC="$KCC" OUTPUT="$OUT/selftests" KSFT_KHDR_INSTALL_DONE=1 \
		LDFLAGS="-static -pthread -no-pie"
# Warnings in selftest files the series touches are errors too.
# shellcheck disable=SC2046
warnings_in "$OUT/selftests-build.log" $(git -C "$TREE" diff --name-only "$BASE_TAG" HEAD \
	-- 'tools/testing/selftests/kvm/*' | sed 's|^tools/testing/selftests/kvm/||') ||
	die "compiler warnings in selftests the series touches"
