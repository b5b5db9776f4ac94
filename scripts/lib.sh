# Shared settings for the build scripts.  Sourced, not executed.
# shellcheck shell=bash

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
CACHE=${CACHE:-$BUILD/cache}
MAIN_TREE=$BUILD/linux
# DEBUG=1: the debug kernel (config/kvm-debug.config) is built in a
# worktree of its own, so that switching does not rebuild everything.
# KVMGT=1: the same with i915, GVT-g and KVMGT built in
# (config/kvm-kvmgt.config), in build/linux-kvmgt.
# FAULT=1: the series with the fault injection of tests/fault/*.patch
# (never part of patches/), in build/linux-fault.
if [ "${DEBUG:-0}" = 1 ]; then
	TREE=${TREE:-$BUILD/linux-debug}
	OUT=${OUT:-$BUILD/out-debug}
elif [ "${KVMGT:-0}" = 1 ]; then
	TREE=${TREE:-$BUILD/linux-kvmgt}
	OUT=${OUT:-$BUILD/out-kvmgt}
elif [ "${FAULT:-0}" = 1 ]; then
	TREE=${TREE:-$BUILD/linux-fault}
	OUT=${OUT:-$BUILD/out-fault}
else
	TREE=${TREE:-$BUILD/linux}
	OUT=${OUT:-$BUILD/out}
fi

# The base: Debian's linux-source-5.10 as maintained Debian 11 hosts run
# it, from bullseye-security.  The series also applies to and builds on
# the oldest base it serves, the 5.10.223-1 of Debian 11's last point
# release (make series-check: scripts/old-base-check.sh).
BASE_PKG=linux-source-5.10
BASE_VERSION=5.10.262-1
BASE_SUITE=bullseye-security
BASE_TARBALL=linux-source-5.10.tar.xz
BASE_SHA256=a8a7ce6636bab6816b4f7a87efa2dd1cf1a5919026b6f384f9e96c1e6582b0bb
BASE_TAG=base-$BASE_VERSION
OLD_BASE_VERSION=5.10.223-1
OLD_BASE_SUITE=bullseye
OLD_BASE_SHA256=4aa4fbb62e2d957ed78841347492e736cc88f00689b57dac09959bda6d2b6f0e
OLD_BASE_TAG=base-$OLD_BASE_VERSION

# Stock Debian kernels booted unmodified in the test VM, their KVM loaded
# from modules (scripts/fetch-kernel.sh NAME; suite.py's KERNELS):
# mainline: Debian 12's, mainline's own dirty ring (the benchmarks' anchor);
# debian11: Debian 11's build of the pinned base, without the series.
MAINLINE_PKG=linux-image-6.1.0-50-amd64
MAINLINE_VERSION=6.1.176-1
MAINLINE_SHA256=7b5597492a0a65aee61985a492e6bcc3f2cde830072a0e3b3d8c7e1b90279bd3
DEBIAN11_PKG=linux-image-5.10.0-46-amd64
DEBIAN11_VERSION=$BASE_VERSION
DEBIAN11_SHA256=6d89bdf9a7c4458c64de7221edfb8e7b2c3279012636e4bb9d6bba4e6b7a67eb
# Debian 11's headers for it, in the Debian 11 root where the DKMS
# package is installed (scripts/dkms-root.sh): SHA-256 and package.
DEBIAN11_HEADERS_SHA256="\
7b4eeca0a36e33faa7fd2b48f304b2a033d80f72e5952f7746de261d9796b06e linux-headers-5.10.0-46-amd64
3b5bc361e77e67b122455a8cce26495ff5ce59fc147bb089f3cbedf6b4e2ec31 linux-headers-5.10.0-46-common
ad6edb3f2c5e1a9fe5dd60081d5855275eba9b9566aa628c9263e341a11372d1 linux-kbuild-5.10
a636242ec6344ebd15cec4be011da5d3da241073f3315b1dea8997b9941e1fa0 linux-compiler-gcc-10-x86"
# The kernel such a host ran before its last upgrade, Debian 11's last
# point release (5.10.223-1, the oldest base): the DKMS package is
# installed there first, then the host upgrades (scripts/dkms-root.sh).
DEBIAN11_OLD_KVER=5.10.0-32-amd64
DEBIAN11_OLD_VERSION=$OLD_BASE_VERSION
DEBIAN11_OLD_HEADERS_SHA256="\
a54a4d7b711d444fcfbab8d615b528d37bd66b03018b940662e6dfe83dcb1c46 linux-headers-5.10.0-32-amd64
b5ae0213861bd47260ee0193d4e074db35cb78444f54e4f5aafcb03bd9ff5ed8 linux-headers-5.10.0-32-common
52b1969fed149f0a69c127b19902971773c9dc9cdb11085d84a25e35d6ad8b1c linux-kbuild-5.10
35a1d4ff933fb070fecdcbc85c6455fa6844d60c40bf0f7d258669e107477baf linux-compiler-gcc-10-x86"
# linux-source-5.10 as apt installs it (the DKMS package builds from it):
# the .deb of each base, SHA-256 and version.
SOURCE_DEBS_SHA256="\
f733d27d239d65598d96d7a72f71ac50f49f2380192a1b3b4ca2f5ad5144dd63 $OLD_BASE_VERSION
4f01148344ca9e5c1c9743ab4a084cf61c437548f803443ccc044602278b52bc $BASE_VERSION"

# Debian 13's QEMU, the test VM's second emulator (scripts/fetch-qemu10.sh,
# matrix.py's EMULATORS): qemu-system-x86 from trixie, its .deb pinned.
QEMU10_SUITE=trixie
QEMU10_PKG=qemu-system-x86
QEMU10_VERSION=1:10.0.13+ds-0+deb13u1
QEMU10_SHA256=5e841d0723a657fd8bc2e9e1a085d24f47fcb3e4a0f94762e6c38b429f22fbb1

# The source of Debian 12's QEMU 7.2 (the installed qemu-system-x86 is its
# binNMU +b3), rebuilt with qemu/*.patch as the emulator "qemu7fix"
# (scripts/build-qemu7fix.sh): the .dsc pinned, which pins its tarballs.
QEMU7_DSC=qemu_7.2+dfsg-7+deb12u18.dsc
QEMU7_DSC_SHA256=6b6bd27b947ec89e40a1d6b26d9c9f3c698ca691da13163e0483f6061bbb20b3

# Identity used for the work tree's commits and the exported series.
PROJECT_NAME="KVM dirty tracking for 5.10"
PROJECT_EMAIL="kvm-dirty-5.10@localhost"

# Fixed build identity so that rebuilds and ccache hits are reproducible.
export KBUILD_BUILD_USER=kvm-dirty
export KBUILD_BUILD_HOST=build
export KBUILD_BUILD_TIMESTAMP="Thu Jan  1 00:00:00 UTC 2026"

JOBS=${JOBS:-$(nproc)}

# The work tree's stamp: the hash of the patches/ it was last synchronised
# with (make-tree.sh) or exported to (export-series.sh).
SERIES_STAMP=$MAIN_TREE/.git/kvm-dirty-series

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Run a long command, printing a heartbeat every 30 s so that the user
# sees what is running and for how long.  Output goes to a log file;
# its tail is shown on failure.
run_logged() {
	local what=$1 logf=$2; shift 2
	local start=$SECONDS last=$SECONDS pid rc
	log "$what (log: ${logf#$TOP/})"
	"$@" >"$logf" 2>&1 &
	pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		sleep 5
		if kill -0 "$pid" 2>/dev/null && (( SECONDS - last >= 30 )); then
			last=$SECONDS
			log "  ... $what: $((SECONDS - start)) s"
		fi
	done
	rc=0
	wait "$pid" || rc=$?
	if [ $rc -ne 0 ]; then
		tail -n 40 "$logf" >&2
		die "$what failed after $((SECONDS - start)) s (rc $rc)"
	fi
	log "$what: done in $((SECONDS - start)) s"
}

# base_git_tree DIR VERSION TAG: DIR made a git tree of Debian's
# linux-source-5.10 VERSION (the cached tarball, fetch-base.sh) as one
# commit tagged TAG.  A fixed identity and date make the commit's hash the
# same on every machine ("base-commit:" of the exported series).
base_git_tree() {
	local dir=$1 version=$2 tag=$3
	rm -rf "$dir" "$dir.tmp"
	mkdir -p "$dir.tmp"
	run_logged "extracting linux-source-5.10 $version" "$BUILD/extract-$version.log" \
		tar -xf "$(base_tarball "$version")" -C "$dir.tmp" --strip-components=1
	mv "$dir.tmp" "$dir"
	git -C "$dir" init -q -b master
	git -C "$dir" config user.name "$PROJECT_NAME"
	git -C "$dir" config user.email "$PROJECT_EMAIL"
	git -C "$dir" config core.abbrev 12
	git -C "$dir" config gc.auto 0
	run_logged "committing linux-source-5.10 $version" "$BUILD/commit-$version.log" \
		env GIT_AUTHOR_DATE="2024-07-27T00:00:00Z" GIT_COMMITTER_DATE="2024-07-27T00:00:00Z" \
		sh -c "git -C '$dir' add -A -f . && git -C '$dir' commit -q -m 'Debian linux-source-5.10 $version'"
	git -C "$dir" tag "$tag"
}

# config_fragments DIR ARCH FRAGMENT...: (ARCH "" for the host's, or
# i386) DIR's .config made from
# allnoconfig with the fragments merged in order (a later one overrides),
# then olddefconfig; only when the fragments changed (their hash is kept
# in DIR/.config.fragments).  RECONFIGURED=1 when it did.  Needs KCC
# (use_ccache).
config_fragments() {
	local dir=$1 arch=$2 want
	shift 2
	want=$(cat "$@" | sha256sum | cut -d' ' -f1)
	RECONFIGURED=0
	[ ! -f "$dir/.config" ] || [ "$(cat "$dir/.config.fragments" 2>/dev/null)" != "$want" ] || return 0
	log "configuring ${dir#$TOP/}${arch:+ ($arch)}: allnoconfig + $(printf '%s ' "${@##*/}")"
	make -C "$dir" -s ${arch:+ARCH=$arch} CC="$KCC" allnoconfig >/dev/null
	(cd "$dir" && env ${arch:+ARCH=$arch} KCONFIG_CONFIG=.config \
		scripts/kconfig/merge_config.sh -m .config "$@" >/dev/null 2>&1)
	make -C "$dir" -s ${arch:+ARCH=$arch} CC="$KCC" olddefconfig >/dev/null
	echo "$want" >"$dir/.config.fragments"
	RECONFIGURED=1
}

# chroot_run ROOT COMMAND...: COMMAND in the Debian root ROOT, with a
# clean environment.
chroot_run() {
	local r=$1
	shift
	chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}

# root_from_cache ROOT CACHE SUITE INCLUDE LOG: ROOT unpacked from CACHE
# (root_to_cache's tarball), returning 0; without it, ROOT a new
# debootstrap of SUITE (minbase, from deb.debian.org, with INCLUDE:
# packages, comma separated), returning 1: the caller finishes it and
# calls root_to_cache.
root_from_cache() {
	local root=$1 cache=$2 suite=$3 include=$4 logf=$5
	if [ -f "$cache" ]; then
		log "Debian root: from the cache (${cache#$TOP/})"
		tar -xzf "$cache" -C "$root" || die "cannot unpack $cache"
		return 0
	fi
	command -v debootstrap >/dev/null || die "debootstrap is missing: run 'make deps'"
	run_logged "debootstrap $suite (minbase, with $include)" "$logf" \
		debootstrap --variant=minbase --include="$include" "$suite" "$root" \
		http://deb.debian.org/debian
	return 1
}

# root_to_cache ROOT CACHE: ROOT (no mounts left in it) kept as CACHE.
root_to_cache() {
	tar -czf "$2.tmp" -C "$1" . && mv "$2.tmp" "$2"
	log "Debian root cached: ${2#$TOP/} ($(du -sh "$2" | cut -f1))"
}

# ccache for a build in the tree $1: exports ccache's settings and sets KCC
# to the compiler command to pass as make's CC.
use_ccache() {
	export CCACHE_DIR=${CCACHE_DIR:-${HOME:-/root}/.cache/kvm-dirty-ccache}
	export CCACHE_BASEDIR=$1
	export CCACHE_SLOPPINESS=time_macros,include_file_mtime,include_file_ctime
	export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-8G}
	KCC=gcc
	if command -v ccache >/dev/null; then KCC="ccache gcc"; fi
}

# The series: patches/*.patch in order, without the cover letter, into the
# array SERIES; series_hash prints the hash SERIES_STAMP holds.
series_files() {
	local p
	SERIES=()
	for p in "$TOP"/patches/*.patch; do
		[ -e "$p" ] || continue
		case "$(basename "$p")" in 0000-*) continue ;; esac
		SERIES+=("$p")
	done
}
series_hash() {
	series_files
	cat /dev/null "${SERIES[@]}" | sha256sum | cut -d' ' -f1
}

# The kernel files (C and headers, outside tools/) that the series
# touches; or, given a commit, that this commit touches.
touched_files() {
	if [ $# = 0 ]; then
		git -C "$MAIN_TREE" diff --name-only "$BASE_TAG" HEAD -- '*.c' '*.h'
	else
		git -C "$MAIN_TREE" diff-tree --no-commit-id --name-only -r "$1" -- '*.c' '*.h'
	fi | grep -v '^tools/' || true
}

# warnings_in LOG FILE...: print the compiler warnings and errors in LOG
# that name one of FILE; fail if there is any.
warnings_in() {
	local logf=$1 hits
	shift
	[ $# -gt 0 ] || return 0
	hits=$(grep -F -f <(printf '%s\n' "$@") "$logf" | grep -E 'warning:|error:' || true)
	[ -z "$hits" ] && return 0
	echo "$hits" >&2
	return 1
}

# The test half of the tooling (scripts/kvmtest).
kvmtest() {
	PYTHONPATH="$TOP/scripts${PYTHONPATH:+:$PYTHONPATH}" python3 -m kvmtest "$@"
}

# base_tarball VERSION: where the cache keeps linux-source-5.10 VERSION.
base_tarball() { echo "$CACHE/linux-source-5.10_$1.tar.xz"; }

# Debian 11's suites, bullseye and bullseye-security, for apt-get
# download on this Debian 12 host: pinned at priority 1, so that nothing
# is ever installed or upgraded from them.
add_bullseye_suites() {
	local src=/etc/apt/sources.list.d/kvm-dirty-bullseye.sources
	local pref=/etc/apt/preferences.d/kvm-dirty-bullseye.pref
	local known
	# (Not "apt-cache madison | grep -q": with pipefail, grep's early exit
	# can fail the pipeline through SIGPIPE.)
	known=$(apt-cache madison "$BASE_PKG" 2>/dev/null || true)
	if ! grep -qs 'bullseye-security' "$src" || ! grep -q " $BASE_VERSION " <<<"$known"; then
		log "adding Debian 11's suites, bullseye and bullseye-security (pinned at priority 1: nothing is installed from them)"
		cat >"$src" <<EOT
Types: deb
URIs: http://deb.debian.org/debian
Suites: bullseye
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bullseye-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOT
		cat >"$pref" <<EOT
Package: *
Pin: release n=bullseye
Pin-Priority: 1

Package: *
Pin: release n=bullseye-security
Pin-Priority: 1
EOT
		apt-get update -q >/dev/null
	fi
}

# fetch_deb PKG VERSION SHA256 [ARCH]: Debian's PKG=VERSION .deb in the cache,
# downloaded once and checked against the pinned SHA-256; prints its path.
fetch_deb() {
	local pkg=$1 ver=$2 sum=$3 deb tmp
	[ -n "$sum" ] || die "no SHA-256 pinned for $pkg=$ver"
	deb=$CACHE/${pkg}_${ver}_${4:-amd64}.deb
	mkdir -p "$CACHE"
	if [ ! -f "$deb" ]; then
		log "downloading $pkg=$ver from Debian's archive"
		tmp=$(mktemp -d)
		chmod 777 "$tmp"
		add_bullseye_suites
		(cd "$tmp" && apt-get download -q "$pkg=$ver" >/dev/null 2>&1) ||
			{ apt-get update -q >/dev/null && (cd "$tmp" && apt-get download -q "$pkg=$ver" >/dev/null); } ||
			die "cannot download $pkg=$ver from Debian's archive"
		mv "$tmp"/*.deb "$deb.tmp"
		rm -rf "$tmp"
		echo "$sum  $deb.tmp" | sha256sum -c --quiet - || { rm -f "$deb.tmp"; die "$pkg: SHA-256 mismatch"; }
		mv "$deb.tmp" "$deb"
	fi
	echo "$sum  $deb" | sha256sum -c --quiet - || die "$deb: SHA-256 mismatch"
	echo "$deb"
}

# fetch_debs "SHA256 PKG\n..." VERSION: fetch_deb for each pinned
# package of the list; prints their paths.
fetch_debs() {
	local sum name
	while read -r sum name; do
		fetch_deb "$name" "$2" "$sum"
	done <<<"$1"
}

# source_deb VERSION: the pinned linux-source-5.10 .deb of that version.
source_deb() {
	fetch_deb "$BASE_PKG" "$1" "$(awk -v v="$1" '$2 == v { print $1 }' <<<"$SOURCE_DEBS_SHA256")" all
}

# modules_cpio DEST "DIR..." MODULE...: DEST, a gzipped cpio archive of
# /modules/*.ko and /modules/order for tests/init.sh: the MODULEs and,
# before each, what it depends on (modinfo), depth first.  A module is
# taken from the first DIR that has it (a DKMS build before the stock
# tree).
modules_cpio() {
	local dest=$1 dirs=$2 w m f
	shift 2
	local -A seen=()
	local -a order=()
	_modules_add() {
		local f="" dep d
		for d in $dirs; do
			f=$(find "$d" -name "$1.ko" -o -name "${1//_/-}.ko" | head -1)
			[ -z "$f" ] || break
		done
		[ -n "$f" ] || die "no module $1 in $dirs"
		[ -z "${seen[$f]:-}" ] || return 0
		seen[$f]=1
		for dep in $(modinfo -F depends "$f" | tr , ' '); do
			_modules_add "$dep"
		done
		order+=("$f")
	}
	for m in "$@"; do
		_modules_add "$m"
	done
	w=$(mktemp -d)
	mkdir -p "$w/modules"
	for f in "${order[@]}"; do
		cp "$f" "$w/modules/"
		basename "$f" >>"$w/modules/order"
	done
	(cd "$w" && find . | sort | cpio -o -H newc --quiet -R 0:0 | gzip -6) >"$dest"
	tr '\n' ' ' <"$w/modules/order"
	rm -rf "$w"
}
