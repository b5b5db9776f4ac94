"""make bench: what collecting and re-arming the dirty log costs, mode by
mode, with dirty_log_perf_test (patch 23 of the series) through
tests/bench/dirty-bench, in the test VM under the three AMD MMU
configurations.

The modes, each what a VMM does:

  bitmap        KVM_GET_DIRTY_LOG collects and re-arms in one ioctl
  clear-slot    KVM_GET_DIRTY_LOG collects, one KVM_CLEAR_DIRTY_LOG for the
                whole slot re-arms (mainline's dirty_log_perf_test,
                through memstress)
  clear-qemu    the same, one KVM_CLEAR_DIRTY_LOG per 1 GiB chunk with
                dirty pages: QEMU 7.2's default clear_bitmap_shift, 18
                (CLEAR_BITMAP_SHIFT_DEFAULT, migration/migration.h: 2^18
                pages of 4 KiB)
  clear-64      the same per 64-page chunk, the finest a VMM can clear
  ring-once     a ring per vCPU large enough for an iteration, harvested
                and re-armed (KVM_RESET_DIRTY_RINGS) once per iteration
  ring-harvest  a 4096-entry ring per vCPU harvested while the vCPUs run,
                every 100 ms and whenever a ring is full, as QEMU's reaper
                does; several resets per iteration

Collect is what puts the dirty set in the VMM's memory (the bitmap copied
out, or the ring's entries copied out and marked harvested); re-arm the
ioctls that write-protect again; for bitmap both are one ioctl, reported
as collect.  The test checks every iteration outside its timers: each
page written reported, the log clean after the re-arm.

Two matrices (BENCH=sweep, the default, or BENCH=fractions):

  sweep      4096 pages written per iteration, spread over slots of
             256 MiB to 256 GiB: the bitmap's cost follows the slot, the
             ring's the pages; the crossover is the headline.  The guest
             touches only the pages it writes, so a slot larger than the
             test VM needs overcommit only (dirty-bench turns it on).
  fractions  0.1 % to 100 % of slots of 256 MiB to 4 GiB (the first
             benchmark's matrix).

Kernels (BENCH_KERNELS): the series on the lean config with KVM built in,
against the pinned base without it (bitmap modes); Debian 11's distro
kernel with the series' KVM as DKMS modules, against the same kernel's
stock KVM (bitmap modes) and Debian 12's stock 6.1, mainline's ring, also
a distro kernel with KVM as modules: the like-for-like pair for ours /
mainline.  On the distro kernels (function tracer) one cell per mode also
runs under ftrace to count what a re-arm does (opcounts.csv).

Iteration 1 pays first-touch costs (page tables, TLB) and is kept out of
the figures; the others are repetitions: median and [min-max].  Under
TCG absolute times mean little: compare ratios taken in the same run.

Writes build/out/bench/dirty-modes.csv (one row per iteration),
opcounts.csv, dirty-modes.md and dirty-modes-*.png (gnuplot).
"""
import csv
import math
import os
import re
import shutil
import statistics
import subprocess
from typing import Dict, List, Optional, Tuple

from . import suite
from .ktap import Status

# Mode -> dirty_log_perf_test options.
RING_ONCE_ENTRIES = 16384
MODES = {
    "bitmap": "-M bitmap",
    "clear-slot": "-M clear-log -C 0",
    "clear-qemu": "-M clear-log -C 262144",
    "clear-64": "-M clear-log -C 64",
    "ring-once": "-M ring -r %d -H 0" % RING_ONCE_ENTRIES,
    "ring-harvest": "-M ring -r 4096 -H 100000",
}
RING_MODES = ("ring-once", "ring-harvest")
ITERATIONS = 5

SWEEP_PAGES = 4096
SWEEP_SIZES = (256, 1024, 4096, 16384, 65536, 262144)
SWEEP_MODES = ("bitmap", "clear-slot", "clear-qemu", "ring-once", "ring-harvest")
# The cell counted under ftrace: 4096 pages of a 4 GiB slot.
COUNT_CELL = (1, 4096, 256)
COUNT_ITERATIONS = 3
COUNT_KERNELS = ("debian11-dkms", "debian11", "mainline")

# Slot size (MiB) -> strides: one page in every STRIDE (1000: 0.1 %, ...
# 1: 100 %); a nested guest under TCG dirties a few thousand pages a
# second, so the densest cells of the larger slots are left out.
FRACTIONS = {256: (1000, 100, 10, 1), 1024: (1000, 100, 10), 4096: (1000, 100)}
FRACTION_MODES = ("bitmap", "clear-slot", "clear-64", "ring-harvest")
TWO_VCPUS = (1024,)
QUICK = {"sweep": ((256, 16), (65536, 4096)), "fractions": ((256, 100), (256, 1))}

KERNELS = ("series", "base", "debian11-dkms", "debian11", "mainline")
# The kernels without the ring run the bitmap and the whole-slot clear.
NO_RING = ("base", "debian11")
NO_RING_MODES = ("bitmap", "clear-slot")
# The series on the lean config runs the whole sweep, for the crossover;
# the other kernels, which compare the same modes kernel against kernel,
# three of its sizes.
FULL_SWEEP = ("series",)
PAIR_SIZES = (256, 4096, 65536)
MMUS = ("npt", "tdp", "shadow")
# The test VM's memory: the guest page tables of a 256 GiB slot (512 MiB),
# its rmaps on the shadow MMU (512 MiB), the bitmaps, the written pages.
MEM = "6G"


def fraction(stride: int) -> str:
    return "%g%%" % (100.0 / stride)


def cells(matrix: str, quick: bool = False,
          sizes: Optional[List[int]] = None) -> List[Tuple[int, int, int]]:
    """(vCPUs, slot MiB, stride); sizes narrows the sweep."""
    if quick:
        return [(1, size, stride) for size, stride in QUICK[matrix]]
    if matrix == "sweep":
        return [(1, size, size * 256 // SWEEP_PAGES) for size in SWEEP_SIZES
                if not sizes or size in sizes]
    out = []
    for size, strides in FRACTIONS.items():
        for s in strides:
            out.append((1, size, s))
            if size in TWO_VCPUS:
                out.append((2, size, s))
    return out


def modes_for(kernel: str, matrix: str) -> List[str]:
    modes = SWEEP_MODES if matrix == "sweep" else FRACTION_MODES
    return [m for m in modes if kernel not in NO_RING or m in NO_RING_MODES]


def test_name(mode: str, vcpus: int, size: int, stride: int, count: bool = False) -> str:
    return "%s%s_%dv_%dM_s%d" % ("count_" if count else "", mode.replace("-", "_"),
                                 vcpus, size, stride)


NAME = re.compile(r"(count_)?([a-z_0-9]+?)_(\d+)v_(\d+)M_s(\d+)$")


def _entry(mode: str, vcpus: int, size: int, stride: int, count: bool) -> suite.Entry:
    iters = COUNT_ITERATIONS if count else ITERATIONS
    argv = "dirty-bench %s-i %d -v %d -b %dM -s %d %s" % (
        "--count " if count else "", iters, vcpus, size // vcpus, stride, MODES[mode])
    pages = (size << 8) // stride
    # VM setup grows with the slot (about 30 s for 256 GiB), the writes
    # at about 2000 pages a second at worst.
    tmo = 120 + size // 1024 + (iters + 1) * pages // 2000
    name = test_name(mode, vcpus, size, stride, count)
    return suite.Entry(name, [suite.Test(name, tmo, argv)], False)


def boot(kernel: str, mmu: str, matrix: str = "sweep", quick: bool = False,
         sizes: Optional[List[int]] = None, counts_only: bool = False) -> suite.Boot:
    if matrix == "sweep" and not quick and kernel not in FULL_SWEEP:
        sizes = [x for x in PAIR_SIZES if not sizes or x in sizes]
    entries = [] if counts_only else [
        _entry(mode, v, size, stride, False) for v, size, stride in
        cells(matrix, quick, sizes) for mode in modes_for(kernel, matrix)]
    if kernel in COUNT_KERNELS and matrix == "sweep":
        entries += [_entry(mode, *COUNT_CELL, True) for mode in modes_for(kernel, matrix)]
    return suite.Boot(suite.MMUS[mmu], "bench", entries, kernel)


ITER = re.compile(r"Iteration (\d+) dirty memory time: (\d+)\.(\d+)s")
COLLECT = re.compile(r"Iteration (\d+) collect time: (\d+)\.(\d+)s, re-arm time: "
                     r"(\d+)\.(\d+)s, (\d+) pages dirty(?:, (\d+) re-arming ioctls)?")
PERF = re.compile(r"perf: (.*)")
OPCOUNT = re.compile(r"opcount: (\S+) (\S+)(?: (.*))?")


def _secs(a: str, b: str) -> float:
    return int(a) + int(b) / 1e9


def parse(output: List[str]) -> Tuple[Dict[str, str], List[Dict[str, float]], Dict[str, str]]:
    """The "perf:" summary, one row per iteration, and the op counts."""
    summary: Dict[str, str] = {}
    iters: Dict[int, Dict[str, float]] = {}
    ops: Dict[str, str] = {}
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
            it["ioctls"] = int(m.group(7) or 0)
        m = PERF.search(line)
        if m:
            summary = dict(kv.split("=", 1) for kv in m.group(1).split() if "=" in kv)
        m = OPCOUNT.search(line)
        if m:
            ops[m.group(1)] = m.group(2) if not m.group(3) else "%s %s" % (m.group(2), m.group(3))
    return summary, [iters[k] for k in sorted(iters) if "collect_s" in iters[k]], ops


CSV_FIELDS = ("kernel", "mmu", "mode", "vcpus", "slot_mib", "fraction", "stride",
              "iteration", "dirty_s", "collect_s", "rearm_s", "rearm_ioctls", "pages_written",
              "pages_reported", "ring_full_exits", "log_bytes", "status")
OP_FIELDS = ("kernel", "mmu", "mode", "slot_mib", "stride", "function", "calls", "us",
             "dirty_pages", "calls_per_dirty_page", "us_per_dirty_page")


def _ran(results) -> set:
    return {(r.boot.kernel, r.boot.mmu.name, o.name) for r in results for o in r.outcomes
            if o.status is not Status.NOT_RUN}


def rows_of(results) -> List[dict]:
    rows = []
    ran = _ran(results)
    for r in results:
        for o in r.outcomes:
            m = NAME.match(o.name)
            if not m or m.group(1):
                continue
            if o.status is Status.NOT_RUN and (r.boot.kernel, r.boot.mmu.name, o.name) in ran:
                continue        # run again in a later boot
            summary, iters, _ = parse(o.output)
            stride = int(m.group(5))
            base = dict(kernel=r.boot.kernel, mmu=r.boot.mmu.name,
                        mode=m.group(2).replace("_", "-"), vcpus=int(m.group(3)),
                        slot_mib=int(m.group(4)), stride=stride,
                        fraction=fraction(stride), status=o.status.value,
                        pages_written=summary.get("written", ""),
                        ring_full_exits=summary.get("ring_full_exits", ""),
                        log_bytes=summary.get("log_bytes", ""))
            if o.status is not Status.PASS or not iters:
                rows.append(dict(base, iteration="", dirty_s="", collect_s="", rearm_s="",
                                 rearm_ioctls="", pages_reported=""))
                continue
            for i, it in enumerate(iters, 1):
                rows.append(dict(base, iteration=i, dirty_s="%.6f" % it["dirty_s"],
                                 collect_s="%.6f" % it["collect_s"],
                                 rearm_s="%.6f" % it["rearm_s"], rearm_ioctls=it["ioctls"],
                                 pages_reported=it["reported"]))
    return rows


def opcount_rows(results) -> Tuple[List[dict], List[str]]:
    """One row per counted function, and what went wrong."""
    rows, bad = [], []
    for r in results:
        for o in r.outcomes:
            m = NAME.match(o.name)
            if not m or not m.group(1) or o.status is Status.NOT_RUN:
                continue
            _, iters, ops = parse(o.output)
            where = "%s %s %s" % (r.boot.kernel, r.boot.mmu.name, o.name)
            if o.status is not Status.PASS:
                bad.append("%s: %s" % (where, o.status.value))
                continue
            if "LOST" in ops:
                bad.append("%s: the trace buffer lost events (%s)" % (where, ops["LOST"]))
                continue
            pages = sum(it["reported"] for it in iters)
            for fn, v in sorted(ops.items()):
                row = dict(kernel=r.boot.kernel, mmu=r.boot.mmu.name,
                           mode=m.group(2).replace("_", "-"), slot_mib=int(m.group(4)),
                           stride=int(m.group(5)), function=fn, dirty_pages=pages)
                w = v.split()
                if len(w) == 2 and pages:
                    row.update(calls=int(w[0]), us=float(w[1]),
                               calls_per_dirty_page="%.3f" % (int(w[0]) / pages),
                               us_per_dirty_page="%.3f" % (float(w[1]) / pages))
                else:
                    row.update(calls=v)
                rows.append(row)
    return rows, bad


def write_csv(path: str, rows: List[dict], fields=CSV_FIELDS) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in fields})


Key = Tuple[str, str, str, int, int, int]   # kernel, mmu, mode, vcpus, slot, stride


def samples(rows: List[dict]) -> Dict[Key, Dict[str, List[float]]]:
    """Per cell, iterations 2 and later."""
    out: Dict[Key, Dict[str, List[float]]] = {}
    for r in rows:
        if r["status"] != "PASS" or r["iteration"] == "" or int(r["iteration"]) < 2:
            continue
        k = (r["kernel"], r["mmu"], r["mode"], int(r["vcpus"]), int(r["slot_mib"]),
             int(r["stride"]))
        s = out.setdefault(k, {"cost": [], "collect": [], "rearm": [], "dirty": [],
                               "written": [], "reported": [], "ioctls": [], "log": []})
        s["cost"].append(float(r["collect_s"]) + float(r["rearm_s"]))
        s["collect"].append(float(r["collect_s"]))
        s["rearm"].append(float(r["rearm_s"]))
        s["dirty"].append(float(r["dirty_s"]))
        s["written"].append(float(r["pages_written"]))
        s["reported"].append(float(r["pages_reported"]))
        s["ioctls"].append(float(r["rearm_ioctls"] or 0))
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


def size_label(mib: int) -> str:
    return "%d GiB" % (mib // 1024) if mib >= 1024 else "%d MiB" % mib


def crossover(pts: List[Tuple[int, float]]) -> str:
    """Where a/b (by slot size) falls to 1, interpolated on log-log axes."""
    pts = sorted(pts)
    if not pts:
        return "-"
    if pts[0][1] <= 1:
        return "at or below %s (%.2f there)" % (size_label(pts[0][0]), pts[0][1])
    for (s0, r0), (s1, r1) in zip(pts, pts[1:]):
        if r1 <= 1 < r0:
            t = math.log(r0) / (math.log(r0) - math.log(r1))
            at = math.exp(math.log(s0) + t * (math.log(s1) - math.log(s0)))
            return "near %s (%.2f at %s, %.2f at %s)" % (
                size_label(int(round(at / 256.0)) * 256 or 256), r0, size_label(s0), r1,
                size_label(s1))
    return "not reached up to %s (%.2f there)" % (size_label(pts[-1][0]), pts[-1][1])


KERNEL_LABELS = {
    "series": "series (lean)", "base": "base (lean)", "debian11-dkms": "Debian 11 + DKMS",
    "debian11": "Debian 11 stock", "mainline": "Debian 12 6.1",
}


def sweep_markdown(rows: List[dict], ops: List[dict]) -> str:
    s = samples(rows)
    mmus = [m for m in MMUS if any(k[1] == m for k in s)]
    kernels = [k for k in KERNELS if any(x[0] == k for x in s)]
    sizes = sorted({k[4] for k in s})
    g = lambda kern, mmu, mode, size, what="cost": s.get(
        (kern, mmu, mode, 1, size, size * 256 // SWEEP_PAGES), {}).get(what)
    out = ["# Dirty logging: cost against memory size", "",
           "%d pages written per iteration, one in every slot/%d pages; one vCPU.  "
           "Milliseconds per iteration, median of iterations 2-%d [min-max] "
           "(iteration 1 pays first-touch costs and is left out).  Under QEMU TCG "
           "(nested guests): compare ratios, taken in this run." % (
               SWEEP_PAGES, SWEEP_PAGES, ITERATIONS), "",
           "Kernels: " + "; ".join("`%s` %s" % (KERNEL_LABELS[k], suite.KERNELS[k].label)
                                   for k in kernels) + ".", ""]
    heads = []
    for mmu in mmus:
        out += ["## %s (%s)" % (mmu, suite.MMUS[mmu].label), "",
                "### Collect + re-arm per iteration (ms)", "",
                "| slot | kernel | " + " | ".join(SWEEP_MODES) + " |",
                "| --- | --- |" + " --- |" * len(SWEEP_MODES)]
        for size in sizes:
            for kern in kernels:
                if not any(g(kern, mmu, m, size) for m in SWEEP_MODES):
                    continue
                out.append("| %s | %s | %s |" % (size_label(size), KERNEL_LABELS[kern], " | ".join(
                    fmt_ms(g(kern, mmu, m, size)) for m in SWEEP_MODES)))
        out += ["", "### Collect and re-arm apart (ms): collect / re-arm / re-arming ioctls "
                "per iteration", "",
                "| slot | kernel | " + " | ".join(SWEEP_MODES) + " |",
                "| --- | --- |" + " --- |" * len(SWEEP_MODES)]
        for size in sizes:
            for kern in kernels:
                cols = []
                for m in SWEEP_MODES:
                    c, r_, n = (g(kern, mmu, m, size, w) for w in ("collect", "rearm", "ioctls"))
                    cols.append("%.2f / %.2f / %g" % (1e3 * med(c), 1e3 * med(r_), med(n))
                                if c else "-")
                if any(c != "-" for c in cols):
                    out.append("| %s | %s | %s |" % (size_label(size), KERNEL_LABELS[kern],
                                                     " | ".join(cols)))
        out += ["", "### Ratios of collect + re-arm (medians, same slot, same run)", "",
                "| slot | ring-once / bitmap (series) | ring-once / clear-slot (series) | "
                "ring-once: DKMS / 6.1 | ring-once re-arm: DKMS / 6.1 | "
                "ring-harvest: DKMS / 6.1 | bitmap: series / base | "
                "bitmap: DKMS / Debian 11 stock | bitmap: DKMS / 6.1 |",
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for size in sizes:
            out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                size_label(size),
                ratio(g("series", mmu, "ring-once", size), g("series", mmu, "bitmap", size)),
                ratio(g("series", mmu, "ring-once", size), g("series", mmu, "clear-slot", size)),
                ratio(g("debian11-dkms", mmu, "ring-once", size),
                      g("mainline", mmu, "ring-once", size)),
                ratio(g("debian11-dkms", mmu, "ring-once", size, "rearm"),
                      g("mainline", mmu, "ring-once", size, "rearm")),
                ratio(g("debian11-dkms", mmu, "ring-harvest", size),
                      g("mainline", mmu, "ring-harvest", size)),
                ratio(g("series", mmu, "bitmap", size), g("base", mmu, "bitmap", size)),
                ratio(g("debian11-dkms", mmu, "bitmap", size),
                      g("debian11", mmu, "bitmap", size)),
                ratio(g("debian11-dkms", mmu, "bitmap", size),
                      g("mainline", mmu, "bitmap", size))))
        out += ["", "### Re-arm per dirty page (microseconds, median)", "",
                "Bitmap's re-arm is inside KVM_GET_DIRTY_LOG: its whole ioctl is given.", "",
                "| slot | kernel | ring-once | ring-harvest | clear-slot | clear-qemu | "
                "bitmap (collect + re-arm) |", "| --- | --- | --- | --- | --- | --- | --- |"]
        for size in sizes:
            for kern in kernels:
                def per_page(mode, what="rearm"):
                    x = g(kern, mmu, mode, size, what)
                    rep = g(kern, mmu, mode, size, "reported")
                    if not x or not rep:
                        return "-"
                    return "%.2f" % (1e6 * med(x) / med(rep))
                cols = [per_page(m) for m in ("ring-once", "ring-harvest", "clear-slot",
                                              "clear-qemu")] + [per_page("bitmap", "cost")]
                if any(c != "-" for c in cols):
                    out.append("| %s | %s | %s |" % (size_label(size), KERNEL_LABELS[kern],
                                                     " | ".join(cols)))
        for kern in ("series", "debian11-dkms", "mainline"):
            for other in ("bitmap", "clear-slot"):
                pts = [(size, med(g(kern, mmu, "ring-once", size)) /
                        med(g(kern, mmu, other, size)))
                       for size in sizes if g(kern, mmu, "ring-once", size) and
                       g(kern, mmu, other, size)]
                if pts:
                    heads.append("- %s, %s: ring-once against %s: crossover %s" % (
                        mmu, KERNEL_LABELS[kern], other, crossover(pts)))
        out.append("")
    out += ["## Crossovers (collect + re-arm of the ring re-armed once per iteration, "
            "divided by the other mode's, same kernel)", ""] + heads + [""]
    out += opcount_markdown(ops)
    failed = sorted({(r["kernel"], r["mmu"], r["mode"], int(r["vcpus"]), int(r["slot_mib"]),
                      int(r["stride"]), r["status"]) for r in rows if r["status"] != "PASS"})
    if failed:
        out += ["", "## Cells that did not pass", ""]
        out += ["- %s %s %s %dv %d MiB stride %d: %s" % f for f in failed]
    return "\n".join(out) + "\n"


# The op-count table's columns: the like-for-like pair, the main modes
# (opcounts.csv has every counted cell).
OP_KERNELS = ("debian11-dkms", "mainline")
OP_MODES = ("bitmap", "clear-slot", "ring-once", "ring-harvest")


def opcount_markdown(ops: List[dict]) -> List[str]:
    if not ops:
        return []
    out = ["## What collect and re-arm do: calls per dirty page (microseconds per dirty page)",
           "", "ftrace's function graph tracer on the distro kernels (Debian 11 + DKMS is the "
           "series' KVM), %d iterations of %d pages in a %s slot, all iterations; each "
           "cell's calls and time divide by the pages its iterations reported.  A function "
           "the compiler inlined is absent.  Times include the tracer's cost for the traced "
           "calls below a function: compare the counts across kernels, the times within a "
           "column." % (COUNT_ITERATIONS, SWEEP_PAGES, size_label(COUNT_CELL[1])), ""]
    for mmu in MMUS:
        cols = [(k, m) for m in OP_MODES for k in OP_KERNELS
                if any(o["mmu"] == mmu and o["kernel"] == k and o["mode"] == m for o in ops)]
        if not cols:
            continue
        fns = sorted({o["function"] for o in ops if o["mmu"] == mmu and
                      any(o["kernel"] == k and o["mode"] == m for k, m in cols) and
                      o.get("calls_per_dirty_page")})
        out += ["### %s" % mmu, "",
                "| function | " + " | ".join("%s %s" % (m, KERNEL_LABELS[k]) for k, m in cols)
                + " |", "| --- |" + " --- |" * len(cols)]
        for fn in fns:
            cells_ = []
            for k, m in cols:
                o = next((o for o in ops if o["mmu"] == mmu and o["kernel"] == k and
                          o["mode"] == m and o["function"] == fn), None)
                if o is None:
                    cells_.append("-")
                elif not o.get("calls_per_dirty_page"):
                    cells_.append(str(o["calls"]))
                elif float(o["calls_per_dirty_page"]) < 0.01:
                    # Once per ioctl or so: per iteration says more.
                    cells_.append("%.3g per iteration" % (o["calls"] / COUNT_ITERATIONS))
                else:
                    cells_.append("%s (%s)" % (o["calls_per_dirty_page"],
                                               o["us_per_dirty_page"]))
            out.append("| `%s` | %s |" % (fn, " | ".join(cells_)))
        out.append("")
    return out


def fractions_markdown(rows: List[dict]) -> str:
    s = samples(rows)
    mmus = [m for m in MMUS if any(k[1] == m for k in s)]
    cellkeys = sorted({(k[3], k[4], k[5]) for k in s}, key=lambda c: (c[1], c[0], -c[2]))
    out = ["# Dirty logging modes against the dirty fraction", "",
           "Collect + re-arm per iteration (ms), median of iterations 2-%d [min-max]." %
           ITERATIONS, ""]
    kernels = [k for k in KERNELS if any(x[0] == k for x in s)]
    for mmu in mmus:
        out += ["## %s (%s)" % (mmu, suite.MMUS[mmu].label), "",
                "| slot | dirty | vCPUs | kernel | " + " | ".join(FRACTION_MODES) + " |",
                "| --- | --- | --- | --- |" + " --- |" * len(FRACTION_MODES)]
        for v, size, stride in cellkeys:
            for kern in kernels:
                cols = [fmt_ms(s.get((kern, mmu, m, v, size, stride), {}).get("cost"))
                        for m in FRACTION_MODES]
                if any(c != "-" for c in cols):
                    out.append("| %s | %s | %d | %s | %s |" % (
                        size_label(size), fraction(stride), v, KERNEL_LABELS[kern],
                        " | ".join(cols)))
        out.append("")
    return "\n".join(out) + "\n"


# Line colour per mode, dash per kernel (solid ours, dashed mainline).
COLOURS = {"bitmap": 1, "clear-slot": 2, "clear-qemu": 3, "clear-64": 5, "ring-once": 4,
           "ring-harvest": 7}
DASHES = {"series": 1, "debian11-dkms": 1, "base": 3, "debian11": 3, "mainline": 2}


def _plot(png: str, title: str, xlabel: str, series, outdir: str, xrange: str = "[*:*]") -> None:
    data = png[:-4] + ".dat"
    with open(data, "w") as f:
        for _, _, _, pts in series:
            for x, ys in pts:
                f.write("%g %g %g %g\n" % (x, 1e3 * med(ys), 1e3 * min(ys), 1e3 * max(ys)))
            f.write("\n\n")
    cmds = ['set terminal pngcairo size 900,620 font ",10"', 'set output "%s"' % png,
            'set title "%s"' % title, 'set logscale xy', 'set xlabel "%s"' % xlabel,
            'set ylabel "ms per iteration (median of iterations 2-%d, bars min-max)"' % ITERATIONS,
            'set key outside right top', 'set grid', 'set bars small', 'set xrange %s' % xrange]
    plot = ['"%s" index %d using 1:2:3:4 with yerrorlines lc %d dt %d lw 2 pt 7 ps 0.6 '
            'title "%s"' % (data, i, COLOURS[mode], DASHES[kern], t)
            for i, (t, kern, mode, _) in enumerate(series)]
    cmds.append("plot " + ", ".join(plot))
    subprocess.run(["gnuplot"], input="\n".join(cmds), text=True, check=True)
    os.unlink(data)


def plots(rows: List[dict], outdir: str, matrix: str = "sweep") -> List[str]:
    """Sweep: per MMU, collect + re-arm against the slot size (log-log),
    the series' modes in one plot, the like-for-like distro kernels in
    another.  Fractions: per MMU and slot, against the dirty fraction."""
    if not shutil.which("gnuplot"):
        return []
    s = samples(rows)
    made = []
    for mmu in MMUS:
        if matrix == "sweep":
            sets = (("series", ("series", "base"), SWEEP_MODES,
                     "the series (lean config), the base without it (dotted)"),
                    ("distro", ("debian11-dkms", "mainline", "debian11"),
                     ("bitmap", "clear-slot", "ring-once", "ring-harvest"),
                     "Debian 11 + DKMS (solid), 6.1 (dashed), Debian 11 stock (dotted)"))
            for tag, kerns, modes, what in sets:
                series = []
                for kern in kerns:
                    for mode in modes:
                        pts = sorted((k[4] / 1024.0, x["cost"]) for k, x in s.items()
                                     if k[:3] == (kern, mmu, mode) and k[3] == 1)
                        if pts:
                            series.append(("%s %s" % (KERNEL_LABELS[kern], mode), kern, mode,
                                           pts))
                if not series:
                    continue
                png = os.path.join(outdir, "dirty-modes-%s-%s.png" % (mmu, tag))
                _plot(png, "%s, %d pages written per iteration:\\n%s" % (
                    suite.MMUS[mmu].label, SWEEP_PAGES, what),
                    "memslot size (GiB)", series, outdir, "[0.2:320]")
                made.append(png)
            continue
        for size in sorted({k[4] for k in s if k[1] == mmu}):
            series = []
            for kern in KERNELS:
                for mode in FRACTION_MODES:
                    pts = sorted((100.0 / k[5], x["cost"]) for k, x in s.items()
                                 if k[:3] == (kern, mmu, mode) and k[3] == 1 and k[4] == size)
                    if pts:
                        series.append(("%s %s" % (KERNEL_LABELS[kern], mode), kern, mode, pts))
            if series:
                png = os.path.join(outdir, "dirty-modes-%s-%dM.png" % (mmu, size))
                _plot(png, "%s, %s slot, 1 vCPU: collect + re-arm" % (
                    suite.MMUS[mmu].label, size_label(size)),
                    "pages written per iteration (% of the slot)", series, outdir)
                made.append(png)
    return made
