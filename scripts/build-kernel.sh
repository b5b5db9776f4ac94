#!/bin/bash
# Build the lean test kernel in the work tree (in place, incrementally,
# through ccache) and the uapi headers the selftests compile against.
#   DEBUG=1   also merge config/kvm-debug.config (KASAN, lockdep, ...)
#   KVMGT=1   also merge config/kvm-kvmgt.config (i915, GVT-g, KVMGT)
#   FAULT=1   the series with tests/fault/*.patch, in build/linux-fault
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ -d "$MAIN_TREE/.git" ] || die "no work tree: run 'make tree' first"
if [ "$TREE" != "$MAIN_TREE" ]; then
	# The debug worktree follows the main work tree's HEAD.
	if [ ! -e "$TREE/.git" ]; then
		git -C "$MAIN_TREE" worktree prune
		git -C "$MAIN_TREE" worktree add -q --detach "$TREE" HEAD
	fi
	git -C "$TREE" checkout -q -f --detach "$(git -C "$MAIN_TREE" rev-parse HEAD)"
	if [ "${FAULT:-0}" = 1 ]; then
		# The fault injection on top, uncommitted: a test kernel only.
		for p in "$TOP"/tests/fault/*.patch; do
			git -C "$TREE" apply "$p" || die "tests/fault: $p does not apply"
		done
		log "fault-injected kernel: $(ls "$TOP"/tests/fault/*.patch | xargs -n1 basename)"
	fi
fi
mkdir -p "$OUT"

use_ccache "$TREE"

frags=("$TOP/config/kvm-lean.config")
[ "${DEBUG:-0}" = 1 ] && frags+=("$TOP/config/kvm-debug.config")
[ "${KVMGT:-0}" = 1 ] && frags+=("$TOP/config/kvm-kvmgt.config")
config_fragments "$TREE" "" "${frags[@]}"
if [ "$RECONFIGURED" = 1 ]; then
	# Every option the fragments ask for must have taken effect; a
	# later fragment overrides an earlier one.
	bad=0
	declare -A want_opt=()
	while IFS= read -r line; do
		case "$line" in ''|\#*) continue ;; esac
		want_opt[${line%%=*}]=${line#*=}
	done < <(cat "${frags[@]}")
	for opt in "${!want_opt[@]}"; do
		val=${want_opt[$opt]}
		if [ "$val" = n ]; then
			grep -qx "$opt=y" "$TREE/.config" && { echo "config: $opt is y, wanted n" >&2; bad=1; }
		else
			grep -qxF "$opt=$val" "$TREE/.config" || { echo "config: $opt=$val did not take effect (have: $(grep "^$opt=\|^# $opt " "$TREE/.config"))" >&2; bad=1; }
		fi
	done
	[ $bad = 0 ] || { rm -f "$TREE/.config.fragments"
		die "kernel configuration is not what the fragments ask for"; }
fi

run_logged "building the kernel (make -j$JOBS bzImage)" "$OUT/kernel-build.log" \
	make -C "$TREE" -j"$JOBS" CC="$KCC" bzImage
run_logged "installing uapi headers" "$OUT/headers.log" \
	make -C "$TREE" -j"$JOBS" headers

# Warnings in files that the series touches are errors.  (KVM itself is
# already built with -Werror through CONFIG_KVM_WERROR.)
# shellcheck disable=SC2046
warnings_in "$OUT/kernel-build.log" $(touched_files) ||
	die "compiler warnings in files the series touches"
cp "$TREE/arch/x86/boot/bzImage" "$OUT/bzImage"
# Its symbols, for the state of a hung test VM (qemu.hang_state()).
cp "$TREE/System.map" "$OUT/System.map"
log "kernel: $(cat "$TREE/include/config/kernel.release") ($(stat -c %s "$OUT/bzImage") bytes)"
