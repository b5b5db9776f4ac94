#!/bin/bash
# Pack busybox, the statically linked selftests, the suite list and the
# init script into build/out/initramfs.cpio.gz.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

bb=/bin/busybox
[ -x "$bb" ] && "$bb" --list >/dev/null 2>&1 || die "busybox-static is not installed"
file -L "$bb" 2>/dev/null | grep -q 'statically linked' || true

root=$OUT/initramfs
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp,tests,etc}
cp "$bb" "$root/bin/busybox"
for app in $("$bb" --list); do
	[ "$app" = busybox ] || ln -sf busybox "$root/bin/$app"
done
cp "$TOP/tests/init.sh" "$root/init"
chmod +x "$root/init"
cp "$TOP/tests/suite.list" "$root/tests/suite.list"

sel=$OUT/selftests
n=0
while read -r name boots tmo cmd; do
	case "$name" in ''|\#*) continue ;; esac
	bin=${cmd%% *}
	[ "$bin" = '!skip' ] && continue
	[ -e "$root/tests/$bin" ] && continue
	src=$sel/$bin
	[ -x "$src" ] || src=$sel/x86_64/$bin
	[ -x "$src" ] || die "suite.list names $bin, which was not built"
	cp "$src" "$root/tests/$bin"
	n=$((n + 1))
done <"$TOP/tests/suite.list"
(cd "$root" && find . | sort | cpio -o -H newc --quiet -R 0:0 | gzip -1) >"$OUT/initramfs.cpio.gz"
log "initramfs: $n test programs, $(stat -c %s "$OUT/initramfs.cpio.gz") bytes"
