#!/bin/bash
# The DKMS package as a Debian 11 host admin meets it, in a bullseye root
# made with debootstrap (chroot, no boot), Debian's own packages from its
# archive (pinned .debs, lib.sh), in the order a host lives:
#   1. a host on 5.10.0-32 (5.10.223-1) with linux-source-5.10 5.10.223-1
#      installs the package: DKMS builds KVM of 5.10.223-1 with the series;
#   2. it upgrades its kernel, "apt install linux-image-5.10.0-46-amd64
#      linux-headers-5.10.0-46-amd64" (5.10.262-1), source not upgraded:
#      the installation must say loudly that 5.10.0-46 keeps its stock KVM,
#      build nothing from the 5.10.223-1 source, leave 5.10.0-32's build;
#   3. linux-source-5.10 5.10.262-1 arrives: the package's dpkg trigger
#      builds 5.10.0-46's, from 5.10.262-1; the prepared KVM must be the
#      work tree's (git am of patches/ on the base), byte for byte;
#   4. the checks of the build: the package's headers won (check-headers'
#      verdict), the stock headers alone fail, the stock modules that
#      import KVM's symbols, kvmgt refused with a message;
#   5. build/out/debian11-dkms/modules.cpio.gz: the stock kernel's modules
#      that KVM needs and the three DKMS-built ones, for the test VM
#      (matrix.py's KERNELS["debian11-dkms"]);
#   6. an upload that keeps the ABI (5.10.0-46 at a new version): the
#      modules built from the old source are removed, loudly;
#   7. "apt remove": no module of the package left, modprobe resolves the
#      stock KVM, kvmgt as stock; "apt purge": nothing of it left;
#   8. the source package (dpkg-source -x of build/out/dkms/*.dsc) rebuilt
#      with Debian 11's own dpkg-buildpackage and debhelper: the same files.
# The root before step 1 is cached (build/cache/, keyed by the pinned
# versions).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

KVER=${DEBIAN11_PKG#linux-image-}
OLD_KVER=$DEBIAN11_OLD_KVER
NAME=kvm-dirty-ring
debs=("$OUT/dkms/$NAME-dkms_"*_all.deb)
[ -e "${debs[0]}" ] || die "no DKMS package: run 'make dkms' first"
[ ${#debs[@]} = 1 ] || die "several DKMS packages in build/out/dkms (${debs[*]##*/}): run 'make dkms'"
deb=${debs[0]}
dscs=("$OUT/dkms/${NAME}_"*.dsc)
[ ${#dscs[@]} = 1 ] && [ -e "${dscs[0]}" ] || die "not one source package in build/out/dkms: run 'make dkms'"
VERSION=$(dpkg-deb -f "$deb" Version)
dest=$OUT/debian11-dkms
logs=$OUT/dkms
root=$logs/root
mkdir -p "$CACHE" "$dest"
key=$(printf '%s\n' "$DEBIAN11_OLD_HEADERS_SHA256" "$SOURCE_DEBS_SHA256" "v3" | sha256sum | cut -c1-12)
cached=$CACHE/bullseye-dkms-root-$OLD_KVER-$key.tar.gz

umount_all() {
	local m
	for m in dev/pts dev proc sys; do
		mountpoint -q "$root/$m" 2>/dev/null && umount -l "$root/$m" || true
	done
}
trap umount_all EXIT
in_root() { chroot_run "$root" "$@"; }
# Pinned .debs from the cache into the root's /tmp/debs: their paths there.
to_root() {
	local f
	mkdir -p "$root/tmp/debs"
	for f in "$@"; do
		cp "$f" "$root/tmp/debs/"
		echo "/tmp/debs/$(basename "$f")"
	done
}
dkms_status() { in_root dkms status -m "$NAME" -v "$VERSION" -k "$1" 2>/dev/null; }
built_from() { modinfo -F dirty_ring "$root/lib/modules/$1/updates/dkms/kvm.ko" 2>/dev/null; }

umount_all
rm -rf "$root"
mkdir -p "$root"
mapfile -t old_hdrs < <(fetch_debs "$DEBIAN11_OLD_HEADERS_SHA256" "$DEBIAN11_OLD_VERSION")
mapfile -t new_hdrs < <(fetch_debs "$DEBIAN11_HEADERS_SHA256" "$DEBIAN11_VERSION")
old_src=$(source_deb "$OLD_BASE_VERSION")
new_src=$(source_deb "$BASE_VERSION")
img=$(fetch_deb "$DEBIAN11_PKG" "$DEBIAN11_VERSION" "$DEBIAN11_SHA256")
if ! root_from_cache "$root" "$cached" bullseye ca-certificates "$logs/debootstrap.log"; then
	mount -t proc proc "$root/proc"
	# A maintained Debian 11 host has its security suite, where the
	# kernels and headers after the last point release are.
	echo "deb http://deb.debian.org/debian-security bullseye-security main" \
		>"$root/etc/apt/sources.list.d/security.list"
	run_logged "apt-get update in the Debian 11 root" "$logs/apt-update.log" \
		in_root apt-get update -q
	# The host before the package: dkms, the 5.10.0-32 headers and
	# linux-source-5.10 of that kernel (pinned .debs), and what a kernel
	# package and a package build need from Debian 11 (initramfs-tools,
	# build-essential, debhelper).
	mapfile -t files < <(to_root "${old_hdrs[@]}" "$old_src")
	run_logged "installing dkms, the headers and the source of $OLD_KVER, debhelper in the root" \
		"$logs/apt.log" in_root sh -c "apt-get install -y -q --no-install-recommends \
		dkms initramfs-tools linux-base build-essential debhelper ${files[*]} && apt-get clean"
	rm -rf "$root/tmp/debs"
	umount_all
	root_to_cache "$root" "$cached"
fi
mount -t proc proc "$root/proc"

# 1. The package on a 5.10.0-32 host.
to_root "$deb" >/dev/null
run_logged "1. dpkg -i $(basename "$deb") on a $OLD_KVER host" "$logs/1-install.log" \
	in_root dpkg -i "/tmp/debs/$(basename "$deb")"
dkms_status "$OLD_KVER" | grep -q ': installed' ||
	die "1. not installed for $OLD_KVER ($logs/1-install.log)"
case $(built_from "$OLD_KVER") in *" linux-source-5.10 $OLD_BASE_VERSION,"*) ;;
*) die "1. $OLD_KVER's kvm.ko: '$(built_from "$OLD_KVER")', not from $OLD_BASE_VERSION" ;; esac
log "1. $OLD_KVER: $(built_from "$OLD_KVER")"

# 2. The kernel upgrade, without the source.
mapfile -t files < <(to_root "$img" "${new_hdrs[@]}")
run_logged "2. apt install $DEBIAN11_PKG linux-headers-$KVER ($DEBIAN11_VERSION)" "$logs/2-upgrade.log" \
	in_root apt-get install -y -q --no-install-recommends "${files[@]}"
grep -q "NOT built for $KVER: .*stock KVM" "$logs/2-upgrade.log" &&
	grep -q "linux-source-5.10 is $OLD_BASE_VERSION" "$logs/2-upgrade.log" ||
	die "2. the kernel upgrade did not say that $KVER keeps its stock KVM ($logs/2-upgrade.log)"
! dkms_status "$KVER" | grep -q ': installed' && [ ! -e "$root/lib/modules/$KVER/updates/dkms/kvm.ko" ] ||
	die "2. something was installed for $KVER from the $OLD_BASE_VERSION source"
modinfo -b "$root" -k "$KVER" -n kvm | grep -q "/kernel/arch/x86/kvm/kvm.ko" ||
	die "2. modprobe does not resolve $KVER's kvm to the stock module"
case $(built_from "$OLD_KVER") in *" linux-source-5.10 $OLD_BASE_VERSION,"*) ;;
*) die "2. $OLD_KVER's build changed" ;; esac
log "2. $(grep -m1 -A1 "NOT built for $KVER" "$logs/2-upgrade.log" | tail -1)"

# 3. The source follows.
mapfile -t files < <(to_root "$new_src")
run_logged "3. apt install linux-source-5.10 ($BASE_VERSION)" "$logs/3-source.log" \
	in_root apt-get install -y -q --no-install-recommends "${files[@]}"
dkms_status "$KVER" | grep -q ': installed' || die "3. not installed for $KVER ($logs/3-source.log)"
case $(built_from "$KVER") in *" linux-source-5.10 $BASE_VERSION,"*) ;;
*) die "3. $KVER's kvm.ko: '$(built_from "$KVER")', not from $BASE_VERSION" ;; esac
case $(built_from "$OLD_KVER") in *" linux-source-5.10 $OLD_BASE_VERSION,"*) ;;
*) die "3. $OLD_KVER's build changed" ;; esac
in_root dkms status >"$logs/status.txt"
mods=$root/lib/modules/$KVER/updates/dkms
for m in kvm kvm-amd kvm-intel; do
	[ -f "$mods/$m.ko" ] || die "DKMS did not install $m.ko"
	magic=$(modinfo -F vermagic "$mods/$m.ko")
	case $magic in "$KVER "*) ;; *) die "$m.ko: vermagic '$magic' is not $KVER's" ;; esac
done
modinfo -k "$KVER" -b "$root" -n kvm | grep -q /updates/dkms/ ||
	die "modprobe in the root does not resolve kvm to the DKMS build"
log "3. $KVER: $(built_from "$KVER") (the trigger on linux-source-5.10)"

# The KVM that dkms-build prepares is the work tree's, file for file.
src=/usr/src/$NAME-$VERSION
rm -rf "$root/tmp/prep"
cp -a "$root$src" "$root/tmp/prep"
in_root sh /tmp/prep/dkms-build --prepare "$KVER" 2>/dev/null
x=$(mktemp -d)
(cd "$root/tmp/prep/linux" && find . -type f ! -name Kbuild ! -name kvm-dirty-ring-info.c | sort) >"$x/files"
# shellcheck disable=SC2046
git -C "$MAIN_TREE" archive HEAD $(sed 's|^\./||' "$x/files") | tar -x -C "$x"
diff -r -q -x Kbuild -x kvm-dirty-ring-info.c -x files "$root/tmp/prep/linux" "$x" >&2 ||
	die "the KVM dkms-build prepares for $KVER differs from the work tree's"
log "3. dkms-build's KVM for $KVER is the work tree's: $(wc -l <"$x/files") files identical"
rm -rf "$x"

# 4. The build's checks.  The package's headers are the ones the build
# read: its check-headers, part of the build command, says so in DKMS's log.
dlog=$(ls "$root"/var/lib/dkms/$NAME/*/"$KVER"/x86_64/log/make.log)
cp "$dlog" "$logs/dkms-make.log"
! grep -i "warning:\|error:" "$dlog" >&2 ||
	die "DKMS's build printed warnings or errors (build/out/dkms/dkms-make.log)"
grep -q "^check-headers: .* the package's headers only" "$dlog" ||
	die "DKMS's build log has no verdict of check-headers (build/out/dkms/dkms-make.log)"
log "4. $(grep "^check-headers:" "$dlog")"
# The same KVM with the stock headers only must not build.
if in_root make -C "/lib/modules/$KVER/build" M=/tmp/prep/linux/arch/x86/kvm \
	KVM_DKMS_STOCK_HEADERS=1 -j"$JOBS" modules >"$logs/stock-headers.log" 2>&1; then
	die "the series' KVM built against the stock headers alone (log: build/out/dkms/stock-headers.log)"
fi
first=$(grep -m1 "error:" "$logs/stock-headers.log" | sed 's|.*/prep/linux/||')
log "4. stock headers alone: the build fails as it must ($first)"
rm -rf "$root/tmp/prep"
# modprobe's hook refuses the stock kvmgt while kvm resolves to the
# package's build, with a message that says why.
in_root modprobe -c | grep -q "^install kvmgt " ||
	die "the package's modprobe.d hook for kvmgt is missing"
if in_root env KVMGT_GUARD_KVER="$KVER" /usr/share/$NAME-dkms/kvmgt-guard \
	2>"$logs/kvmgt-guard.txt"; then
	die "kvmgt-guard let the stock kvmgt load beside the package's KVM"
fi
log "4. modprobe kvmgt: refused ($(cat "$logs/kvmgt-guard.txt"))"

# Modules of Debian 11's kernel that import KVM's symbols, and what the
# series does to the versions (CRCs) they were built against: the kernel
# refuses a module whose recorded CRC differs from the exporter's.
img=$CACHE/${DEBIAN11_PKG}_${DEBIAN11_VERSION}_amd64.deb
x=$(mktemp -d)
dpkg-deb -x "$img" "$x"
skmods=$x/lib/modules/$KVER/kernel
crcs() { nm "$1" | awk '$3 ~ /^__crc_/ { print substr($3, 7), substr($1, length($1) - 7) }' | sort; }
crcs "$skmods/arch/x86/kvm/kvm.ko" >"$x/stock.crc"
crcs "$mods/kvm.ko" >"$x/new.crc"
report=$OUT/dkms/dependents.txt
: >"$report"
# (grep finds the candidates among the 3888 modules; modinfo decides.)
for ko in $(grep -rla --include='*.ko' 'depends=[a-z0-9_,-]*kvm' "$skmods" | sort); do
	deps=$(modinfo -F depends "$ko")
	case ",$deps," in *,kvm,*|*,kvm-amd,*|*,kvm-intel,*) ;; *) continue ;; esac
	name=$(basename "$ko" .ko)
	# What it recorded of kvm.ko's exports (__versions) against the CRCs
	# of the stock kvm.ko and of the package's.
	/sbin/modprobe --dump-modversions "$ko" |
		awk '{ h = tolower(substr($1, 3)); while (length(h) < 8) h = "0" h; print $2, h }' |
		sort >"$x/wants"
	join "$x/wants" "$x/stock.crc" >"$x/kvm-wants"
	awk '$2 != $3 { exit 1 }' "$x/kvm-wants" ||
		die "$name: the stock kvm.ko's CRCs are not the ones it recorded"
	total=$(wc -l <"$x/kvm-wants")
	mapfile -t changed < <(join -a1 -o 1.1,1.2,2.2 -e none "$x/kvm-wants" "$x/new.crc" |
		awk '$2 != $3 { print $1 }')
	case $name in
	kvm-amd|kvm-intel)
		what="rebuilt by the package (${#changed[@]} of the $total KVM symbols it imports changed version)"
		changed=() ;;
	*)
		[ ${#changed[@]} -gt 0 ] ||
			die "$name imports KVM symbols whose versions the series keeps: decide what the package does with it"
		what="not rebuilt (the package rebuilds KVM only); the kernel refuses the stock one beside the package's kvm.ko, and modprobe's hook says why: ${#changed[@]} of the $total KVM symbols it imports changed version" ;;
	esac
	printf '%s (depends: %s): %s%s\n' "${ko#$skmods/}" "$deps" "$what" \
		"${changed:+ (${changed[*]})}" >>"$report"
done
log "4. stock modules that import KVM's symbols (build/out/dkms/dependents.txt):"
sed 's/^/    /' "$report" >&2
rm -rf "$x"

# The test VM's modules: the stock kernel's dependencies of kvm-amd and
# kvm-intel, the DKMS-built KVM modules in their place.
"$TOP/scripts/fetch-kernel.sh" debian11 >/dev/null
x=$(mktemp -d)
dpkg-deb -x "$img" "$x"
skmods=$x/lib/modules/$KVER/kernel
order=$(modules_cpio "$dest/modules.cpio.gz" "$mods $skmods" kvm-amd kvm-intel)
cp "$OUT/debian11/vmlinuz" "$dest/vmlinuz"
rm -rf "$x"
log "5. debian11-dkms: Debian 11's vmlinuz; modules: $order"

# 6. Debian can upgrade a kernel package in place, same ABI, new version
# (5.10.0-46-amd64 at 5.10.262-1 becoming, say, 5.10.263-1): the modules
# built from the old source must not stay on the new kernel.  The pinned
# image and headers repacked with a higher version (their files
# unchanged) stand for such an upload; the source stays 5.10.262-1.
sim=$DEBIAN11_VERSION+sameabi1
rm -rf "$root/tmp/sim"
mkdir -p "$root/tmp/sim"
for d in "$img" "$(printf '%s\n' "${new_hdrs[@]}" | grep "/linux-headers-${KVER}_")"; do
	x=$(mktemp -d)
	dpkg-deb -R "$d" "$x/p"
	sed -i "s/^Version: .*/Version: $sim/" "$x/p/DEBIAN/control"
	dpkg-deb -Zgzip -z1 -b "$x/p" "$root/tmp/sim/" >/dev/null
	rm -rf "$x"
done
run_logged "6. an in-place upgrade of $KVER's packages to $sim (same ABI)" "$logs/6-sameabi.log" \
	in_root sh -c 'apt-get install -y -q --no-install-recommends /tmp/sim/*.deb'
grep -q "built from linux-source-5.10 $DEBIAN11_VERSION, the kernel is now $sim: removing them" "$logs/6-sameabi.log" &&
	grep -q "NOT built for $KVER: .*stock KVM" "$logs/6-sameabi.log" ||
	die "6. the in-place upgrade did not say that $KVER's modules were removed ($logs/6-sameabi.log)"
[ ! -e "$root/lib/modules/$KVER/updates/dkms/kvm.ko" ] && ! dkms_status "$KVER" | grep -q ': installed' ||
	die "6. $KVER kept modules built from $DEBIAN11_VERSION after its upgrade to $sim"
modinfo -b "$root" -k "$KVER" -n kvm | grep -q "/kernel/arch/x86/kvm/kvm.ko" ||
	die "6. after the in-place upgrade, modprobe does not resolve $KVER's kvm to the stock module"
rm -rf "$root/tmp/sim"
log "6. in place to $sim: $KVER's modules from $DEBIAN11_VERSION removed, stock KVM until linux-source-5.10 $sim"

# 7. Going back: "apt remove" takes every module of the package out of
# every kernel, and modprobe's kvmgt hook with them; the kernel hooks
# (conffiles in /etc/kernel) stay and do nothing.  "apt purge": nothing
# of the package is left.
run_logged "7. apt remove $NAME-dkms" "$logs/7-remove.log" in_root apt-get remove -y -q "$NAME-dkms"
for k in "$OLD_KVER" "$KVER"; do
	! ls "$root/lib/modules/$k/updates/dkms/"kvm*.ko >/dev/null 2>&1 ||
		die "7. apt remove left modules in $k's updates/dkms"
done
modinfo -b "$root" -k "$KVER" -n kvm | grep -q "/kernel/arch/x86/kvm/kvm.ko" ||
	die "7. after apt remove, modprobe does not resolve $KVER's kvm to the stock module"
! in_root modprobe -c | grep -q "^install kvmgt" || die "7. after apt remove, modprobe still hooks kvmgt"
in_root modprobe -S "$KVER" --show-depends kvmgt | grep -q "^insmod .*/kvmgt.ko" ||
	die "7. after apt remove, modprobe kvmgt does not load the stock kvmgt.ko"
out=$(in_root /etc/kernel/postinst.d/$NAME-dkms "$KVER" 2>&1) && [ -z "$out" ] ||
	die "7. the removed package's kernel hook did something: $out"
log "7. apt remove: no module of the package left, modprobe resolves the stock kvm.ko and kvmgt.ko"
run_logged "7. apt purge $NAME-dkms" "$logs/7-purge.log" in_root apt-get purge -y -q "$NAME-dkms"
left=$(cd "$root" && ls -d etc/kernel/*/$NAME-dkms var/lib/dkms/$NAME usr/src/$NAME-* \
	usr/share/$NAME-dkms lib/modprobe.d/$NAME-dkms.conf 2>/dev/null || true)
[ -z "$left" ] || die "7. apt purge left: $left"
[ -z "$(in_root dpkg-query -W -f '${db:Status-Abbrev}' "$NAME-dkms" 2>/dev/null)" ] ||
	die "7. dpkg still knows $NAME-dkms after apt purge"
log "7. apt purge: nothing of the package left"

# 8. The source package rebuilt with Debian 11's own tools: the same files
# as the package built here (Debian 12's), checksum for checksum.
rm -rf "$root/tmp/rebuild"
mkdir -p "$root/tmp/rebuild"
cp "${dscs[0]}" "$OUT/dkms/${NAME}_${VERSION}.tar.xz" "$root/tmp/rebuild/"
run_logged "8. dpkg-source -x and dpkg-buildpackage in the Debian 11 root" "$logs/8-rebuild.log" \
	in_root sh -c "cd /tmp/rebuild && dpkg-source -x $(basename "${dscs[0]}") src &&
		cd src && dpkg-buildpackage -b -us -uc"
rebuilt=$root/tmp/rebuild/$(basename "$deb")
[ -f "$rebuilt" ] || die "8. the Debian 11 rebuild made no $(basename "$deb")"
what() {
	dpkg-deb -f "$1" Package Version Architecture Depends Recommends
	dpkg-deb -I "$1" md5sums
}
diff <(what "$deb") <(what "$rebuilt") >"$logs/8-diff.txt" ||
	die "8. the Debian 11 rebuild differs ($logs/8-diff.txt)"
n=$(dpkg-deb -I "$deb" md5sums | wc -l)
rm -rf "$root/tmp/rebuild"
log "8. dpkg-buildpackage in Debian 11 (dpkg $(in_root dpkg-query -W -f '${Version}' dpkg-dev), debhelper $(in_root dpkg-query -W -f '${Version}' debhelper)): the same $n files"
