#!/bin/bash
# Install the DKMS package the way a Debian 11 host would: a bullseye root
# made with debootstrap, Debian 11's headers for the pinned kernel and
# dkms installed there from Debian's archive, then "dpkg -i" of
# build/out/dkms/*.deb in a chroot.  DKMS must build and install
# kvm.ko, kvm-amd.ko and kvm-intel.ko for the pinned kernel (lib.sh's
# DEBIAN11_PKG) without errors.
# Then:
#   - the same source built with the stock headers alone must fail
#     (KVM_DKMS_STOCK_HEADERS=1 in dkms/Kbuild), and every object of the
#     DKMS build must have read the package's copies of the headers the
#     series changes, none of the stock ones (the .cmd dependency files);
#   - the modules that import KVM's symbols in Debian 11's kernel are
#     listed, and for each the symbols whose versions (CRCs) the series
#     changes: a stale user of the old layout cannot load;
#   - build/out/debian11-dkms/modules.cpio.gz: the stock kernel's modules
#     that KVM needs and the three DKMS-built ones, for the test VM
#     (suite.py's KERNELS["debian11-dkms"]).
# The root before "dpkg -i" is cached (build/cache/, keyed by the pinned
# versions); the headers packages' SHA-256 are pinned in lib.sh.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

KVER=${DEBIAN11_PKG#linux-image-}
debs=("$OUT"/dkms/kvm-dirty-ring-dkms_*_all.deb)
[ -e "${debs[0]}" ] || die "no DKMS package: run 'make dkms' first"
[ ${#debs[@]} = 1 ] || die "several DKMS packages in build/out/dkms (${debs[*]##*/}): run 'make dkms'"
deb=${debs[0]}
dest=$OUT/debian11-dkms
root=$OUT/dkms/root
mkdir -p "$CACHE" "$dest"
cached=$CACHE/bullseye-dkms-root-$KVER-$DEBIAN11_VERSION.tar.gz

umount_all() {
	local m
	for m in dev/pts dev proc sys; do
		mountpoint -q "$root/$m" 2>/dev/null && umount -l "$root/$m" || true
	done
}
trap umount_all EXIT
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
	LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"; }

umount_all
rm -rf "$root"
mkdir -p "$root"
if [ -f "$cached" ]; then
	log "Debian 11 root: from the cache (${cached#$TOP/})"
	tar -xzf "$cached" -C "$root"
else
	command -v debootstrap >/dev/null || die "debootstrap is missing: run 'make deps' (scripts/deps.sh dkms)"
	run_logged "debootstrap bullseye (minbase)" "$OUT/dkms/debootstrap.log" \
		debootstrap --variant=minbase --include=ca-certificates bullseye "$root" \
		http://deb.debian.org/debian
	mount -t proc proc "$root/proc"
	# A maintained Debian 11 host has its security suite, where the
	# kernels and headers after the last point release are.
	echo "deb http://deb.debian.org/debian-security bullseye-security main" \
		>"$root/etc/apt/sources.list.d/security.list"
	run_logged "apt-get update in the Debian 11 root" "$OUT/dkms/apt-update.log" \
		in_root apt-get update -q
	# Debian 11's headers for the pinned kernel, checked against lib.sh.
	mkdir -p "$root/tmp/hdr"
	chmod 777 "$root/tmp/hdr"
	in_root sh -c "cd /tmp/hdr && apt-get download -q $(awk '{ printf "%s=%s ", $2, v }' \
		v="$DEBIAN11_VERSION" <<<"$DEBIAN11_HEADERS_SHA256")" >/dev/null
	while read -r sum name; do
		f=$(ls "$root"/tmp/hdr/"${name}"_*.deb)
		echo "$sum  $f" | sha256sum -c --quiet - || die "$name: SHA-256 mismatch"
	done <<<"$DEBIAN11_HEADERS_SHA256"
	run_logged "installing dkms and Debian 11's headers for $KVER in the root" \
		"$OUT/dkms/apt.log" in_root sh -c \
		'apt-get install -y -q --no-install-recommends dkms /tmp/hdr/*.deb && apt-get clean'
	rm -rf "$root/tmp/hdr"
	umount_all
	tar -czf "$cached.tmp" -C "$root" . && mv "$cached.tmp" "$cached"
	log "Debian 11 root cached: ${cached#$TOP/} ($(du -sh "$cached" | cut -f1))"
fi

mount -t proc proc "$root/proc"
cp "$deb" "$root/tmp/"
# dkms's postinst builds and installs for the kernel whose headers it
# finds (in a chroot it does not take the host's running kernel); then
# "dkms autoinstall", as at a boot into that kernel, must find nothing
# left to do.
run_logged "dpkg -i $(basename "$deb") in the Debian 11 root" "$OUT/dkms/dpkg.log" \
	in_root dpkg -i "/tmp/$(basename "$deb")"
run_logged "dkms autoinstall -k $KVER in the Debian 11 root" "$OUT/dkms/dkms-build.log" \
	in_root dkms autoinstall -k "$KVER"
in_root dkms status >"$OUT/dkms/status.txt"
cat "$OUT/dkms/status.txt" >&2
grep -q "kvm-dirty-ring.*$KVER.*: installed" "$OUT/dkms/status.txt" ||
	die "dkms status does not show the modules installed for $KVER"
mods=$root/lib/modules/$KVER/updates/dkms
for m in kvm kvm-amd kvm-intel; do
	[ -f "$mods/$m.ko" ] || die "DKMS did not install $m.ko"
	magic=$(modinfo -F vermagic "$mods/$m.ko")
	case $magic in "$KVER "*) ;; *) die "$m.ko: vermagic '$magic' is not $KVER's" ;; esac
done
modinfo -k "$KVER" -b "$root" -n kvm | grep -q /updates/dkms/ ||
	die "modprobe in the root does not resolve kvm to the DKMS build"
log "DKMS: kvm.ko, kvm-amd.ko, kvm-intel.ko built and installed for $KVER; modprobe resolves kvm to updates/dkms"
# modprobe's hook refuses the stock kvmgt while kvm resolves to the
# package's build, with a message that says why.
grep -q "^install kvmgt " "$root/etc/modprobe.d/kvm-dirty-ring-dkms.conf" ||
	die "the package's modprobe.d hook for kvmgt is missing"
if in_root env KVMGT_GUARD_KVER="$KVER" /usr/share/kvm-dirty-ring-dkms/kvmgt-guard \
	2>"$OUT/dkms/kvmgt-guard.txt"; then
	die "kvmgt-guard let the stock kvmgt load beside the package's KVM"
fi
log "modprobe kvmgt: refused ($(cat "$OUT/dkms/kvmgt-guard.txt"))"

# The package's headers are the ones the build read: its check-headers,
# part of DKMS's build command, says so in DKMS's log.
dlog=$(ls "$root"/var/lib/dkms/kvm-dirty-ring/*/"$KVER"/x86_64/log/make.log)
cp "$dlog" "$OUT/dkms/dkms-make.log"
! grep -i "warning:\|error:" "$dlog" >&2 ||
	die "DKMS's build printed warnings or errors (build/out/dkms/dkms-make.log)"
grep -q "^check-headers: .* the package's headers only" "$dlog" ||
	die "DKMS's build log has no verdict of check-headers (build/out/dkms/dkms-make.log)"
log "$(grep "^check-headers:" "$dlog")"
src=$(ls -d "$root"/usr/src/kvm-dirty-ring-*)

# The same source with the stock headers only must not build.
rm -rf "$root/tmp/stockbuild"
cp -a "$src" "$root/tmp/stockbuild"
if in_root make -C "/lib/modules/$KVER/build" M=/tmp/stockbuild/arch/x86/kvm \
	KVM_DKMS_STOCK_HEADERS=1 -j"$JOBS" modules >"$OUT/dkms/stock-headers.log" 2>&1; then
	die "the series' KVM built against the stock headers alone (log: build/out/dkms/stock-headers.log)"
fi
first=$(grep -m1 "error:" "$OUT/dkms/stock-headers.log" | sed 's|.*/stockbuild/||')
log "stock headers alone: the build fails as it must ($first)"
rm -rf "$root/tmp/stockbuild"

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
		what="not rebuilt (its source is not in the headers package); the kernel refuses the stock one beside the package's kvm.ko, and modprobe's hook says why: ${#changed[@]} of the $total KVM symbols it imports changed version" ;;
	esac
	printf '%s (depends: %s): %s%s\n' "${ko#$skmods/}" "$deps" "$what" \
		"${changed:+ (${changed[*]})}" >>"$report"
done
log "stock modules that import KVM's symbols (build/out/dkms/dependents.txt):"
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
log "debian11-dkms: Debian 11's vmlinuz; modules: $order"
