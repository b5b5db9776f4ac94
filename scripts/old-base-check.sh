#!/bin/bash
# The oldest base the series serves, 5.10.223-1 (Debian 11's last point
# release): patches/ applies there with "git am", exactly, and KVM builds
# with the lean configuration, without a compiler warning in the files
# the series touches.  No boots: the tests run on the base
# (lib.sh's BASE_VERSION).  A tree of its own, build/linux-old.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

old=$BUILD/linux-old
series_files
"$TOP/scripts/fetch-base.sh" --old
if ! git -C "$old" rev-parse -q --verify "refs/tags/$OLD_BASE_TAG" >/dev/null 2>&1; then
	base_git_tree "$old" "$OLD_BASE_VERSION" "$OLD_BASE_TAG"
fi

git -C "$old" am --abort >/dev/null 2>&1 || true
git -C "$old" reset -q --hard "$OLD_BASE_TAG"
for p in "${SERIES[@]}"; do
	git -C "$old" am -q --whitespace=nowarn "$p" >"$OUT/am-old.log" 2>&1 ||
		die "$(basename "$p") does not apply to $OLD_BASE_VERSION ($OUT/am-old.log)"
done
log "old base: ${#SERIES[@]} patches apply to $OLD_BASE_VERSION with git am"

use_ccache "$old"
config_fragments "$old" "" "$TOP/config/kvm-lean.config"
for opt in CONFIG_KVM CONFIG_KVM_AMD CONFIG_KVM_INTEL CONFIG_KVM_WERROR; do
	grep -qx "$opt=y" "$old/.config" || die "old base config: $opt is not y"
done
run_logged "old base: building arch/x86/kvm/ on $OLD_BASE_VERSION with the series" \
	"$OUT/old-base-kvm.log" make -C "$old" -j"$JOBS" CC="$KCC" arch/x86/kvm/
# shellcheck disable=SC2046
warnings_in "$OUT/old-base-kvm.log" $(touched_files) ||
	die "old base: compiler warnings in files the series touches"
log "old base: the series applies to $OLD_BASE_VERSION and KVM builds there"
