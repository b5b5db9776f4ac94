#!/bin/bash
# Install what the build and the test VM need from Debian's packages.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# Room first: a step that runs out of it half-way leaves a broken work
# tree and a message about some file it could not write.  A fresh clone's
# make check fills 8.8 GB under build/ (measured 2026-11-30) besides the
# packages; a tree that is already built needs much less.
# MIN_FREE_GB overrides the figure.
mkdir -p "$BUILD"
if [ -d "$MAIN_TREE/.git" ]; then
	need_gb=${MIN_FREE_GB:-2} what='an incremental build'
else
	need_gb=${MIN_FREE_GB:-10} what='a first build'
fi
free_gb=$(df -Pk "$BUILD" | awk 'NR == 2 { print int($4 / 1048576) }')
[ "$free_gb" -ge "$need_gb" ] ||
	die "$BUILD has ${free_gb} GB free, this run needs about ${need_gb} GB" \
	    "($what):" \
	    "free some space on $(df -P "$BUILD" | awk 'NR == 2 { print $6 }') (MIN_FREE_GB=N overrides)"

pkgs=(build-essential bc bison flex libelf-dev libssl-dev ccache git xz-utils
      cpio busybox-static qemu-system-x86 seabios ipxe-qemu python3 python3-docutils perl rsync kmod
      ca-certificates
      bochs bochsbios vgabios isolinux syslinux-common xorriso)
# "deps.sh bench": what make bench needs besides (the plots).
[ "${1:-}" = bench ] && pkgs+=(gnuplot-nox)
# "deps.sh dkms": building the DKMS package and the Debian 11 root.
[ "${1:-}" = dkms ] && pkgs+=(debootstrap debhelper fakeroot dpkg-dev)
# "deps.sh qemu10": the Debian 13 root of the second emulator.
[ "${1:-}" = qemu10 ] && pkgs+=(debootstrap)
# "deps.sh qemu7fix": building QEMU 7.2 from its Debian source package.
[ "${1:-}" = qemu7fix ] && pkgs+=(curl dpkg-dev ninja-build meson pkg-config libglib2.0-dev
				  libpixman-1-dev zlib1g-dev libfdt-dev)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	[ "$(id -u)" = 0 ] || die "missing packages (${missing[*]}): run as root"
	log "installing: ${missing[*]}"
	apt-get update -q >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
