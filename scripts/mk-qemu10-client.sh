#!/bin/bash
# Debian 13's QEMU 10.0 as a second VMM inside the test VM:
# build/out/qemu10-client.cpio.gz, appended after the migration archive
# by the boots that run "migrate10" (ARCHIVES in scripts/kvmtest/matrix.py).
# From the Debian 13 root of fetch-qemu10.sh (the package pinned by
# SHA-256 in lib.sh): qemu-system-x86_64, every library it loads with
# Debian 13's own dynamic loader and C library (the test VM's userland
# is Debian 12's), the firmware a multiboot guest needs, under
# /opt/qemu10; /opt/qemu10/qemu-system-x86_64 runs it through that
# loader, and /tests/migrate10 runs tests/migrate/migrate.py with it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

root=$OUT/qemu10/root
out=$OUT/qemu10-client.cpio.gz
[ -x "$root/usr/bin/qemu-system-x86_64" ] || die "no Debian 13 root: run 'make qemu10' first"
firmware=(/usr/share/seabios/bios-256k.bin /usr/share/qemu/kvmvapic.bin
	  /usr/share/qemu/multiboot_dma.bin /usr/share/qemu/linuxboot_dma.bin)
stamp=$( { cat "$0"; cat "$OUT/qemu10/stamp"; } | sha256sum | cut -d' ' -f1)
if [ -f "$out" ] && [ "$(cat "$out.stamp" 2>/dev/null)" = "$stamp" ]; then
	log "QEMU 10 client archive: up to date ($(stat -c %s "$out") bytes)"
	exit 0
fi
start=$SECONDS
dest=$OUT/qemu10-client-root
rm -rf "$dest"
mkdir -p "$dest"/{opt/qemu10/bin,opt/qemu10/lib,opt/qemu10/share/qemu,tests}
cp "$root/usr/bin/qemu-system-x86_64" "$dest/opt/qemu10/bin/"
libs=$(chroot_run "$root" ldd /usr/bin/qemu-system-x86_64 |
	awk '/=> \//{print $3} /^\t\/lib64/{print $1}' | sort -u)
for l in $libs; do
	cp -L "$root$l" "$dest/opt/qemu10/lib/"
done
[ -f "$dest/opt/qemu10/lib/ld-linux-x86-64.so.2" ] || die "Debian 13's dynamic loader was not found by ldd"
for f in "${firmware[@]}"; do
	cp -L "$root$f" "$dest/opt/qemu10/share/qemu/"
done
cat >"$dest/opt/qemu10/qemu-system-x86_64" <<'EOT'
#!/bin/sh
# Debian 13's QEMU 10.0 on its own loader and libraries.
exec /opt/qemu10/lib/ld-linux-x86-64.so.2 --library-path /opt/qemu10/lib \
	/opt/qemu10/bin/qemu-system-x86_64 "$@"
EOT
cat >"$dest/tests/migrate10" <<'EOT'
#!/bin/sh
# tests/migrate/migrate.py with Debian 13's QEMU 10.0 as the VMM.
exec /tests/migrate --qemu /opt/qemu10/qemu-system-x86_64 --firmware /opt/qemu10/share/qemu "$@"
EOT
chmod 755 "$dest/opt/qemu10/qemu-system-x86_64" "$dest/tests/migrate10"
chroot_run "$root" dpkg-query -W -f '${Package} ${Version}\n' qemu-system-x86 seabios libc6 \
	>"$dest/opt/qemu10/VERSIONS"
(cd "$dest" && find . | sort | cpio -o -H newc --quiet -R 0:0 | gzip -6) >"$out.tmp"
mv "$out.tmp" "$out"
echo "$stamp" >"$out.stamp"
log "QEMU 10 client archive: $(head -1 "$OUT/qemu10/version"), $(echo "$libs" | wc -l) libraries; $(du -sm "$dest" | cut -f1) MiB unpacked, $(stat -c %s "$out") bytes packed, built in $((SECONDS - start)) s"
