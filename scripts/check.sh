#!/bin/bash
# Boot the built kernel once per x86 MMU configuration and run the
# suite; print every result and close with "N passed, N failed[, N skipped]".
#   BOOTS="npt tdp shadow"   which configurations to boot
#   ONLY=name,name           run only these tests
set -uo pipefail
. "$(dirname "$0")/lib.sh"

BOOTS=${BOOTS:-npt tdp shadow}
TMO_SCALE=1
if [ "${DEBUG:-0}" = 1 ]; then
	# The debug kernel runs the dirty tracking tests, more slowly.
	TMO_SCALE=4
	: "${ONLY:=$(awk '/^(dirty|clear|ring|memslot|svm)/ {printf "%s%s", sep, $1; sep=","}' "$TOP/tests/suite.list")}"
fi
# The KVMGT kernel: what a VM pays for memslot metadata when KVMGT is
# built but no vGPU registered with it.
[ "${KVMGT:-0}" = 1 ] && : "${ONLY:=memslot_metadata,svm_nested_paging}"
res=$OUT/results
rm -rf "$res"
mkdir -p "$res"

boot_args() {
	case $1 in
	npt|nptstress) echo "kvm.tdp_mmu=0 kvm_amd.npt=1" ;;
	tdp|tdpstress) echo "kvm.tdp_mmu=1 kvm_amd.npt=1" ;;
	shadow) echo "kvm.tdp_mmu=0 kvm_amd.npt=0" ;;
	*) die "unknown boot $1" ;;
	esac
}

t0=$SECONDS
for b in $BOOTS; do
	log "boot '$b' ($(boot_args "$b")): console log ${res#$TOP/}/console-$b.log"
	tb=$SECONDS
	python3 "$TOP/scripts/run-vm.py" --quiet --boot "$b" \
		--append "$(boot_args "$b") kvmtest.tmo_scale=$TMO_SCALE" \
		--grace $((60 * TMO_SCALE)) --boot-timeout $((180 * TMO_SCALE)) \
		--only "${ONLY:-}" --kernel "$OUT/bzImage" --initrd "$OUT/initramfs.cpio.gz" \
		--log "$res/console-$b.log" --results "$res/$b.jsonl" |
		while IFS= read -r line; do
			case "$line" in @@RESULT*) log "${line#@@RESULT }" ;; esac
		done
	log "boot '$b' finished in $((SECONDS - tb)) s"
done

python3 - "$res" $BOOTS <<'PY'
import json, os, sys
res, boots = sys.argv[1], sys.argv[2:]
n = {"PASS": 0, "FAIL": 0, "SKIP": 0}
rows = []
for b in boots:
    p = os.path.join(res, b + ".jsonl")
    if not os.path.exists(p):
        rows.append(("FAIL", b, "boot", 0, "no results")); n["FAIL"] += 1
        continue
    for l in open(p):
        r = json.loads(l)
        n[r["status"]] += 1
        rows.append((r["status"], b, r["name"], r["secs"], r.get("why", "")))
print()
print("%-5s %-7s %-26s %6s  %s" % ("", "boot", "test", "secs", ""))
for s, b, name, secs, why in rows:
    print("%-5s %-7s %-26s %6d  %s" % (s, b, name, secs, why[:110]))
print()
fails = [r for r in rows if r[0] == "FAIL"]
for s, b, name, secs, why in fails:
    print("FAILED: %s/%s: %s (console log: %s/console-%s.log)" % (b, name, why, res, b))
line = "%d passed, %d failed" % (n["PASS"], n["FAIL"])
if n["SKIP"]:
    line += ", %d skipped" % n["SKIP"]
print(line)
sys.exit(1 if n["FAIL"] or not n["PASS"] else 0)
PY
rc=$?
log "suite finished in $((SECONDS - t0)) s"
exit $rc
