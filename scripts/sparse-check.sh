#!/bin/bash
# sparse (make C=2) over KVM, on the pinned base and on the series, in
# the bisect worktree; reports the warnings the series adds in the files
# it touches (line numbers ignored).  Fails if there is any.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
TREE=$MAIN_TREE

command -v sparse >/dev/null || {
	[ "$(id -u)" = 0 ] || die "sparse is not installed"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends sparse >/dev/null
}
bis=$BUILD/bisect
[ -d "$bis" ] || git -C "$TREE" worktree add -q --detach "$bis" "$BASE_TAG"
touched=$(touched_files)
run_sparse() {
	git -C "$bis" checkout -q --detach "$1"
	cp "$TREE/.config" "$bis/.config"
	make -C "$bis" -s olddefconfig
	make -C "$bis" -j"$JOBS" C=2 arch/x86/kvm/ 2>&1 >/dev/null |
		grep -E '^[^ ]+:[0-9]+:[0-9]+: (warning|error):' |
		sed -E 's|^arch/x86/kvm/\.\./\.\./\.\./||; s|:[0-9]+:[0-9]+:|:|' | sort -u
}
run_logged "sparse on the base" "$OUT/sparse-base.log" bash -c "$(declare -f run_sparse); bis='$bis' TREE='$TREE' JOBS=$JOBS run_sparse $BASE_TAG" 
run_logged "sparse on the series" "$OUT/sparse-series.log" bash -c "$(declare -f run_sparse); bis='$bis' TREE='$TREE' JOBS=$JOBS run_sparse $(git -C "$TREE" rev-parse HEAD)"
new=$(comm -13 "$OUT/sparse-base.log" "$OUT/sparse-series.log" | grep -F -f <(echo "$touched") || true)
log "sparse: $(wc -l <"$OUT/sparse-base.log") warnings on the base, $(wc -l <"$OUT/sparse-series.log") with the series; in files the series touches, new:"
if [ -n "$new" ]; then
	echo "$new"
	exit 1
fi
echo "  (none)"
