#!/bin/bash
# The series as a DKMS package for Debian 11's stock kernel:
# build/out/dkms/kvm-dirty-ring-dkms_VERSION_all.deb.
#
# Its source is the work tree's KVM at HEAD (git archive: virt/kvm,
# arch/x86/kvm, and the headers under include/ and arch/x86/include that
# the series changes), with dkms/Kbuild as arch/x86/kvm/Kbuild so that
# those headers win over the installed kernel's.  Nothing is copied by
# hand: a change to the series reaches the package through the work tree
# and patches/, as it reaches git am.  Built with Debian's dh-dkms.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

NAME=kvm-dirty-ring
[ -d "$MAIN_TREE/.git" ] || die "no work tree at $MAIN_TREE: run 'make tree' first"
git -C "$MAIN_TREE" diff --quiet HEAD -- virt arch/x86 include ||
	die "$MAIN_TREE has uncommitted changes in KVM's files: commit and 'make export' first"
"$TOP/scripts/export-series.sh" --compare >/dev/null 2>&1 ||
	die "the work tree's commits differ from patches/: 'make export' (or 'make tree') first"

# 5.10.262+v4: the base's upstream version and the series' revision
# (series/cover-letter.txt's subject); the series' hash in the files.
rev=$(sed -n '1s/.*(\(v[0-9]*\)).*/\1/p' "$TOP/series/cover-letter.txt")
[ -n "$rev" ] || die "series/cover-letter.txt's subject names no revision (vN)"
VERSION=${BASE_VERSION%-*}+$rev
series=$(cat "$TOP"/patches/*.patch | sha256sum | cut -c1-12)
# The kernels the package builds for: Debian 11's ABI of the pinned base
# (5.10.0-46 is 5.10.262-1), its x86-64 flavours.
ABI=${DEBIAN11_PKG#linux-image-}
ABI=${ABI%-amd64}
KERNELS="^${ABI//./\\.}-(amd64|cloud-amd64|rt-amd64)\$"

dest=$OUT/dkms
mkdir -p "$dest"
deb=$dest/${NAME}-dkms_${VERSION}-1_all.deb
stampf=$dest/stamp
inputs=$( { echo "$series $VERSION"; cat "$TOP"/dkms/Kbuild "$TOP"/dkms/Makefile "$TOP"/dkms/check-headers \
	"$TOP"/dkms/dkms.conf.in "$TOP"/dkms/debian/* "$0"; } | sha256sum | cut -d' ' -f1)
if [ -f "$deb" ] && [ "$(cat "$stampf" 2>/dev/null)" = "$inputs" ]; then
	log "DKMS package: up to date (${deb#$TOP/})"
	exit 0
fi

w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
pkg=$w/$NAME-$VERSION
src=$pkg/src
mkdir -p "$src"
mapfile -t headers < <(git -C "$MAIN_TREE" diff --name-only "$BASE_TAG" HEAD -- include arch/x86/include)
[ ${#headers[@]} -gt 0 ] || die "the series changes no header?"
git -C "$MAIN_TREE" archive HEAD virt/kvm arch/x86/kvm "${headers[@]}" | tar -x -C "$src"
[ ! -e "$src/arch/x86/kvm/Kbuild" ] || die "arch/x86/kvm/Kbuild exists in the tree"
cp "$TOP/dkms/Kbuild" "$src/arch/x86/kvm/Kbuild"
cp "$TOP/dkms/Makefile" "$src/Makefile"
cp "$TOP/dkms/check-headers" "$src/check-headers"
# COPYING for the package's copyright file.
git -C "$MAIN_TREE" archive HEAD COPYING LICENSES/preferred/GPL-2.0 \
	LICENSES/exceptions/Linux-syscall-note | tar -x -C "$src"
printf '%s\n' "Linux $BASE_VERSION (Debian's linux-source-5.10) with the series" \
	"patches/ sha256 (first 12): $series" "headers: ${headers[*]}" >"$src/SERIES"

mkdir -p "$pkg/debian/source"
cp -r "$TOP"/dkms/debian/. "$pkg/debian/"
sub() {
	sed -e "s#@NAME@#$NAME#g" -e "s#@VERSION@#$VERSION#g" -e "s#@SERIES@#$series#g" \
	    -e "s#@BASE@#$BASE_VERSION#g" -e "s#@KERNELS@#${KERNELS//\\/\\\\}#g" \
	    -e "s#@ABI@#$ABI#g" "$@"
}
sub "$TOP/dkms/dkms.conf.in" >"$pkg/debian/$NAME-dkms.dkms"
sub "$TOP/dkms/debian/control" >"$pkg/debian/control"
sub "$TOP/dkms/debian/rules" >"$pkg/debian/rules"
sub "$TOP/dkms/debian/copyright" >"$pkg/debian/copyright"
chmod +x "$pkg/debian/rules"
# The changelog's date: the series' last commit, so that the same series
# makes the same package.
date=$(git -C "$MAIN_TREE" log -1 --format=%aD HEAD)
cat >"$pkg/debian/changelog" <<EOT
$NAME ($VERSION-1) unstable; urgency=medium

  * KVM of Linux $BASE_VERSION with the dirty ring series $rev
    (patches/ sha256 $series), as rebuilt modules.

 -- $PROJECT_NAME <$PROJECT_EMAIL>  $date
EOT
echo "3.0 (native)" >"$pkg/debian/source/format"

log "building ${deb#$TOP/} (dpkg-buildpackage, dh-dkms)"
(cd "$pkg" && SOURCE_DATE_EPOCH=$(git -C "$MAIN_TREE" log -1 --format=%at HEAD) \
	dpkg-buildpackage -b -us -uc --no-check-builddeps >"$dest/build.log" 2>&1) ||
	{ tail -30 "$dest/build.log" >&2; die "dpkg-buildpackage failed"; }
# One package in build/out/dkms: an earlier revision's (v2 after the
# cover letter said v3) must not be what dkms-root.sh installs.
rm -f "$dest/${NAME}"-dkms_*_all.deb
mv "$w/${NAME}-dkms_${VERSION}-1_all.deb" "$deb"
echo "$inputs" >"$stampf"
log "DKMS package: ${deb#$TOP/} ($(stat -c %s "$deb") bytes; $(dpkg-deb -c "$deb" | grep -c '\.[ch]$') sources)"
