#!/bin/bash
# Pack busybox, the statically linked test programs that tests/suite.list
# names and tests/init.sh (as /init) into build/out/initramfs.cpio.gz.
# Each boot appends its own /plan to it (scripts/kvmtest/qemu.py).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

bb=/bin/busybox
[ -x "$bb" ] && "$bb" --list >/dev/null 2>&1 || die "busybox-static is not installed"

root=$OUT/initramfs
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp,tests,etc}
cp "$bb" "$root/bin/busybox"
for app in $("$bb" --list); do
	[ "$app" = busybox ] || ln -sf busybox "$root/bin/$app"
done
cp "$TOP/tests/init.sh" "$root/init"
chmod +x "$root/init"

sel=$OUT/selftests
n=0
for bin in $(kvmtest programs); do
	src=$sel/$bin
	[ -x "$src" ] || src=$sel/x86_64/$bin
	[ -x "$src" ] || die "suite.list names $bin, which was not built"
	cp "$src" "$root/tests/$bin"
	n=$((n + 1))
done
# make bench's wrapper of dirty_log_perf_test (scripts/kvmtest/bench.py).
cp "$TOP/tests/bench/dirty-bench" "$root/tests/dirty-bench"
# The anchor VM of the stock kernels' boots, against the work tree's uapi.
gcc -static -O2 -Wall -Werror -I"$TREE/usr/include" -o "$root/bin/kvm-anchor" \
	"$TOP/tests/anchor/kvm-anchor.c"
(cd "$root" && find . | sort | cpio -o -H newc --quiet -R 0:0 | gzip -1) >"$OUT/initramfs.cpio.gz"
log "initramfs: $n test programs, $(stat -c %s "$OUT/initramfs.cpio.gz") bytes"
