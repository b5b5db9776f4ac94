#!/bin/bash
# Fetch Debian's linux-source-5.10 at exactly the pinned versions, the
# base (bullseye-security) and the oldest base the series serves
# (bullseye), check each tarball's SHA-256 and keep it in the cache:
# build/cache/linux-source-5.10_VERSION.tar.xz (and the .deb it came in).
#   fetch-base.sh         the base
#   fetch-base.sh --old   the oldest base
set -euo pipefail
. "$(dirname "$0")/lib.sh"

version=$BASE_VERSION sum=$BASE_SHA256
[ "${1:-}" = --old ] && version=$OLD_BASE_VERSION sum=$OLD_BASE_SHA256

mkdir -p "$CACHE"
tarball=$(base_tarball "$version")
if [ -f "$tarball" ] && echo "$sum  $tarball" | sha256sum -c --status; then
	log "base tarball cached: ${tarball#$TOP/}"
	exit 0
fi

# The .deb (pinned too: the DKMS package's test installs it as apt would).
deb=$(source_deb "$version")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" "./usr/src/$BASE_TARBALL"
echo "$sum  $tmp/usr/src/$BASE_TARBALL" | sha256sum -c --status ||
	die "SHA-256 mismatch for $BASE_TARBALL from $BASE_PKG $version"
mv "$tmp/usr/src/$BASE_TARBALL" "$tarball"
log "base tarball $version verified: $sum"
