#!/bin/bash
# Debian 13's QEMU as the test VM's second emulator (matrix.py's
# EMULATORS["qemu10"]): a Debian 13 root made with debootstrap
# (minbase) with qemu-system-x86 at the pinned version, its .deb checked
# against lib.sh's SHA-256, cached in build/cache/.  The root is unpacked
# in build/out/qemu10/root, and build/out/qemu10/qemu-system-x86_64 runs
# its QEMU there: chroot in a mount namespace of its own (gone with the
# process), where /dev, /proc, build/ and /tmp are the host's, at the
# same paths, so that the harness's arguments mean the same files.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

dest=$OUT/qemu10
root=$dest/root
wrapper=$dest/qemu-system-x86_64
ver=${QEMU10_VERSION#*:}
cached=$CACHE/$QEMU10_SUITE-qemu-$ver.tar.gz
if [ -x "$wrapper" ] && [ "$(cat "$dest/stamp" 2>/dev/null)" = "$QEMU10_SHA256" ]; then
	log "QEMU 10 (Debian 13): up to date ($("$wrapper" --version | head -1))"
	exit 0
fi

rm -rf "$dest"
mkdir -p "$root" "$CACHE"
in_root() { chroot_run "$root" "$@"; }
if ! root_from_cache "$root" "$cached" "$QEMU10_SUITE" "$QEMU10_PKG" "$OUT/qemu10-debootstrap.log"; then
	# The pinned package, checked, over what debootstrap installed.
	mkdir -p "$root/tmp/deb"
	chmod 777 "$root/tmp/deb"
	in_root sh -c "cd /tmp/deb && apt-get download -q $QEMU10_PKG=$QEMU10_VERSION" >/dev/null
	echo "$QEMU10_SHA256  $(ls "$root"/tmp/deb/*.deb)" | sha256sum -c --quiet - ||
		die "$QEMU10_PKG $QEMU10_VERSION: SHA-256 mismatch"
	in_root sh -c 'dpkg -i /tmp/deb/*.deb && apt-get clean' >"$OUT/qemu10-dpkg.log" 2>&1 ||
		die "dpkg -i $QEMU10_PKG in the Debian 13 root failed ($OUT/qemu10-dpkg.log)"
	rm -rf "$root/tmp/deb"
	root_to_cache "$root" "$cached"
fi
got=$(in_root dpkg-query -W -f '${Version}' "$QEMU10_PKG")
[ "$got" = "$QEMU10_VERSION" ] || die "the Debian 13 root has $QEMU10_PKG $got, not $QEMU10_VERSION"

cat >"$wrapper" <<EOT
#!/bin/sh
# Debian 13's QEMU ($QEMU10_PKG $QEMU10_VERSION), made by scripts/fetch-qemu10.sh:
# run in its root, in a mount namespace of its own.
exec unshare --mount --propagation private sh -ec '
r=\$1; shift
mount --rbind /dev "\$r/dev"
mount -t proc proc "\$r/proc"
for d in "$BUILD" /tmp; do mkdir -p "\$r\$d"; mount --rbind "\$d" "\$r\$d"; done
exec chroot "\$r" /usr/bin/qemu-system-x86_64 "\$@"' sh "$root" "\$@"
EOT
chmod +x "$wrapper"
"$wrapper" --version >"$dest/version" || die "$wrapper --version failed"
echo "$QEMU10_SHA256" >"$dest/stamp"
log "QEMU 10 (Debian 13): $(head -1 "$dest/version"), $(du -sh "$root" | cut -f1) root (${wrapper#$TOP/})"
