#!/bin/bash
# Debian 12's QEMU 7.2 (the test VM's default emulator, qemu-system-x86
# 1:7.2+dfsg-7+deb12u18) rebuilt from its Debian source package with the
# fixes in qemu/*.patch, as the emulator "qemu7fix" of the boot matrix
# (matrix.py's EMULATORS): build/out/qemu7fix/qemu-system-x86_64.  The
# .dsc is pinned by SHA-256 (dpkg-source checks the tarballs it lists);
# the sources are cached in build/cache/.  Only the x86_64 system
# emulator with TCG is built, with ccache; the firmware is Debian's
# (/usr/share/qemu and /usr/share/seabios, which the wrapper names as
# Debian's own build has them in its firmware path).
#
# "build-qemu7fix.sh qemu7race": the same source with qemu/diag/*.patch
# instead of the fix (Debian's race, its window widened on demand), the
# diagnostic emulator "qemu7race" in build/out/qemu7race.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

name=${1:-qemu7fix}
case $name in
qemu7fix) patches=("$TOP"/qemu/*.patch) what="qemu/*.patch" ;;
qemu7race) patches=("$TOP"/qemu/diag/*.patch) what="qemu/diag/*.patch" ;;
*) die "build-qemu7fix.sh: no QEMU build called $name (qemu7fix, qemu7race)" ;;
esac
dest=$OUT/$name
work=$BUILD/$name
wrapper=$dest/qemu-system-x86_64
want="$QEMU7_DSC_SHA256 $(cat "${patches[@]}" | sha256sum | cut -d' ' -f1)"
if [ -x "$wrapper" ] && [ "$(cat "$dest/stamp" 2>/dev/null)" = "$want" ]; then
	log "QEMU 7.2 with $what: up to date ($("$wrapper" --version | head -1))"
	exit 0
fi

mkdir -p "$CACHE" "$work" "$dest"
pool=http://deb.debian.org/debian/pool/main/q/qemu
dsc=$CACHE/$QEMU7_DSC
# fetch FILE: from Debian's pool into the cache, under its name only once
# complete (an interrupted download must not pass for a cached file;
# dpkg-source checks the tarballs' SHA-256 against the .dsc).
fetch() {
	curl -fsS -o "$CACHE/$1.part" "$pool/$1" || die "download of $1 failed"
	mv "$CACHE/$1.part" "$CACHE/$1"
}
if ! [ -f "$dsc" ] || ! echo "$QEMU7_DSC_SHA256  $dsc" | sha256sum -c --quiet - >/dev/null 2>&1; then
	fetch "$QEMU7_DSC"
	echo "$QEMU7_DSC_SHA256  $dsc" | sha256sum -c --quiet - || die "$QEMU7_DSC: SHA-256 mismatch"
fi
for f in $(awk '/^Checksums-Sha256:/ {s=1; next} /^[^ ]/ {s=0} s {print $3}' "$dsc"); do
	[ -f "$CACHE/$f" ] || fetch "$f"
done

# Debian's source with Debian's patches (dpkg-source checks every file
# against the .dsc), then ours.
rm -rf "$work/src"
dpkg-source -x "$dsc" "$work/src" >"$work/dpkg-source.log" 2>&1 ||
	die "dpkg-source -x $QEMU7_DSC failed ($work/dpkg-source.log)"
for p in "${patches[@]}"; do
	patch -d "$work/src" -p1 -s <"$p" || die "$(basename "$p") does not apply"
done

use_ccache "$work"
rm -rf "$work/b"
mkdir -p "$work/b"
ver=$(sed -n 's/^Version: //p' "$dsc")
pkgversion="Debian $ver with $(for p in "${patches[@]}"; do basename "$p"; done | sed 's/-.*//' |
	tr '\n' ' ' | sed 's/ $//; s/ /, /g') of ${what%\*.patch}"
(cd "$work/b" && "$work/src/configure" --target-list=x86_64-softmmu --cc="$KCC" \
	--with-pkgversion="$pkgversion" \
	--disable-docs --disable-werror --disable-tools --disable-guest-agent \
	--disable-gtk --disable-sdl --disable-vnc --disable-opengl --disable-spice \
	--disable-xen --disable-curses --disable-libusb --disable-usb-redir \
	--disable-capstone --disable-slirp) >"$work/configure.log" 2>&1 ||
	die "configure failed ($work/configure.log)"
run_logged "building QEMU 7.2 with $what (ninja -j$JOBS)" "$work/build.log" \
	ninja -C "$work/b" -j"$JOBS" qemu-system-x86_64

cat >"$wrapper" <<EOT
#!/bin/sh
# Debian 12's QEMU 7.2 with $what, made by scripts/build-qemu7fix.sh $name;
# Debian's firmware.
exec "$work/b/qemu-system-x86_64" -L /usr/share/qemu -L /usr/share/seabios "\$@"
EOT
chmod +x "$wrapper"
"$wrapper" --version >"$dest/version" || die "$wrapper --version failed"
echo "$want" >"$dest/stamp"
log "QEMU 7.2 with $what: $(head -1 "$dest/version") (${wrapper#$TOP/})"
