#!/bin/bash
# Fetch Debian's linux-source-5.10 at exactly the pinned versions, the
# base (bullseye-security) and the oldest base the series serves
# (bullseye), check each tarball's SHA-256 and keep it in the cache:
# build/cache/linux-source-5.10_VERSION.tar.xz.
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

add_bullseye_suites

tmp=$(mktemp -d)
chmod 777 "$tmp"
trap 'rm -rf "$tmp"' EXIT
log "downloading $BASE_PKG=$version"
(cd "$tmp" && apt-get download -q "$BASE_PKG=$version" >/dev/null)
dpkg-deb --fsys-tarfile "$tmp"/*.deb | tar -x -C "$tmp" "./usr/src/$BASE_TARBALL"
echo "$sum  $tmp/usr/src/$BASE_TARBALL" | sha256sum -c --status ||
	die "SHA-256 mismatch for $BASE_TARBALL from $BASE_PKG $version"
mv "$tmp/usr/src/$BASE_TARBALL" "$tarball"
log "base tarball $version verified: $sum"
