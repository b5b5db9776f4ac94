"""Reporting: the results of a run as the terminal table, results.tap
(nested KTAP, checked against Perl's TAP::Parser) and the summary line;
the figures that the tests print (migrate: key=value lines, the demo's
and the memslot benchmark's tables)."""
import os
import re
import subprocess
import sys
import time

from . import ktap, suite
from .matrix import DEMO_TESTS
from .ktap import Status

TOP = suite.TOP


def log(msg: str) -> None:
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


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


def summary_line(n) -> str:
    line = "%d passed" % n["passed"]
    line += ", %d failed" % n["failed"]
    if n["skipped"]:
        line += ", %d skipped" % n["skipped"]
    return line


def write_tap(path, results):
    """results.tap: a KTAP subtest per boot, in it the boot's tests and a
    subtest per multi-part test."""
    boots = []
    for r in results:
        head = ["boot %s: %s%s (%s), group %s" % (
            r.boot.name, "" if r.boot.kernel == suite.DEFAULT_KERNEL else
            suite.KERNELS[r.boot.kernel].label + ", ",
            r.boot.mmu.label, r.boot.mmu.cmdline(), r.boot.group)] + (
                ["emulator: " + r.emulator] if r.emulator else []) + list(r.header)
        leaves = {}
        for o in r.outcomes:
            diag = []
            if o.status.failed:
                diag = ["console log: %s" % os.path.relpath(r.log, TOP)] if r.log else []
                diag += ["| " + l for l in o.output[-20:]]
            leaves[o.name] = ktap.Node(o.name, o.status, o.reason, diag)
        nodes = []
        for e in r.boot.entries:
            tests = [leaves.pop(t.name) for t in e.tests if t.name in leaves]
            if e.multi and tests:
                nodes.append(ktap.Node(e.name, children=tests))
            else:
                nodes += tests
        nodes += leaves.values()        # the boot's own verdict ("boot")
        boots.append(ktap.Node(r.boot.name, header=head, children=nodes))
    ktap.write(path, [], boots)


# TAP::Parser reads one level; each indented block before a result is that
# result's subtests, read by TAP::Parser in turn.  Counts the leaves.
PERL_TAP = r'''
use TAP::Parser;
sub tally {
    my ($tap, $n) = @_;
    my $p = TAP::Parser->new({ tap => $tap });
    my @sub;
    while (defined(my $r = $p->next)) {
        if ($r->is_unknown && $r->raw =~ /^    (.*)$/s) {
            push @sub, $1;
        } elsif ($r->is_test) {
            if (@sub) {
                tally(join("\n", @sub) . "\n", $n);
            } else {
                $n->{run}++;
                $n->{$r->has_skip ? "skipped" : $r->is_ok ? "passed" : "failed"}++;
            }
            @sub = ();
        }
    }
    push @{$n->{errors}}, $p->parse_errors;
    push @{$n->{errors}}, "plan: " . ($p->plan // "none") . ", tests: " . $p->tests_run
        if !defined($p->plan) || $p->tests_planned != $p->tests_run;
}
open(my $f, "<", $ARGV[0]) or die "$ARGV[0]: $!";
my %n = (run => 0, passed => 0, failed => 0, skipped => 0, errors => []);
tally(do { local $/; <$f> }, \%n);
print "parse error: $_\n" for @{$n{errors}};
printf "%d %d %d %d\n", $n{run}, $n{passed}, $n{failed}, $n{skipped};
'''


def tap_consumer_counts(path):
    """What Perl's TAP::Parser (Debian's perl) reads in results.tap, level
    by level: the leaves it counts."""
    p = subprocess.run(["perl", "-e", PERL_TAP, path], capture_output=True, text=True)
    lines = p.stdout.strip().splitlines()
    errors = [l for l in lines if l.startswith("parse error")]
    if p.returncode != 0 or not lines:
        return None, ["perl TAP::Parser failed: " + p.stderr.strip()]
    run_, passed, failed, skipped = (int(x) for x in lines[-1].split())
    return {"passed": passed, "failed": failed, "skipped": skipped, "run": run_}, errors


MIGRATE_LINE = re.compile(r"^\s*migrate: (.*)$")
MIGRATE_COLUMNS = (
    ("boot", "boot"), ("test", "test"), ("mode", "mode"), ("vcpus", "vCPUs"),
    ("rounds", "rounds"), ("pages-per-round", "pages sent per round"),
    ("guest-writes-per-s", "guest page writes/s"),
    ("downtime-ms", "downtime ms"), ("total-ms", "total ms"),
    ("ring-full-exits", "ring-full exits"), ("guest-passes", "guest passes"),
    ("result", "memory"), ("qemu", "QEMU"))


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
            print("%s/%s (QEMU %s): QEMU's dirty rate of vCPU 0 on the ring %s MB/s; limited "
                  "to %s MB/s it measured %s MB/s, after cancel-vcpu-dirty-limit %s MB/s" % (
                      r["boot"], r["test"], r.get("qemu", "?"), r.get("rate-mb-s"),
                      r.get("limit-mb-s"), r.get("limited-rate-mb-s"),
                      r.get("restored-rate-mb-s")))
        if r["mode"].startswith("refused"):
            print("%s/%s: %s" % (r["boot"], r["test"], " ".join(
                "%s=%s" % (k, v) for k, v in r.items() if k not in ("boot", "test", "status"))))


def rate_rows(results):
    """REPEAT=N runs, per boot and test: [boot, emulator, test, runs,
    passed, skipped, L2 shutdowns, timeouts, resets of the test VM, other
    failures, not run]."""
    rows = {}
    for r in results:
        if r.boot.repeat == 1:
            continue
        for o in r.outcomes:
            if o.name == "boot":
                continue
            base = re.sub(r"_r\d+$", "", o.name)
            row = rows.setdefault((r.boot.name, base), [r.boot.name, r.emulator, base] + [0] * 8)
            row[3] += 1
            if o.status == Status.PASS:
                row[4] += 1
            elif o.status == Status.SKIP:
                row[5] += 1
            elif o.status == Status.TIMEOUT:
                row[7] += 1
            elif o.status == Status.NOT_RUN:
                row[10] += 1
            elif any(re.search(r"\bSHUTDOWN\b", l) for l in o.output):
                row[6] += 1
            elif "the guest died" in o.reason:
                row[8] += 1
            else:
                row[9] += 1
    return list(rows.values())


def print_rates(results):
    rows = rate_rows(results)
    if not rows:
        return
    print("\nrates (REPEAT): boot, test: runs, passed, skipped, L2 shutdowns, timeouts,"
          " resets of the test VM, other failures, not run (the boot ended first); emulator")
    for row in rows:
        print("  %-22s %-24s %4d %4d %4d %4d %4d %4d %4d %4d  %s" % tuple(
            row[0:1] + row[2:] + row[1:2]))


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
    print_migrations(migration_rows(results))
    print_rates(results)
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
    print(summary_line(n))
    return rc


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


def print_demo(results) -> None:
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
