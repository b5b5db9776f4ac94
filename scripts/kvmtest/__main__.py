"""python3 -m kvmtest SUBCOMMAND (scripts/lib.sh's kvmtest() sets the path).

  check          boot each MMU configuration with a test group; print every
                 result, a table and "N passed, N failed[, N skipped]";
                 write build/out/results.tap (the whole run, TAP 13)
  vm             one boot with its console on the terminal (build/out/vm.tap)
  demo           the dirty logging modes under the three MMUs, as a table
                 (build/out/demo.tap)
  bench-memslot  memslot metadata per page, base kernel against series
  bench          the dirty logging modes side by side, series and mainline
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
import re
import signal
import subprocess
import sys
import time
import unittest

from . import ktap, run, suite
from .ktap import Status

TOP = suite.TOP


def log(msg: str) -> None:
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def out_dir() -> str:
    """build/out of the selected variant; scripts/lib.sh is its home."""
    if os.environ.get("OUT"):
        return os.environ["OUT"]
    return subprocess.run(["bash", "-c", '. "$1/scripts/lib.sh" && echo "$OUT"', "-", TOP],
                          check=True, capture_output=True, text=True).stdout.strip()


def _env_list(name, default="", env=os.environ):
    # Make exports its variables even when they are empty.
    return [x for x in re.split(r"[,\s]+", env.get(name) or default) if x]


def _boots(records, variant, mmus, group, only, kernels=(suite.DEFAULT_KERNEL,)):
    if only:
        suite.check_only(records, only)
    boots = []
    for m in mmus:
        if m not in suite.MMUS:
            raise suite.SuiteError("unknown MMU %r (known: %s)" % (m, ", ".join(suite.MMUS)))
        for k in kernels:
            b = suite.select(records, m, group, variant, only, kernel=k)
            if b.entries:
                boots.append(b)
    if not boots:
        raise suite.SuiteError("no test runs in group %r under %s%s" % (
            group, " ".join(mmus), " with ONLY=" + ",".join(only) if only else ""))
    return boots


def _print_outcome(o: run.Outcome) -> None:
    log("%-7s %s %s %ds%s" % (o.status.value, o.boot, o.name, o.secs,
                              ": " + o.reason if o.reason else ""))


def run_boots(boots, variant, kernel=None, initramfs=None, resdir=None,
              quiet=False, echo=None, mem=None):
    out = out_dir()
    initramfs = initramfs or os.path.join(out, "initramfs.cpio.gz")
    resdir = resdir or os.path.join(out, "results")
    need = [initramfs] + [os.path.join(out, a) for b in boots for a in b.archives()]
    if not kernel:
        need += [os.path.join(out, suite.KERNELS[b.kernel].image) for b in boots]
    hint = {}
    for k in suite.KERNELS.values():
        for f in (k.image,) + k.archives:
            hint[os.path.join(out, f)] = "make " + k.target
    for f in need:
        if not os.path.exists(f):
            raise suite.SuiteError("%s is missing: run '%s' first" % (
                f, hint.get(f, "make initramfs")))
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


def counts(outcomes):
    n = {"passed": 0, "failed": 0, "skipped": 0}
    for o in outcomes:
        if o.status is Status.PASS:
            n["passed"] += 1
        elif o.status is Status.SKIP:
            n["skipped"] += 1
        else:
            n["failed"] += 1
    return n


def summary_line(n, retried: int = 0) -> str:
    line = "%d passed" % n["passed"]
    if retried:
        line += " (%d when run again after an L2 shutdown)" % retried
    line += ", %d failed" % n["failed"]
    if n["skipped"]:
        line += ", %d skipped" % n["skipped"]
    return line


def write_tap(path, results):
    header, rows = [], []
    for r in results:
        header.append("boot %s: %s%s (%s), group %s" % (
            r.boot.name, "" if r.boot.kernel == suite.DEFAULT_KERNEL else
            suite.KERNELS[r.boot.kernel].label + ", ",
            r.boot.mmu.label, r.boot.mmu.cmdline(), r.boot.group))
        header += ["  %s" % h for h in r.header]
        for o in r.outcomes:
            diag = []
            if o.status.failed:
                diag = ["console log: %s" % os.path.relpath(r.log, TOP)] if r.log else []
                diag += ["| " + l for l in o.output[-20:]]
            rows.append(("%s/%s" % (o.boot, o.name), o.status, o.reason, diag))
    ktap.write(path, header, rows)


PERL_TAP = r'''
use TAP::Parser;
open(my $f, "<", $ARGV[0]) or die "$ARGV[0]: $!";
my $tap = do { local $/; <$f> };
my $p = TAP::Parser->new({ tap => $tap });
while (defined($p->next)) { }
print "parse error: $_\n" for $p->parse_errors;
printf "%d %d %d %d\n", $p->tests_run, scalar($p->passed), scalar($p->failed),
       scalar($p->skipped);
'''


def tap_consumer_counts(path):
    """What Perl's TAP::Parser (Debian's perl) reads in results.tap."""
    p = subprocess.run(["perl", "-e", PERL_TAP, path], capture_output=True, text=True)
    lines = p.stdout.strip().splitlines()
    errors = [l for l in lines if l.startswith("parse error")]
    if p.returncode != 0 or not lines:
        return None, ["perl TAP::Parser failed: " + p.stderr.strip()]
    run_, passed, failed, skipped = (int(x) for x in lines[-1].split())
    return {"passed": passed - skipped, "failed": failed, "skipped": skipped,
            "run": run_}, errors


MIGRATE_LINE = re.compile(r"^\s*migrate: (.*)$")
MIGRATE_COLUMNS = (
    ("boot", "boot"), ("test", "test"), ("mode", "mode"), ("vcpus", "vCPUs"),
    ("rounds", "rounds"), ("pages", "pages sent"), ("dirty-pages-rate", "dirty pages/s"),
    ("downtime-ms", "downtime ms"), ("total-ms", "total ms"),
    ("ring-full-exits", "ring-full exits"), ("guest-passes", "guest passes"),
    ("result", "memory"))


def migration_rows(results):
    """The "migrate: key=value ..." lines of tests/migrate/migrate.py."""
    rows = []
    for r in results:
        for o in r.outcomes:
            for line in o.output:
                m = MIGRATE_LINE.match(line)
                if m:
                    kv = dict(x.split("=", 1) for x in m.group(1).split() if "=" in x)
                    kv.update(boot=o.boot, test=o.name, status=o.status.value)
                    rows.append(kv)
    return rows


def print_migrations(rows) -> None:
    """The migrations as a Markdown table (the README shows one)."""
    mig = [r for r in rows if "rounds" in r]
    if mig:
        print()
        print("| " + " | ".join(h for _, h in MIGRATE_COLUMNS) + " |")
        print("|" + " --- |" * len(MIGRATE_COLUMNS))
        for r in mig:
            print("| " + " | ".join(r.get(k, "-") for k, _ in MIGRATE_COLUMNS) + " |")
    for r in rows:
        if r["mode"].startswith("dirtyrate"):
            print("%s/%s: QEMU's dirty rate of vCPU 0 on the ring %s MB/s; limited to %s MB/s "
                  "it measured %s MB/s (query-vcpu-dirty-limit: %s MB/s)" % (
                      r["boot"], r["test"], r.get("rate-mb-s"), r.get("limit-mb-s"),
                      r.get("limited-rate-mb-s"), r.get("current-rate-mb-s")))
        if r["mode"].startswith("refused"):
            print("%s/%s: %s" % (r["boot"], r["test"], " ".join(
                "%s=%s" % (k, v) for k, v in r.items() if k not in ("boot", "test", "status"))))


def report(results, out, name="results") -> int:
    """Print the run and write OUT/NAME.tap (make check: results.tap)."""
    outcomes = [o for r in results for o in r.outcomes]
    print()
    print("%-7s %-12s %-26s %6s  %s" % ("", "boot", "test", "secs", ""))
    for o in outcomes:
        print("%-7s %-12s %-26s %6d  %s" % (o.status.value, o.boot, o.name, o.secs,
                                            o.reason[:110]))
    print()
    for r in results:
        for o in r.outcomes:
            if o.status.failed:
                print("FAILED: %s/%s: %s (console log: %s)" % (o.boot, o.name, o.reason,
                                                              os.path.relpath(r.log, TOP)))
            elif o.retried:
                print("RUN TWICE: %s/%s: %s (console log: %s)" % (
                    o.boot, o.name, o.reason, os.path.relpath(r.log, TOP)))
    print_migrations(migration_rows(results))
    n = counts(outcomes)
    tap = os.path.join(out, name + ".tap")
    write_tap(tap, results)
    seen, errors = tap_consumer_counts(tap)
    rc = 1 if n["failed"] or not n["passed"] else 0
    if errors or seen is None or any(seen[k] != n[k] for k in n):
        print("results.tap: TAP::Parser reads %s%s, the harness counted %s" % (
            seen, "; " + "; ".join(errors) if errors else "", n))
        rc = 1
    else:
        log("%s: TAP::Parser reads %d tests, the same counts" % (
            os.path.relpath(tap, TOP), seen["run"]))
    print(summary_line(n, sum(1 for o in outcomes if o.retried and not o.status.failed)))
    return rc


# -- subcommands ------------------------------------------------------------

def plan(cmd, env, mmus=None, group=None, only=None):
    """The boots of subcommand cmd (check, vm, demo) under the
    environment env: what it runs, and what the harness tests hold
    against its make target's prerequisites."""
    variant = suite.variant_from_env(env)
    if cmd == "demo":
        mmus, group, only = list(suite.MMUS), suite.DEFAULT_GROUP, DEMO_TESTS
    elif cmd == "vm":
        mmus = mmus or [env.get("MMU") or "npt"]
    return variant, _boots(suite.load(), variant,
                           mmus or _env_list("MMUS", " ".join(suite.MMUS), env),
                           group or env.get("GROUP") or suite.DEFAULT_GROUP,
                           only or _env_list("ONLY", "", env),
                           suite.kernels_for(cmd, variant, env))


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


DEMO_TESTS = ["dirty_log", "clear_log", "dirty_ring"]


def demo_rows(results):
    rows = []
    for r in results:
        for o in r.outcomes:
            if o.name not in DEMO_TESTS:
                continue
            text = "\n".join(o.output)
            dirtied = re.findall(r"Dirtied (\d+) pages", text)
            bits = re.search(r"dirty \((\d+)\), clear \((\d+)\), track_next \((\d+)\)", text)
            ring = re.search(r"harvested (\d+) entries", text)
            mode = re.search(r"Setting log mode to: '([^']+)'", text)
            rows.append((r.boot.mmu.label, mode.group(1) if mode else o.name, o.status.value,
                         dirtied[-1] if dirtied else "-",
                         bits.group(1) if bits else "-", bits.group(2) if bits else "-",
                         ring.group(1) if ring else "-", o.secs))
    return rows


def cmd_demo(a) -> int:
    variant, boots = plan("demo", os.environ)
    log("booting the test VM %d times (%s) to run: %s" % (
        len(boots), ", ".join(b.name for b in boots), ", ".join(DEMO_TESTS)))
    out = out_dir()
    results = run_boots(boots, variant, resdir=os.path.join(out, "demo"))
    print()
    print("%-18s %-11s %-6s %14s %14s %14s %12s %6s" % (
        "MMU", "log mode", "result", "guest writes", "pages dirty", "pages clean",
        "ring entries", "secs"))
    for row in demo_rows(results):
        print("%-18s %-11s %-6s %14s %14s %14s %12s %6d" % row)
    print()
    print("guest writes: pages the guest rewrote after its first pass over the area")
    print("(as 5.10's dirty_log_test counts them); pages dirty/clean: what the host")
    print("checked against guest memory over all iterations; ring entries: entries")
    print("harvested from the dirty ring and reset.")
    return report(results, out, "demo")


MEMSLOT = re.compile(r"memslot metadata, ([^,]+), (\d+) GiB memslot: ([0-9.]+) bytes/page "
                     r"without nested, ([0-9.]+) bytes/page with SVM/VMX in CPUID")


def memslot_figures(results):
    """(kernel, mmu) -> (bytes/page, bytes/page with SVM in CPUID)."""
    fig = {}
    for kernel, r in results:
        for o in r.outcomes:
            if o.name != "memslot_metadata":
                continue
            m = MEMSLOT.search("\n".join(o.output))
            fig[(kernel, r.boot.mmu.name)] = (m.group(3), m.group(4)) if m else ("?", "?")
    return fig


def cmd_bench_memslot(a) -> int:
    records = suite.load()
    variant = suite.variant_from_env()
    out = out_dir()
    kernels = {"base": os.path.join(out, "bench", "bzImage-base"),
               "series": os.path.join(out, "bzImage")}
    boots = _boots(records, variant, list(suite.MMUS), suite.DEFAULT_GROUP, ["memslot_metadata"])
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
    kernels = _env_list("BENCH_KERNELS", " ".join(bench.KERNELS))
    mmus = _env_list("MMUS", " ".join(bench.MMUS))
    boots = [bench.boot(k, m, quick) for k in kernels for m in mmus]
    log("benchmark: %d boots (%s) x %d runs of dirty_log_perf_test" % (
        len(boots), ", ".join(b.name for b in boots), len(boots[0].leaves())))
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
    os.makedirs(out, exist_ok=True)
    bench.write_csv(os.path.join(out, "dirty-modes.csv"), rows)
    md = bench.markdown(rows, "Dirty logging modes: collect + re-arm, throughput, memory")
    with open(os.path.join(out, "dirty-modes.md"), "w") as f:
        f.write(md)
    pngs = bench.plots(rows, out)
    print(md)
    log("wrote %s, dirty-modes.md, %d plots in %s; %d s" % (
        "dirty-modes.csv", len(pngs), os.path.relpath(out, TOP), time.monotonic() - t0))
    redone = {(r.boot.mmu.name, r.boot.kernel, o.name) for r in results
              if r.boot.group == "bench2" for o in r.outcomes}
    bad = [o for r in results for o in r.outcomes if o.status.failed and not (
        o.status is Status.NOT_RUN and (r.boot.mmu.name, r.boot.kernel, o.name) in redone)]
    for o in bad:
        print("FAILED: %s/%s: %s" % (o.boot, o.name, o.reason))
    return 1 if bad else 0


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
