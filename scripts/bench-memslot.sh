#!/bin/bash
# Benchmark: memslot metadata per guest page, the pinned base against the
# series, side by side, under the three x86 MMU configurations.  Builds
# the base kernel in the bisect worktree (through ccache), boots both
# kernels with memslot_metadata_test, and prints one table.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
TREE=$MAIN_TREE

[ -f "$OUT/bzImage" ] && [ -f "$OUT/initramfs.cpio.gz" ] || die "run 'make initramfs' first"
bis=$BUILD/bisect
[ -d "$bis" ] || git -C "$TREE" worktree add -q --detach "$bis" "$BASE_TAG"
git -C "$bis" checkout -q --detach "$BASE_TAG"
cp "$TREE/.config" "$bis/.config"
export CCACHE_DIR=${CCACHE_DIR:-${HOME:-/root}/.cache/kvm-dirty-ccache}
export CCACHE_BASEDIR=$bis
cc=gcc
command -v ccache >/dev/null && cc="ccache gcc"
run_logged "building the base kernel" "$OUT/bench-base-build.log" \
	make -C "$bis" -j"$JOBS" CC="$cc" olddefconfig bzImage
mkdir -p "$OUT/bench"
cp "$bis/arch/x86/boot/bzImage" "$OUT/bench/bzImage-base"

for k in base series; do
	kernel=$OUT/bzImage
	[ $k = base ] && kernel=$OUT/bench/bzImage-base
	for b in npt tdp shadow; do
		case $b in
		npt) args="kvm.tdp_mmu=0 kvm_amd.npt=1" ;;
		tdp) args="kvm.tdp_mmu=1 kvm_amd.npt=1" ;;
		shadow) args="kvm.tdp_mmu=0 kvm_amd.npt=0" ;;
		esac
		log "booting the $k kernel, $b"
		python3 "$TOP/scripts/run-vm.py" --quiet --boot "$b" --append "$args" \
			--only memslot_metadata --kernel "$kernel" \
			--initrd "$OUT/initramfs.cpio.gz" \
			--log "$OUT/bench/console-$k-$b.log" \
			--results "$OUT/bench/$k-$b.jsonl" >/dev/null || true
	done
done

python3 - "$OUT/bench" <<'PY'
import re, sys, os
d = sys.argv[1]
def figure(k, b):
    t = open(os.path.join(d, "console-%s-%s.log" % (k, b)), errors="replace").read()
    m = re.search(r"memslot metadata, ([^,]+), (\d+) GiB memslot: ([0-9.]+) bytes/page without nested, ([0-9.]+) bytes/page with SVM/VMX in CPUID", t)
    return (m.group(3), m.group(4)) if m else ("?", "?")
names = {"npt": "legacy MMU + NPT", "tdp": "TDP MMU", "shadow": "shadow paging"}
print()
print("Kernel metadata per guest page of an untouched 64 GiB memslot (bytes, VmallocUsed):")
print("%-18s %12s %16s %18s %12s" % ("MMU", "base 5.10", "series", "series, SVM cpuid", "ratio"))
for b in ("npt", "tdp", "shadow"):
    base, _ = figure("base", b)
    ser, nest = figure("series", b)
    try:
        ratio = "%.4f" % (float(ser) / float(base))
    except ValueError:
        ratio = "?"
    print("%-18s %12s %16s %18s %12s" % (names[b], base, ser, nest, ratio))
print("\n'series, SVM cpuid': after KVM_SET_CPUID2 offers a vCPU SVM, which allocates nothing:")
print("the metadata comes with the first shadow MMU root (svm_nested_paging_test).")
PY
