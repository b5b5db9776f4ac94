#!/bin/bash
# A modular KVM must link against the kernel it loads into: every symbol
# KVM takes from the rest of the kernel has to be exported there.  The
# test kernel builds KVM in, where anything links (5.10 does not export
# printk_deferred(), which the series once used: only the DKMS build of
# kvm.ko found it).  So: the symbols the built-in KVM objects of the work
# tree's kernel (build/linux, HEAD) leave undefined, minus those KVM
# defines itself, must all be in Debian 11's Module.symvers for the
# pinned base (DEBIAN11_PKG's headers, SHA-256 pinned in lib.sh),
# the exports of Debian 11's build of the base and its modules.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

built=$TREE/arch/x86/kvm/built-in.a
[ -f "$built" ] || die "$built is missing: run 'make kernel' first"
hpkg=linux-headers-${DEBIAN11_PKG#linux-image-}
hsum=$(awk -v p="$hpkg" '$2 == p { print $1 }' <<<"$DEBIAN11_HEADERS_SHA256")
deb=$(fetch_deb "$hpkg" "$DEBIAN11_VERSION" "$hsum")
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$w" --wildcards '*/Module.symvers'
symvers=$(find "$w" -name Module.symvers | head -1)
[ -s "$symvers" ] || die "$hpkg has no Module.symvers"
awk '{ print $2 }' "$symvers" | sort -u >"$w/exported"
nm "$built" 2>/dev/null | awk '$1 == "U" { print $2 }' | sort -u >"$w/undef"
nm --defined-only "$built" 2>/dev/null | awk 'NF == 3 { print $3 }' | sort -u >"$w/defined"
comm -23 "$w/undef" "$w/defined" >"$w/needed"
missing=$(comm -23 "$w/needed" "$w/exported" | tr '\n' ' ')
[ -z "$missing" ] ||
	die "KVM uses symbols that Debian 11's $DEBIAN11_VERSION kernel does not export (kvm.ko would not link): $missing"
log "exports: the $(wc -l <"$w/needed") symbols KVM takes from the rest of the kernel are all exported by Debian 11's $DEBIAN11_VERSION (a modular KVM links)"
