#!/bin/bash
# Build the pinned base, without the series, with the test kernel's
# configuration, in the bisect worktree (through ccache), into
# build/out/bench/bzImage-base: the "before" of the benchmarks.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
TREE=$MAIN_TREE

[ -f "$TREE/.config" ] || die "run 'make kernel' first"
bis=$BUILD/bisect
[ -d "$bis" ] || git -C "$TREE" worktree add -q --detach "$bis" "$BASE_TAG"
git -C "$bis" checkout -q --detach "$BASE_TAG"
cp "$TREE/.config" "$bis/.config"
use_ccache "$bis"
mkdir -p "$OUT/bench"
run_logged "building the base kernel" "$OUT/bench-base-build.log" \
	make -C "$bis" -j"$JOBS" CC="$KCC" olddefconfig bzImage
cp "$bis/arch/x86/boot/bzImage" "$OUT/bench/bzImage-base"
