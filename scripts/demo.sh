#!/bin/bash
# The main job: boot the patched kernel under each x86 MMU configuration,
# run the dirty logging modes on a real nested guest and show a table of
# what each mode reported.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

tests=${DEMO_TESTS:-dirty_log,clear_log}
for t in dirty_ring; do
	grep -q "^$t " "$TOP/tests/suite.list" && tests+=",$t"
done
BOOTS=${BOOTS:-npt tdp shadow} ONLY=$tests "$TOP/scripts/check.sh" >"$OUT/demo-check.log" 2>&1 &
pid=$!
start=$SECONDS
log "booting the test VM three times (npt, tdp, shadow) to run: $tests"
while kill -0 $pid 2>/dev/null; do
	sleep 10
	r=$(grep -h '' "$OUT"/results/*.jsonl 2>/dev/null | wc -l)
	log "  ... $((SECONDS - start)) s, $r results so far"
done
wait $pid
rc=$?

python3 - "$OUT/results" <<'PY'
import json, glob, os, re, sys
rows = []
for b in ("npt", "tdp", "shadow"):
    p = os.path.join(sys.argv[1], b + ".jsonl")
    if not os.path.exists(p):
        continue
    for l in open(p):
        r = json.loads(l)
        out = "\n".join(r.get("out", []))
        dirtied = re.findall(r"Dirtied (\d+) pages", out)
        bits = re.search(r"dirty \((\d+)\), clear \((\d+)\), track_next \((\d+)\)", out)
        ring = re.search(r"harvested (\d+) entries", out)
        mode = re.search(r"Setting log mode to: '([^']+)'", out)
        rows.append((b, mode.group(1) if mode else r["name"], r["status"],
                     dirtied[-1] if dirtied else "-",
                     bits.group(1) if bits else "-", bits.group(2) if bits else "-",
                     ring.group(1) if ring else "-", r["secs"]))
mmu = {"npt": "legacy MMU + NPT", "tdp": "TDP MMU + NPT", "shadow": "shadow paging",
       "tdpstress": "TDP MMU + NPT", "nptstress": "legacy MMU + NPT"}
print()
print("%-18s %-11s %-6s %14s %14s %14s %12s %6s" % (
    "MMU", "log mode", "result", "guest writes", "pages dirty", "pages clean",
    "ring entries", "secs"))
for b, m, s, d, bd, bc, rr, secs in rows:
    print("%-18s %-11s %-6s %14s %14s %14s %12s %6d" % (mmu[b], m, s, d, bd, bc, rr, secs))
print()
print("guest writes: pages the guest rewrote after its first pass over the area")
print("(as 5.10's dirty_log_test counts them); pages dirty/clean: what the host")
print("checked against guest memory over all iterations; ring entries: entries")
print("harvested from the dirty ring and reset.")
PY
tail -n 1 "$OUT/demo-check.log"
exit $rc
