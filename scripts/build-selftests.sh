#!/bin/bash
# Build tools/testing/selftests/kvm from the work tree, statically
# linked, against the work tree's own uapi headers (usr/include, made by
# "make headers" in build-kernel.sh).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ -f "$TREE/usr/include/linux/kvm.h" ] || die "no uapi headers: build the kernel first"
mkdir -p "$OUT/selftests"
export CCACHE_DIR=${CCACHE_DIR:-${HOME:-/root}/.cache/kvm-dirty-ccache}
export CCACHE_BASEDIR=$TREE
cc=gcc
command -v ccache >/dev/null && cc="ccache gcc"
# LDFLAGS given on the command line replaces the Makefile's own, so it
# repeats -pthread and -no-pie.
run_logged "building the KVM selftests" "$OUT/selftests-build.log" \
	make -C "$TREE/tools/testing/selftests/kvm" -j"$JOBS" \
		CC="$cc" OUTPUT="$OUT/selftests" KSFT_KHDR_INSTALL_DONE=1 \
		LDFLAGS="-static -pthread -no-pie"
# Warnings in selftest files the series touches are errors too.
touched=$(git -C "$TREE" diff --name-only "$BASE_TAG" HEAD -- 'tools/testing/selftests/kvm/*' || true)
if [ -n "$touched" ]; then
	warn=$(grep -F -f <(echo "$touched" | sed 's|^tools/testing/selftests/kvm/||') \
		"$OUT/selftests-build.log" | grep -E 'warning:' || true)
	[ -z "$warn" ] || { echo "$warn" >&2; die "compiler warnings in selftests the series touches"; }
fi
