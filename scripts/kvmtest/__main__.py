"""python3 -m kvmtest SUBCOMMAND (scripts/lib.sh's kvmtest() sets the path).

  check          boot each MMU configuration with a test group; print every
                 result, a table and "N passed, N failed[, N skipped]";
                 write build/out/results.tap (the whole run, nested KTAP)
  vm             one boot with its console on the terminal (build/out/vm.tap)
  demo           the dirty logging modes under the three MMUs, as a table
                 (build/out/demo.tap)
  bench-memslot  memslot metadata per page, base kernel against series
  bench          the dirty logging modes side by side: cost against memory
                 size (BENCH=sweep) or dirty fraction (BENCH=fractions)
                 (scripts/kvmtest/bench.py; QUICK=1, BENCH_KERNELS, MMUS)
  programs       the test programs the initramfs must hold
  plan           the plan a boot hands its guest
  selftest       the harness's own tests (recorded consoles, no QEMU)

Make passes its variables through the environment: MMUS ("npt tdp
shadow"), GROUP (suite, stress), ONLY (test names, comma separated),
DEBUG=1 / KVMGT=1 (the kernel variant).
"""
import argparse
import os
import signal
import subprocess
import sys
import time
import unittest

from . import matrix, run, suite
from .ktap import Status
from .matrix import DEMO_TESTS
from .report import (counts, demo_rows, log, memslot_figures,  # noqa: F401
                     print_demo, report, summary_line, tap_consumer_counts, write_tap)

TOP = suite.TOP


def out_dir() -> str:
    """build/out of the selected variant; scripts/lib.sh is its home."""
    if os.environ.get("OUT"):
        return os.environ["OUT"]
    return subprocess.run(["bash", "-c", '. "$1/scripts/lib.sh" && echo "$OUT"', "-", TOP],
                          check=True, capture_output=True, text=True).stdout.strip()


def _print_outcome(o: run.Outcome) -> None:
    log("%-7s %s %s %ds%s" % (o.status.value, o.boot, o.name, o.secs,
                              ": " + o.reason if o.reason else ""))


def run_boots(boots, variant, kernel=None, initramfs=None, resdir=None,
              quiet=False, echo=None, mem=None):
    out = out_dir()
    initramfs = initramfs or os.path.join(out, "initramfs.cpio.gz")
    resdir = resdir or os.path.join(out, "results")
    need = [(initramfs, "initramfs")] + [
        (os.path.join(out, f), target) for b in boots for f, target in b.needs()
        if not kernel or f != suite.KERNELS[b.kernel].image]
    for f, target in need:
        if not os.path.exists(f):
            raise suite.SuiteError("%s is missing: run 'make %s' first" % (f, target))
    os.makedirs(resdir, exist_ok=True)
    results = []
    for b in boots:
        log("boot %s (%s%s, %s; group %s): %d tests, console log %s" % (
            b.name, "" if b.kernel == suite.DEFAULT_KERNEL else
            suite.KERNELS[b.kernel].label + ", ", b.mmu.label,
            b.mmu.cmdline(), b.group, len(b.leaves()),
            os.path.relpath(os.path.join(resdir, "console-%s.log" % b.name), TOP)))
        r = run.boot_vm(b, kernel or os.path.join(out, suite.KERNELS[b.kernel].image),
                        initramfs, resdir, variant.tmo_scale,
                        on_outcome=None if quiet else _print_outcome, echo=echo, mem=mem)
        log("boot %s finished in %d s" % (b.name, r.secs))
        results.append(r)
    return results


# -- subcommands ------------------------------------------------------------

def plan(cmd, env, mmus=None, group=None, only=None):
    """The boots of subcommand cmd: matrix.boots()."""
    return matrix.boots(cmd, env, mmus, group, only)


def cmd_check(a) -> int:
    variant, boots = plan("check", os.environ, a.mmus, a.group, a.only)
    t0 = time.monotonic()
    results = run_boots(boots, variant)
    rc = report(results, out_dir())
    log("suite finished in %d s" % (time.monotonic() - t0))
    return rc


def cmd_vm(a) -> int:
    mmu = a.mmu or os.environ.get("MMU") or "npt"
    variant, boots = plan("vm", os.environ, [mmu], a.group, a.only)
    out = out_dir()
    results = run_boots(boots, variant, resdir=os.path.join(out, "vm"),
                        echo=lambda l: print("[%s] %s" % (mmu, l), flush=True))
    return report(results, out, "vm")


def cmd_demo(a) -> int:
    variant, boots = plan("demo", os.environ)
    log("booting the test VM %d times (%s) to run: %s" % (
        len(boots), ", ".join(b.name for b in boots), ", ".join(DEMO_TESTS)))
    out = out_dir()
    results = run_boots(boots, variant, resdir=os.path.join(out, "demo"))
    print_demo(results)
    return report(results, out, "demo")


def cmd_bench_memslot(a) -> int:
    records = suite.load()
    variant = suite.variant_from_env()
    out = out_dir()
    kernels = {"base": os.path.join(out, "bench", "bzImage-base"),
               "series": os.path.join(out, "bzImage")}
    boots = matrix.select_boots(records, variant, list(suite.MMUS), suite.DEFAULT_GROUP,
                                ["memslot_metadata"])
    results = []
    for k, path in kernels.items():
        for r in run_boots(boots, variant, kernel=path,
                           resdir=os.path.join(out, "bench", k), quiet=True):
            results.append((k, r))
    fig = memslot_figures(results)
    print()
    print("Kernel metadata per guest page of an untouched 64 GiB memslot (bytes, VmallocUsed):")
    print("%-18s %12s %16s %18s %12s" % ("MMU", "base 5.10", "series", "series, SVM cpuid", "ratio"))
    for m in suite.MMUS.values():
        base, _ = fig.get(("base", m.name), ("?", "?"))
        ser, nest = fig.get(("series", m.name), ("?", "?"))
        try:
            ratio = "%.4f" % (float(ser) / float(base))
        except (ValueError, ZeroDivisionError):
            ratio = "?"
        print("%-18s %12s %16s %18s %12s" % (m.label, base, ser, nest, ratio))
    print("\n'series, SVM cpuid': after KVM_SET_CPUID2 offers a vCPU SVM, which allocates nothing:")
    print("the metadata comes with the first shadow MMU root (svm_nested_paging_test).")
    bad = [(k, r.boot.name, o.name, o.reason) for k, r in results for o in r.outcomes
           if o.status.failed]
    for b in bad:
        print("FAILED on the %s kernel: %s/%s: %s" % b)
    return 1 if bad else 0


def cmd_bench(a) -> int:
    from . import bench
    variant = suite.variant_from_env()
    out = os.path.join(out_dir(), "bench")
    quick = os.environ.get("QUICK") == "1"
    which = os.environ.get("BENCH") or "sweep"
    if which not in ("sweep", "fractions"):
        raise suite.SuiteError("BENCH=%s: sweep or fractions" % which)
    kernels = matrix.env_list("BENCH_KERNELS", " ".join(bench.KERNELS))
    for k in kernels:
        if k not in bench.KERNELS:
            raise suite.SuiteError("BENCH_KERNELS: unknown kernel %r (known: %s)" % (
                k, " ".join(bench.KERNELS)))
    mmus = matrix.env_list("MMUS", " ".join(bench.MMUS))
    sizes = [int(x) for x in matrix.env_list("BENCH_SIZES", "")]
    if [x for x in sizes if x not in bench.SWEEP_SIZES]:
        raise suite.SuiteError("BENCH_SIZES: MiB among %s" % " ".join(map(str, bench.SWEEP_SIZES)))
    # BENCH_COUNTS=only: the ftrace counts alone (the distro kernels).
    counts_only = os.environ.get("BENCH_COUNTS") == "only"
    boots = [bench.boot(k, m, which, quick, sizes, counts_only) for k in kernels for m in mmus]
    boots = [b for b in boots if b.entries]
    log("benchmark (%s): %d boots (%s), %d runs of dirty_log_perf_test" % (
        which, len(boots), ", ".join(b.name for b in boots),
        sum(len(b.leaves()) for b in boots)))
    t0 = time.monotonic()
    resdir = os.path.join(out, "results")
    results = run_boots(boots, variant, resdir=resdir, mem=bench.MEM)
    # A cell that hangs the test VM ends its boot: the cells after it run
    # in a boot of their own (once), so one hang costs one cell.
    rest = []
    for r in results:
        left = {o.name for o in r.outcomes if o.status is Status.NOT_RUN}
        if left:
            b = suite.Boot(r.boot.mmu, "bench2", [e for e in r.boot.entries if e.name in left],
                           r.boot.kernel)
            log("boot %s ended before %d cells: running them in boot %s" % (
                r.boot.name, len(left), b.name))
            rest.append(b)
    if rest:
        results += run_boots(rest, variant, resdir=resdir, mem=bench.MEM)
    rows = bench.rows_of(results)
    ops, op_bad = bench.opcount_rows(results)
    os.makedirs(out, exist_ok=True)
    bench.write_csv(os.path.join(out, "dirty-modes.csv"), rows)
    bench.write_csv(os.path.join(out, "opcounts.csv"), ops, bench.OP_FIELDS)
    md = (bench.sweep_markdown(rows, ops) if which == "sweep" else
          bench.fractions_markdown(rows))
    with open(os.path.join(out, "dirty-modes.md"), "w") as f:
        f.write(md)
    pngs = bench.plots(rows, out, which)
    print(md)
    log("wrote dirty-modes.csv, opcounts.csv, dirty-modes.md, %d plots in %s; %d s" % (
        len(pngs), os.path.relpath(out, TOP), time.monotonic() - t0))
    redone = {(r.boot.mmu.name, r.boot.kernel, o.name) for r in results
              if r.boot.group == "bench2" for o in r.outcomes}
    bad = [o for r in results for o in r.outcomes if o.status.failed and not (
        o.status is Status.NOT_RUN and (r.boot.mmu.name, r.boot.kernel, o.name) in redone)]
    for o in bad:
        print("FAILED: %s/%s: %s" % (o.boot, o.name, o.reason))
    for x in op_bad:
        print("FAILED (op counts): %s" % x)
    return 1 if bad or op_bad else 0


def cmd_programs(a) -> int:
    print("\n".join(suite.programs(suite.load())))
    return 0


def cmd_plan(a) -> int:
    records = suite.load()
    b = suite.select(records, a.mmu, a.group, suite.variant_from_env(), a.only)
    sys.stdout.write(b.plan_text())
    return 0


def cmd_selftest(a) -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    tests = unittest.defaultTestLoader.discover(os.path.join(here, "tests"),
                                                top_level_dir=os.path.dirname(here))
    r = unittest.TextTestRunner(verbosity=1 if not a.verbose else 2).run(tests)
    return 0 if r.wasSuccessful() else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="kvmtest", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name, fn in (("check", cmd_check), ("vm", cmd_vm), ("demo", cmd_demo),
                     ("bench-memslot", cmd_bench_memslot), ("bench", cmd_bench),
                     ("programs", cmd_programs),
                     ("plan", cmd_plan), ("selftest", cmd_selftest)):
        p = sub.add_parser(name)
        p.set_defaults(fn=fn)
        if name in ("check",):
            p.add_argument("--mmus", nargs="*")
        if name in ("vm", "plan"):
            p.add_argument("--mmu", default=None if name == "vm" else "npt")
        if name in ("check", "vm", "plan"):
            p.add_argument("--group", default=None if name != "plan" else suite.DEFAULT_GROUP)
            p.add_argument("--only", type=lambda s: s.split(","), default=None)
        if name == "selftest":
            p.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)
    # Killed (a CI timeout, ^C): unwind, so that the emulator is killed too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return a.fn(a)
    except suite.SuiteError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
