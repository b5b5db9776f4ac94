#!/bin/bash
# QEMU's own migration test in the test VM: build/out/qtest.cpio.gz, what
# the boots that run tests/migrate/qemu-migration-test append to the
# initramfs after the migration archive (whose Debian 12 QEMU 7.2 it
# drives; ARCHIVES in scripts/kvmtest/matrix.py):
#   - tests/qtest/migration-test, built in the tree of build-qemu7fix.sh:
#     Debian 12's qemu 7.2 source package with Debian's patches (and
#     qemu/*.patch, which touches TCG only, not linked into this test);
#   - the libraries it loads beyond the migration archive's;
#   - the firmware Debian's QEMU loads for migration-test's guests, which
#     run on the pc machine's default devices (VGA, e1000);
#   - the runner, tests/migrate/qemu-migration-test.
# Rebuilt only when an input changes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

work=$BUILD/qemu7fix
out=$OUT/qtest.cpio.gz
runner=$TOP/tests/migrate/qemu-migration-test
[ -f "$work/b/build.ninja" ] || die "no QEMU 7.2 build tree: run 'make qemu7fix' first"
firmware=(/usr/share/seabios/vgabios-stdvga.bin /usr/lib/ipxe/qemu/efi-e1000.rom)
for f in "${firmware[@]}"; do
	[ -f "$f" ] || die "$f is missing: run 'make deps'"
done

use_ccache "$work"
start=$SECONDS
run_logged "building QEMU's migration-test (ninja)" "$work/qtest-build.log" \
	ninja -C "$work/b" -j"$JOBS" tests/qtest/migration-test
bin=$work/b/tests/qtest/migration-test
stamp=$(cat "$0" "$runner" "$bin" | sha256sum | cut -d' ' -f1)
if [ -f "$out" ] && [ "$(cat "$out.stamp" 2>/dev/null)" = "$stamp" ]; then
	log "QEMU's migration-test archive: up to date ($(stat -c %s "$out") bytes)"
	exit 0
fi
root=$OUT/qtest-root
rm -rf "$root"
mkdir -p "$root"/{tests,usr/libexec/kvmtest,usr/lib/x86_64-linux-gnu,usr/share/seabios,usr/lib/ipxe/qemu}
cp "$bin" "$root/usr/libexec/kvmtest/"
for l in $(ldd "$bin" | awk '/=> \//{print $3}'); do
	cp -L "$l" "$root/usr/lib/x86_64-linux-gnu/"
done
for f in "${firmware[@]}"; do
	cp -L "$f" "$root$(dirname "$f")/"
done
install -m 755 "$runner" "$root/tests/qemu-migration-test"
(cd "$root" && find . | sort | cpio -o -H newc --quiet -R 0:0 | gzip -6) >"$out.tmp"
mv "$out.tmp" "$out"
echo "$stamp" >"$out.stamp"
log "QEMU's migration-test archive: $(stat -c %s "$out") bytes packed, built in $((SECONDS - start)) s"
