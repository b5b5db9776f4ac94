#!/bin/bash
# Fetch Debian's linux-source-5.10 at exactly the pinned version from
# bullseye, check the tarball's SHA-256 and keep it in the cache.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

mkdir -p "$CACHE"
tarball=$CACHE/$BASE_TARBALL
if [ -f "$tarball" ] && echo "$BASE_SHA256  $tarball" | sha256sum -c --status; then
	log "base tarball cached: ${tarball#$TOP/}"
	exit 0
fi

src=/etc/apt/sources.list.d/kvm-dirty-bullseye.sources
pref=/etc/apt/preferences.d/kvm-dirty-bullseye.pref
if ! apt-cache madison "$BASE_PKG" 2>/dev/null | grep -q " $BASE_VERSION "; then
	log "adding the bullseye suite (pinned at priority 1: nothing is installed from it)"
	cat >"$src" <<EOT
Types: deb
URIs: http://deb.debian.org/debian
Suites: bullseye
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOT
	cat >"$pref" <<EOT
Package: *
Pin: release n=bullseye
Pin-Priority: 1
EOT
	apt-get update -q >/dev/null
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
log "downloading $BASE_PKG=$BASE_VERSION"
(cd "$tmp" && apt-get download -q "$BASE_PKG=$BASE_VERSION" >/dev/null)
dpkg-deb --fsys-tarfile "$tmp"/*.deb | tar -x -C "$tmp" "./usr/src/$BASE_TARBALL"
echo "$BASE_SHA256  $tmp/usr/src/$BASE_TARBALL" | sha256sum -c --status ||
	die "SHA-256 mismatch for $BASE_TARBALL from $BASE_PKG $BASE_VERSION"
mv "$tmp/usr/src/$BASE_TARBALL" "$tarball"
log "base tarball verified: $BASE_SHA256"
