#!/bin/bash
# A stock Debian kernel for the test VM: "fetch-kernel.sh mainline"
# (Debian 12's 6.1, mainline's ring) or "fetch-kernel.sh debian11"
# (Debian 11's build of the pinned base, without the series).
# Downloads the image package (pinned version and SHA-256 in lib.sh,
# cached in build/cache/) and unpacks, unmodified:
#   build/out/NAME/vmlinuz           the kernel (and System.map)
#   build/out/NAME/modules.cpio.gz   /modules/*.ko and /modules/order:
#                                    kvm-amd and what it needs, in load
#                                    order, which tests/init.sh loads
set -euo pipefail
. "$(dirname "$0")/lib.sh"

name=${1:?usage: fetch-kernel.sh mainline|debian11}
case $name in
mainline) pkg=$MAINLINE_PKG ver=$MAINLINE_VERSION sum=$MAINLINE_SHA256 ;;
debian11) pkg=$DEBIAN11_PKG ver=$DEBIAN11_VERSION sum=$DEBIAN11_SHA256 ;;
*) die "unknown kernel $name" ;;
esac
deb=$(fetch_deb "$pkg" "$ver" "$sum")
dest=$OUT/$name
mkdir -p "$dest"
if [ -f "$dest/modules.cpio.gz" ] && [ -f "$dest/System.map" ] &&
   [ "$(cat "$dest/stamp" 2>/dev/null)" = "$sum" ]; then
	log "$name kernel: up to date ($pkg $ver)"
	exit 0
fi
x=$(mktemp -d)
trap 'rm -rf "$x"' EXIT
dpkg-deb -x "$deb" "$x"
kver=${pkg#linux-image-}
cp "$x/boot/vmlinuz-$kver" "$dest/vmlinuz"
cp "$x/boot/System.map-$kver" "$dest/System.map"
mods=$x/lib/modules/$kver/kernel

# kvm-amd and, before it, what it depends on.
order=$(modules_cpio "$dest/modules.cpio.gz" "$mods" kvm-amd)
echo "$sum" >"$dest/stamp"
log "$name kernel: $pkg $ver, modules: $order"
