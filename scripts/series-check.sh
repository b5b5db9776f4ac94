#!/bin/bash
# Checks on the series itself, on the host:
#  1. it applies to the pinned base with zero fuzz (make-tree.sh does that);
#  2. scripts/checkpatch.pl --strict reports no error on any patch
#     (warnings are listed);
#  3. every patch, applied in order, builds the code it touches
#     (bisectability), in a separate worktree so that the main tree's
#     incremental build is not disturbed;
#  4. the whole series builds KVM for 32-bit x86 (ARCH=i386).
#   --checkpatch-only   skip 3.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
TREE=$MAIN_TREE

series_files
if [ ${#SERIES[@]} = 0 ]; then
	log "series check: patches/ is empty, nothing to check"
	exit 0
fi

errors=0
warnings=0
mkdir -p "$OUT"
: >"$OUT/checkpatch.log"
for p in "${SERIES[@]}"; do
	out=$(cd "$TREE" && perl scripts/checkpatch.pl --strict --no-tree --show-types --terse -q "$p" 2>&1)
	e=$(grep -c ': ERROR:' <<<"$out")
	w=$(grep -c ': WARNING:\|: CHECK:' <<<"$out")
	errors=$((errors + e))
	warnings=$((warnings + w))
	{ echo "== $(basename "$p"): $e errors, $w warnings/checks"; [ -n "$out" ] && echo "$out"; } >>"$OUT/checkpatch.log"
	log "checkpatch --strict $(basename "$p"): $e errors, $w warnings/checks"
	[ -n "$out" ] && sed 's/^/    /' <<<"$out" >&2
done
[ $errors = 0 ] || die "checkpatch found $errors errors (build/out/checkpatch.log)"
[ "${1:-}" = --checkpatch-only ] && exit 0

# Bisectability.
bis=$BUILD/bisect
use_ccache "$bis"
if [ ! -d "$bis" ]; then
	git -C "$TREE" worktree prune
	git -C "$TREE" worktree add -q --detach "$bis" "$BASE_TAG" || die "cannot create $bis"
fi
[ -f "$TREE/.config" ] || die "configure the kernel first (make kernel)"
commits=$(git -C "$TREE" rev-list --reverse "$BASE_TAG"..HEAD)
i=0
for c in $commits; do
	i=$((i + 1))
	subj=$(git -C "$TREE" log -1 --format=%s "$c")
	git -C "$bis" checkout -q --detach "$c" || die "checkout of $c failed"
	cp "$TREE/.config" "$bis/.config"
	files=$(git -C "$TREE" diff-tree --no-commit-id --name-only -r "$c")
	targets=()
	# Everything the series touches in the kernel is KVM or is used by it.
	grep -qv '^tools/\|^Documentation/' <<<"$files" && targets+=(arch/x86/kvm/)
	if [ ${#targets[@]} -gt 0 ]; then
		run_logged "bisect $i: building ${targets[*]} at '$subj'" "$OUT/bisect-$i.log" \
			make -C "$bis" -j"$JOBS" CC="$KCC" olddefconfig "${targets[@]}"
		# KVM builds with -Werror (CONFIG_KVM_WERROR); other warnings in
		# touched files count too.
		# shellcheck disable=SC2046
		warnings_in "$OUT/bisect-$i.log" $(touched_files "$c") ||
			die "bisect $i: compiler warnings in files '$subj' touches"
	fi
	if grep -q '^tools/testing/selftests/kvm/' <<<"$files"; then
		run_logged "bisect $i: headers + selftests at '$subj'" "$OUT/bisect-$i-selftests.log" \
			bash -c "make -C '$bis' -s headers && make -C '$bis/tools/testing/selftests/kvm' -j$JOBS CC='$KCC' OUTPUT='$bis/.selftests' KSFT_KHDR_INSTALL_DONE=1"
	fi
	for doc in $(grep '^Documentation/.*\.rst$' <<<"$files"); do
		# The reST must parse without a warning (docutils; the kernel's
		# Sphinx build adds only its own directives on top).
		out=$(/usr/bin/python3 - "$bis/$doc" <<'PY'
import io, sys, docutils.core
err = io.StringIO()
docutils.core.publish_doctree(open(sys.argv[1]).read(), source_path=sys.argv[1],
    settings_overrides={"warning_stream": err, "report_level": 2, "halt_level": 5})
sys.stdout.write(err.getvalue())
PY
)
		[ -z "$out" ] || { echo "$out" >&2; die "bisect $i: $doc does not parse cleanly"; }
		log "bisect $i: $doc parses without warnings"
	done
done

# 32-bit hosts: the whole series builds KVM for ARCH=i386 (Debian ships
# KVM in its 686-pae kernel).  Compile-tested only: nothing here runs a
# 32-bit KVM host.
i386=$BUILD/i386
use_ccache "$i386"
if [ ! -d "$i386" ]; then
	git -C "$TREE" worktree prune
	git -C "$TREE" worktree add -q --detach "$i386" HEAD || die "cannot create $i386"
fi
git -C "$i386" checkout -q --detach "$(git -C "$TREE" rev-parse HEAD)" || die "checkout in $i386 failed"
config_fragments "$i386" i386 "$TOP/config/kvm-lean.config"
for opt in CONFIG_X86_32 CONFIG_KVM CONFIG_KVM_AMD CONFIG_KVM_INTEL CONFIG_KVM_WERROR; do
	grep -qx "$opt=y" "$i386/.config" || die "i386 config: $opt is not y"
done
run_logged "i386: building arch/x86/kvm/ (ARCH=i386)" "$OUT/i386-kvm.log" \
	make -C "$i386" -j"$JOBS" ARCH=i386 CC="$KCC" arch/x86/kvm/
# shellcheck disable=SC2046
warnings_in "$OUT/i386-kvm.log" $(touched_files) ||
	die "i386: compiler warnings in files the series touches"

# The oldest base the series serves: it applies and KVM builds there too.
"$TOP/scripts/old-base-check.sh"

log "series check: ${#SERIES[@]} patches apply, checkpatch clean of errors ($warnings warnings/checks), each builds, KVM builds for i386 and on $OLD_BASE_VERSION"
