#!/bin/bash
# The series as a DKMS package for Debian 11's stock kernel:
# build/out/dkms/kvm-dirty-ring-dkms_VERSION_all.deb, and its source package.
#
# It ships patches/ and dkms/dkms-build, which applies them at build time
# to the KVM of linux-source-5.10 of the kernel's own version (nothing of
# one kernel version's KVM is in the package), with dkms/Kbuild as
# arch/x86/kvm/Kbuild so that the series' headers win over the installed
# kernel's.  Also the source package (dpkg-source -b): .dsc and .tar.xz.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

NAME=kvm-dirty-ring
[ -d "$MAIN_TREE/.git" ] || die "no work tree at $MAIN_TREE: run 'make tree' first"
"$TOP/scripts/export-series.sh" --compare >/dev/null 2>&1 ||
	die "the work tree's commits differ from patches/: 'make export' (or 'make tree') first"

# 5.10.262+v5.1: the newest base the series is tested on, the series'
# revision (series/cover-letter.txt's subject) and the package's own
# revision (a native package: no Debian revision).
PKG_REV=1
rev=$(sed -n '1s/.*(\(v[0-9]*\)).*/\1/p' "$TOP/series/cover-letter.txt")
[ -n "$rev" ] || die "series/cover-letter.txt's subject names no revision (vN)"
VERSION=${BASE_VERSION%-*}+$rev.$PKG_REV
TESTED="$OLD_BASE_VERSION $BASE_VERSION"
series_files
series=$(cat "${SERIES[@]}" | sha256sum | cut -c1-12)

dest=$OUT/dkms
mkdir -p "$dest"
deb=$dest/${NAME}-dkms_${VERSION}_all.deb
stampf=$dest/stamp
inputs=$( { echo "$series $VERSION $TESTED"; cat "$TOP"/dkms/Kbuild "$TOP"/dkms/Makefile \
	"$TOP"/dkms/check-headers "$TOP"/dkms/dkms-build "$TOP"/dkms/dkms.conf.in "$TOP"/dkms/debian/* "$0"; } |
	sha256sum | cut -d' ' -f1)
if [ -f "$deb" ] && [ -f "$dest/${NAME}_${VERSION}.dsc" ] && [ "$(cat "$stampf" 2>/dev/null)" = "$inputs" ]; then
	log "DKMS package: up to date (${deb#$TOP/})"
	exit 0
fi

w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
pkg=$w/$NAME-$VERSION
src=$pkg/src
mkdir -p "$src/patches"
# The series as reviewed, every patch (dkms-build applies them to the
# kernel's own source); the build scripts.
cp "${SERIES[@]}" "$src/patches/"
cp "$TOP/dkms/Kbuild" "$TOP/dkms/Makefile" "$TOP/dkms/check-headers" "$TOP/dkms/dkms-build" "$src/"
cat >"$src/package.conf" <<EOT
# kvm-dirty-ring $VERSION: read by dkms-build.
PACKAGE_VERSION=$VERSION
SERIES_REV=$rev
# patches/ sha256 (first 12): $series
TESTED_BASES="$TESTED"
EOT

mkdir -p "$pkg/debian/source"
cp -r "$TOP"/dkms/debian/. "$pkg/debian/"
sub() {
	sed -e "s#@NAME@#$NAME#g" -e "s#@VERSION@#$VERSION#g" -e "s#@SERIES@#$series#g" \
	    -e "s#@REV@#$rev#g" -e "s#@TESTED@#${TESTED// / and }#g" "$@"
}
sub "$TOP/dkms/dkms.conf.in" >"$src/dkms.conf"
for f in "$pkg"/debian/*; do
	[ -f "$f" ] || continue
	sub "$f" >"$f.new" && cat "$f.new" >"$f" && rm "$f.new"
done
chmod +x "$pkg/debian/rules"
# The changelog's date: the series' last commit, so that the same series
# makes the same package.
date=$(git -C "$MAIN_TREE" log -1 --format=%aD HEAD)
cat >"$pkg/debian/changelog" <<EOT
$NAME ($VERSION) unstable; urgency=medium

  * The dirty ring series $rev (patches/ sha256 $series), applied at
    build time to linux-source-5.10 of the kernel's own version; tested
    on $TESTED.

 -- $PROJECT_NAME <$PROJECT_EMAIL>  $date
EOT
echo "3.0 (native)" >"$pkg/debian/source/format"

epoch=$(git -C "$MAIN_TREE" log -1 --format=%at HEAD)
log "building the source package (dpkg-source -b) and ${deb#$TOP/} (dpkg-buildpackage)"
rm -f "$dest/${NAME}"_*.dsc "$dest/${NAME}"_*.tar.xz
(cd "$w" && SOURCE_DATE_EPOCH=$epoch dpkg-source -b "$NAME-$VERSION" >"$dest/source.log" 2>&1) ||
	{ tail -30 "$dest/source.log" >&2; die "dpkg-source -b failed"; }
(cd "$pkg" && SOURCE_DATE_EPOCH=$epoch \
	dpkg-buildpackage -b -us -uc --no-check-builddeps >"$dest/build.log" 2>&1) ||
	{ tail -30 "$dest/build.log" >&2; die "dpkg-buildpackage failed"; }
# One package in build/out/dkms: an earlier revision's must not be what
# dkms-root.sh installs.
rm -f "$dest/${NAME}"-dkms_*_all.deb
mv "$w/${NAME}-dkms_${VERSION}_all.deb" "$deb"
mv "$w/${NAME}_${VERSION}.dsc" "$w/${NAME}_${VERSION}.tar.xz" "$dest/"
echo "$inputs" >"$stampf"
log "DKMS package: ${deb#$TOP/} ($(stat -c %s "$deb") bytes, ${#SERIES[@]} patches); source: ${NAME}_${VERSION}.dsc"
