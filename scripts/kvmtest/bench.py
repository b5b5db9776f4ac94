"""make bench: the three dirty logging modes side by side, on the series
and on mainline's ring (Debian 12's stock 6.1), under the three AMD MMU
configurations, with dirty_log_perf_test (patch 23 of the series):

  bitmap     KVM_GET_DIRTY_LOG collects and re-arms
  clear-log  KVM_GET_DIRTY_LOG collects, KVM_CLEAR_DIRTY_LOG re-arms in
             64-page chunks
  ring       a 4096-entry ring per vCPU harvested by a host thread while
             the vCPUs run, KVM_RESET_DIRTY_RINGS re-arms

Each cell (memory size, fraction of its pages the guest writes per
iteration, spread over the whole slot, vCPUs) runs ITERATIONS iterations;
each iteration is one repetition of the measurement.  Everything runs
under QEMU's TCG: absolute times mean little, so the report leads with
ratios taken in the same run and gives the spread (min-max) of the
repetitions.

Writes build/out/bench/dirty-modes.csv (one row per iteration),
dirty-modes.md (the tables) and dirty-modes-MMU-SIZE.png (gnuplot).
"""
import csv
import os
import re
import shutil
import statistics
import subprocess
from typing import Dict, List, Optional, Tuple

from . import suite
from .ktap import Status

MODES = ("bitmap", "clear-log", "ring")
RING_ENTRIES = 4096
ITERATIONS = 5
# Slot size (MiB) -> strides: the guest writes one page in every STRIDE
# (1000: 0.1 %, 100: 1 %, 10: 10 %, 1: 100 %).  Under TCG a nested guest
# dirties about 5000 pages a second, so the densest cells of the larger
# slots (more than 65536 pages per iteration) are left out.
MATRIX = {256: (1000, 100, 10, 1), 1024: (1000, 100, 10), 4096: (1000, 100)}
# Two vCPUs on the 1 GiB slot.
TWO_VCPUS = (1024,)
QUICK = {256: (100, 1)}
KERNELS = ("series", "mainline")
MMUS = ("npt", "tdp", "shadow")
# The test VM's memory for these boots: a 4 GiB slot, the pages written,
# and the rest of the guest.
MEM = "6G"


def fraction(stride: int) -> str:
    return "%g%%" % (100.0 / stride)


def cells(quick: bool = False) -> List[Tuple[int, int, int]]:
    """(vCPUs, slot MiB, stride)."""
    out = []
    for size, strides in (QUICK if quick else MATRIX).items():
        for s in strides:
            out.append((1, size, s))
            if size in TWO_VCPUS and not quick:
                out.append((2, size, s))
    return out


def test_name(mode: str, vcpus: int, size: int, stride: int) -> str:
    return "%s_%dv_%dM_s%d" % (mode.replace("-", "_"), vcpus, size, stride)


def boot(kernel: str, mmu: str, quick: bool = False) -> suite.Boot:
    entries = []
    for vcpus, size, stride in cells(quick):
        for mode in MODES:
            argv = "dirty_log_perf_test -i %d -v %d -b %dM -s %d -M %s" % (
                ITERATIONS, vcpus, size // vcpus, stride, mode)
            if mode == "ring":
                argv += " -r %d" % RING_ENTRIES
            name = test_name(mode, vcpus, size, stride)
            pages = (size << 8) // stride
            # The population and the iterations at about 2000
            # pages a second at worst, and the VM's setup.
            tmo = 120 + (ITERATIONS + 1) * pages // 2000
            entries.append(suite.Entry(name, [suite.Test(name, tmo, argv)], False))
    return suite.Boot(suite.MMUS[mmu], "bench", entries, kernel)


ITER = re.compile(r"Iteration (\d+) dirty memory time: (\d+)\.(\d+)s")
COLLECT = re.compile(r"Iteration (\d+) collect time: (\d+)\.(\d+)s, re-arm time: "
                     r"(\d+)\.(\d+)s, (\d+) pages dirty")
PERF = re.compile(r"perf: (.*)")


def _secs(a: str, b: str) -> float:
    return int(a) + int(b) / 1e9


def parse(output: List[str]) -> Tuple[Dict[str, str], List[Dict[str, float]]]:
    """The "perf:" summary and one row per iteration."""
    summary: Dict[str, str] = {}
    iters: Dict[int, Dict[str, float]] = {}
    for line in output:
        m = ITER.search(line)
        if m:
            iters.setdefault(int(m.group(1)), {})["dirty_s"] = _secs(m.group(2), m.group(3))
        m = COLLECT.search(line)
        if m:
            it = iters.setdefault(int(m.group(1)), {})
            it["collect_s"] = _secs(m.group(2), m.group(3))
            it["rearm_s"] = _secs(m.group(4), m.group(5))
            it["reported"] = int(m.group(6))
        m = PERF.search(line)
        if m:
            summary = dict(kv.split("=", 1) for kv in m.group(1).split() if "=" in kv)
    return summary, [iters[k] for k in sorted(iters) if "collect_s" in iters[k]]


CSV_FIELDS = ("kernel", "mmu", "mode", "vcpus", "slot_mib", "fraction", "stride",
              "iteration", "dirty_s", "collect_s", "rearm_s", "pages_written",
              "pages_reported", "ring_full_exits", "log_bytes", "status")


def rows_of(results) -> List[dict]:
    rows = []
    ran = {(r.boot.kernel, r.boot.mmu.name, o.name) for r in results for o in r.outcomes
           if o.status is not Status.NOT_RUN}
    for r in results:
        for o in r.outcomes:
            m = re.match(r"(bitmap|clear_log|ring)_(\d+)v_(\d+)M_s(\d+)$", o.name)
            if not m:
                continue
            if o.status is Status.NOT_RUN and (r.boot.kernel, r.boot.mmu.name, o.name) in ran:
                continue        # run again in a later boot
            summary, iters = parse(o.output)
            base = dict(kernel=r.boot.kernel, mmu=r.boot.mmu.name,
                        mode=m.group(1).replace("_", "-"), vcpus=int(m.group(2)),
                        slot_mib=int(m.group(3)), stride=int(m.group(4)),
                        fraction=fraction(int(m.group(4))), status=o.status.value,
                        pages_written=summary.get("written", ""),
                        ring_full_exits=summary.get("ring_full_exits", ""),
                        log_bytes=summary.get("log_bytes", ""))
            if o.status is not Status.PASS or not iters:
                rows.append(dict(base, iteration="", dirty_s="", collect_s="", rearm_s="",
                                 pages_reported=""))
                continue
            for i, it in enumerate(iters, 1):
                rows.append(dict(base, iteration=i, dirty_s="%.6f" % it["dirty_s"],
                                 collect_s="%.6f" % it["collect_s"],
                                 rearm_s="%.6f" % it["rearm_s"],
                                 pages_reported=it["reported"]))
    return rows


def write_csv(path: str, rows: List[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in CSV_FIELDS})


Key = Tuple[str, str, str, int, int, int]   # kernel, mmu, mode, vcpus, slot, stride


def samples(rows: List[dict]) -> Dict[Key, Dict[str, List[float]]]:
    out: Dict[Key, Dict[str, List[float]]] = {}
    for r in rows:
        if r["status"] != "PASS" or r["iteration"] == "":
            continue
        k = (r["kernel"], r["mmu"], r["mode"], r["vcpus"], r["slot_mib"], r["stride"])
        s = out.setdefault(k, {"cost": [], "dirty": [], "written": [], "log": []})
        s["cost"].append(float(r["collect_s"]) + float(r["rearm_s"]))
        s["dirty"].append(float(r["dirty_s"]))
        s["written"].append(float(r["pages_written"]))
        s["log"].append(float(r["log_bytes"]))
    return out


def med(xs: List[float]) -> float:
    return statistics.median(xs)


def fmt_ms(xs: Optional[List[float]]) -> str:
    if not xs:
        return "-"
    return "%.2f [%.2f-%.2f]" % (1e3 * med(xs), 1e3 * min(xs), 1e3 * max(xs))


def ratio(a: Optional[List[float]], b: Optional[List[float]]) -> str:
    if not a or not b or med(b) == 0:
        return "-"
    return "%.2f" % (med(a) / med(b))


def markdown(rows: List[dict], title: str) -> str:
    s = samples(rows)
    mmus = [m for m in MMUS if any(k[1] == m for k in s)]
    cellkeys = sorted({(k[3], k[4], k[5]) for k in s}, key=lambda c: (c[1], c[0], -c[2]))
    out = ["# %s" % title, "",
           "Under QEMU TCG (nested guests): absolute times vary from run to run;",
           "compare the ratios, taken in one run.  Times are the median of %d" % ITERATIONS,
           "iterations per cell, [min-max] in brackets; `ours` is 5.10 with the",
           "series, `mainline` Debian 12's stock 6.1 in the same test VM.", ""]
    out += ["## Collect + re-arm per iteration (ms)", ""]
    for mmu in mmus:
        out += ["### %s (%s)" % (mmu, suite.MMUS[mmu].label), "",
                "| slot | dirty | vCPUs | bitmap | clear-log | ring | ring / bitmap | "
                "ring / clear-log | ring: ours / mainline | bitmap: ours / mainline |",
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for v, size, stride in cellkeys:
            g = lambda kern, mode: s.get((kern, mmu, mode, v, size, stride), {}).get("cost")
            out.append("| %d MiB | %s | %d | %s | %s | %s | %s | %s | %s | %s |" % (
                size, fraction(stride), v, fmt_ms(g("series", "bitmap")),
                fmt_ms(g("series", "clear-log")), fmt_ms(g("series", "ring")),
                ratio(g("series", "ring"), g("series", "bitmap")),
                ratio(g("series", "ring"), g("series", "clear-log")),
                ratio(g("series", "ring"), g("mainline", "ring")),
                ratio(g("series", "bitmap"), g("mainline", "bitmap"))))
        out.append("")
    out += ["## Guest dirtying throughput (pages written per second, median)", ""]
    for mmu in mmus:
        out += ["### %s" % mmu, "",
                "| slot | dirty | vCPUs | bitmap | clear-log | ring | ring / bitmap | "
                "ring: ours / mainline |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for v, size, stride in cellkeys:
            def tput(kern, mode):
                x = s.get((kern, mmu, mode, v, size, stride))
                return [w / d for w, d in zip(x["written"], x["dirty"]) if d] if x else None
            cols = [tput("series", m) for m in MODES]
            out.append("| %d MiB | %s | %d | %s | %s | %s | %s | %s |" % (
                size, fraction(stride), v,
                *["%.0f" % med(c) if c else "-" for c in cols],
                ratio(cols[2], cols[0]), ratio(tput("series", "ring"), tput("mainline", "ring"))))
        out.append("")
    out += ["## Memory for the dirty log (bytes)", "",
            "| slot | vCPUs | bitmap (memslot bitmap, twice) | ring (%d entries x 16 B per vCPU) |" %
            RING_ENTRIES, "| --- | --- | --- | --- |"]
    seen = set()
    for v, size, stride in cellkeys:
        if (v, size) in seen:
            continue
        seen.add((v, size))
        logs = {m: next((x["log"][0] for k, x in s.items()
                         if k[0] == "series" and k[2] == m and k[3] == v and k[4] == size), None)
                for m in ("bitmap", "ring")}
        out.append("| %d MiB | %d | %s | %s |" % (
            size, v, "%d" % logs["bitmap"] if logs["bitmap"] else "-",
            "%d" % logs["ring"] if logs["ring"] else "-"))
    failed = sorted({(r["kernel"], r["mmu"], r["mode"], r["vcpus"], r["slot_mib"], r["stride"],
                      r["status"]) for r in rows if r["status"] != "PASS"})
    if failed:
        out += ["", "## Cells that did not pass", ""]
        out += ["- %s %s %s %dv %d MiB stride %d: %s" % f for f in failed]
    return "\n".join(out) + "\n"


def plots(rows: List[dict], outdir: str) -> List[str]:
    """One PNG per MMU and slot size: collect + re-arm against the dirty
    fraction, one line per mode and kernel (gnuplot; mainline dashed)."""
    if not shutil.which("gnuplot"):
        return []
    s = samples(rows)
    made = []
    for mmu in MMUS:
        for size in sorted({k[4] for k in s if k[1] == mmu}):
            series = []
            for kern in KERNELS:
                for mode in MODES:
                    pts = sorted(((100.0 / k[5], med(x["cost"]) * 1e3) for k, x in s.items()
                                  if k[:3] == (kern, mmu, mode) and k[3] == 1 and k[4] == size))
                    if pts:
                        series.append(("%s %s" % ("ours" if kern == "series" else "mainline",
                                                  mode), kern, mode, pts))
            if not series:
                continue
            png = os.path.join(outdir, "dirty-modes-%s-%dM.png" % (mmu, size))
            data = os.path.join(outdir, "plot-%s-%dM.dat" % (mmu, size))
            with open(data, "w") as f:
                for title, _, _, pts in series:
                    f.write("# %s\n" % title)
                    for x, y in pts:
                        f.write("%g %g\n" % (x, y))
                    f.write("\n\n")
            cmds = ['set terminal png size 800,560', 'set output "%s"' % png,
                    'set title "%s, %d MiB slot, 1 vCPU: collect + re-arm per iteration"' % (
                        suite.MMUS[mmu].label, size),
                    'set logscale xy', 'set xlabel "pages written per iteration (% of the slot)"',
                    'set ylabel "ms (median of %d)"' % ITERATIONS, 'set key top left', 'set grid']
            plot = []
            for i, (title, kern, mode, _) in enumerate(series):
                plot.append('"%s" index %d with linespoints lc %d dt %d lw 2 title "%s"' % (
                    data, i, MODES.index(mode) + 1, 1 if kern == "series" else 2, title))
            cmds.append("plot " + ", ".join(plot))
            subprocess.run(["gnuplot"], input="\n".join(cmds), text=True, check=True)
            os.unlink(data)
            made.append(png)
    return made
