"""The harness's own tests: suite.list's reader, the KTAP parser, the
console rules and the boot logic, on recorded consoles (data/, see
data/README).  No QEMU; seconds.  Run by "make check" before any boot,
or alone: make harness-test."""
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
import unittest

from kvmtest import __main__ as cli
from kvmtest import bochs, console, ktap, matrix, qemu, run, suite
from kvmtest.ktap import Status
from kvmtest.tests import record

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")

# The tests of data/pass-skip.log, host-deadline.log, warning.log and
# panic.log, as suite.list would list them.
PASS_SKIP_SUITE = """
dirty_ring        npt   600  dirty_log_test -M dirty-ring -s 128 -i 16 -I 50 -c 65536
ring              npt   300  dirty_ring_test
    abi           -t abi
    forged        -t forged
    hammer        -t hammer -s 5
    signal        -t signal -s 3
    vcpus         -t vcpus
    kvm_writes    -t kvm-writes
memslot_metadata  npt   300  memslot_metadata_test -g 64
demand_paging_uffd npt  0    !skip userfaultfd creation fails with EINVAL inside the test (TCG-only, unrelated to dirty tracking; see README)
hyperv_cpuid      npt   120  hyperv_cpuid
xss_msr           npt   120  xss_msr_test
"""
RING = ["ring_abi", "ring_forged", "ring_hammer", "ring_signal", "ring_vcpus", "ring_kvm_writes"]


def pass_skip_boot():
    return suite.select(suite.parse(PASS_SKIP_SUITE), "npt")


def replay(name, boot):
    return run.replay(boot, os.path.join(DATA, name))


def table(res):
    return [(o.name, o.status) for o in res.outcomes]


class SuiteList(unittest.TestCase):
    def test_the_real_suite_list(self):
        records = suite.load()
        self.assertEqual(suite.groups(records),
                         ["diag", "dkms", "fault", "intel", "migrate", "stress", "suite"])
        for m in suite.MMUS:
            b = suite.select(records, m)
            names = [t.name for t in b.leaves()]
            self.assertEqual(len(names), len(set(names)))
            self.assertTrue(all(t.timeout > 0 or t.skip for t in b.leaves()))
        # The ring groups are one record with parts.
        ring = [r for r in records if r.name == "ring"][0]
        self.assertEqual([t.name for t in ring.leaves()],
                         [n for n in RING if n != "ring_vcpus"] +
                         ["ring_emulated", "ring_mmap_exec"])
        # Variants: the debug kernel runs the tracking set, 4x the timeouts.
        dbg = suite.select(records, "npt", variant=suite.VARIANTS["debug"])
        lean = suite.select(records, "npt")
        self.assertTrue(all(r.test_set == "tracking" for r in records
                            if r.name in {e.name for e in dbg.entries}))
        tmo = {t.name: t.timeout for t in lean.leaves()}
        for t in dbg.leaves():
            self.assertEqual(t.timeout, 4 * tmo[t.name])
        kvmgt = suite.select(records, "npt", variant=suite.VARIANTS["kvmgt"])
        self.assertEqual([t.name for t in kvmgt.leaves()], ["memslot_metadata", "svm_nested_paging"])
        self.assertIn("dirty_ring_test", suite.programs(records))

    def test_variants_and_machines(self):
        records = suite.load()
        self.assertTrue(suite.select(records, "pml").entries)
        self.assertEqual(suite.select(records, "pml", variant=suite.VARIANTS["debug"]).entries, [])
        self.assertEqual(suite.MACHINES[suite.MMUS["pml"].machine].output, "kmsg")
        self.assertIn("param kvm_intel eptad", suite.select(records, "pml").plan_text())

    def test_empty_make_variables(self):
        os.environ["KVMTEST_EMPTY"] = ""
        try:
            self.assertEqual(matrix.env_list("KVMTEST_EMPTY", "npt tdp"), ["npt", "tdp"])
        finally:
            del os.environ["KVMTEST_EMPTY"]

    def test_where_and_groups(self):
        r = suite.parse("a shadow,npt:stress 10 prog\n")
        self.assertEqual([e.name for e in suite.select(r, "shadow").entries], ["a"])
        self.assertEqual(suite.select(r, "npt").entries, [])
        self.assertEqual(suite.select(r, "npt", "stress").name, "npt-stress")

    def test_kernels_and_archives(self):
        r = suite.parse("a npt,npt@base 10 prog\nm npt@base:migrate 10 migrate refused\n")
        base = suite.select(r, "npt", kernel="base")
        self.assertEqual((base.name, base.kernel, [e.name for e in base.entries]),
                         ("npt-base", "base", ["a"]))
        self.assertEqual(base.archives(), [])
        mig = suite.select(r, "npt", "migrate", kernel="base")
        self.assertEqual((mig.name, mig.archives()), ("npt-base-migrate", ["migrate.cpio.gz"]))
        # ... and the default emulator, which make qemu7fix builds.
        self.assertEqual(mig.needs(), [("bench/bzImage-base", "base-kernel"),
                                       ("migrate.cpio.gz", "initramfs"),
                                       ("qemu7fix/qemu-system-x86_64", "qemu7fix")])
        self.assertEqual(suite.select(r, "npt", kernel="base", emulator="qemu7").needs(),
                         [("bench/bzImage-base", "base-kernel")])
        self.assertEqual(suite.select(r, "npt", "migrate").entries, [])
        with self.assertRaisesRegex(suite.SuiteError, "unknown group 'x'"):
            suite.parse("m npt:x 10 true\n")
        # The common initramfs holds selftests only.
        self.assertEqual(suite.programs(r), ["prog"])
        real = suite.load()
        self.assertNotIn("migrate", suite.programs(real))
        self.assertIn("migrate.cpio.gz", suite.select(real, "shadow").archives())
        self.assertEqual(suite.select(real, "npt").archives(), [])
        self.assertTrue(suite.select(real, "shadow", kernel="debian11").entries)
        with self.assertRaises(suite.SuiteError):
            suite.parse("a npt@linus 10 prog\n")
        # The second emulator: a boot of its own, which needs its build.
        q = suite.select(r, "npt", emulator="qemu10")
        self.assertEqual((q.name, q.needs()), ("npt-qemu10", [("bzImage", "initramfs"),
            (matrix.EMULATORS["qemu10"].binary, "qemu10")]))
        self.assertEqual([b.name for b in matrix.select_boots(
            r, suite.VARIANTS["lean"], ["npt"], "suite", [],
            emulators=("qemu7fix", "qemu7", "qemu10"))],
            ["npt", "npt-qemu7", "npt-qemu10"])
        # A modular kernel brings its modules first.
        ml = suite.select(suite.parse("a npt@mainline 10 migrate x\n"), "npt", kernel="mainline")
        self.assertEqual(ml.archives(), ["mainline/modules.cpio.gz", "migrate.cpio.gz"])

    def test_repeat(self):
        """REPEAT=N: each entry N times, every run counted, and a rate per
        test in the report."""
        b = suite.select(suite.parse(PASS_SKIP_SUITE), "npt", repeat=3)
        names = [e.name for e in b.entries]
        self.assertEqual(len(b.entries), 3 * len(pass_skip_boot().entries))
        self.assertIn("ring_r3", names)
        self.assertIn("ring_abi_r2", [t.name for t in b.leaves()])
        self.assertEqual({t.group for t in b.leaves() if t.name == "ring_abi_r2"}, {"ring_r2"})
        self.assertEqual(matrix.repeat({"REPEAT": "30"}), 30)
        with self.assertRaises(suite.SuiteError):
            matrix.repeat({"REPEAT": "0"})
        from kvmtest import report
        St = ktap.Status
        outs = [run.Outcome(b.name, "ring_abi", St.PASS, "", 1),
                run.Outcome(b.name, "ring_abi_r2", St.FAIL, "exit 254", 1,
                            output=["==== Test Assertion Failure ====", "exit reason SHUTDOWN"]),
                run.Outcome(b.name, "ring_abi_r3", St.NOT_RUN)]
        res = run.BootResult(b, outs, [], [], emulator="QEMU emulator version 10.0.13")
        self.assertEqual(report.rate_rows([res]),
                         [["npt", "QEMU emulator version 10.0.13", "ring_abi", 3, 1, 0, 1, 0, 0, 0, 1]])

    def test_errors(self):
        for bad in ("a nomm 10 prog\n", "a npt x prog\n", "a npt 10\n",
                    "    part -t x\n", "a npt 0 prog\n", "a npt 1 p\na npt 1 q\n",
                    "a-b npt 1 p\n"):
            with self.assertRaises(suite.SuiteError, msg=bad):
                suite.parse(bad)
        with self.assertRaises(suite.SuiteError):
            suite.check_only(suite.load(), ["no_such_test"])

    def test_plan_text(self):
        b = pass_skip_boot()
        lines = b.plan_text().splitlines()
        self.assertEqual(lines[:5], ["boot npt", "param kvm tdp_mmu", "param kvm_amd npt",
                                     "output tty", "plan 6"])
        self.assertIn("group ring 6", lines)
        self.assertIn("test 300 ring_abi dirty_ring_test -t abi", lines)
        self.assertTrue(any(l.startswith("skip demand_paging_uffd userfaultfd") for l in lines))


def make_dry_run(target, env):
    """What "make -n -B --trace TARGET" says with env: the targets make
    would update, and the kvmtest command line of TARGET's recipe."""
    # Not the variables of a make that runs these tests ("make check
    # DEBUG=1" passes DEBUG=1 down in MAKEFLAGS).
    base = {k: v for k, v in os.environ.items()
            if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    p = subprocess.run(["make", "-n", "-B", "--trace", "-C", suite.TOP, target],
                       env=dict(base, **env), capture_output=True, text=True,
                       check=True)
    targets = set(re.findall(r"^Makefile:\d+: (?:update )?target '([^']+)'", p.stdout, re.M))
    runs = [l for l in p.stdout.splitlines()
            if re.search(r"-m kvmtest (check|vm|demo)$", l)]
    return targets, runs


class EveryTargetBuildsWhatItBoots(unittest.TestCase):
    """Each make target that boots plans only kernels whose inputs its own
    prerequisites build (the new user's "make demo" planned Debian 11's
    DKMS boot, which only "make check" built)."""
    CASES = [("check", {}), ("check", {"DEBUG": "1"}), ("check", {"KVMGT": "1"}),
             ("check", {"GROUP": "stress"}), ("check", {"GROUP": "intel"}),
             ("check", {"GROUP": "dkms"}), ("demo", {}), ("demo", {"DEBUG": "1"}),
             ("vm", {}), ("vm", {"MMU": "shadow"}), ("vm", {"MMU": "pml"}),
             ("vm", {"MMU": "shadow", "DEBUG": "1"}), ("migrate", {}), ("check-dkms", {}),
             ("check", {"EMULATORS": "qemu7 qemu10"}), ("migrate", {"EMULATORS": "qemu10"}),
             ("demo", {"EMULATORS": "qemu10"}), ("vm", {"EMULATORS": "qemu10"}),
             ("check", {"EMULATORS": "qemu7fix", "GROUP": "stress"})]

    def test_targets(self):
        if not shutil.which("make"):
            self.skipTest("no make")
        clean = {k: "" for k in ("DEBUG", "KVMGT", "MMUS", "GROUP", "ONLY", "MMU", "KERNEL",
                                 "EMULATORS")}
        for target, env in self.CASES:
            with self.subTest(target=target, env=env):
                env = dict(clean, **env)
                built, runs = make_dry_run(target, env)
                self.assertEqual(len(runs), 1, runs)
                words = shlex.split(runs[0])
                sub = words[words.index("kvmtest") + 1]
                # The recipe's own assignments (GROUP=migrate ...) apply.
                env.update(w.split("=", 1) for w in words if re.match(r"^[A-Z]+=", w))
                _, boots = cli.plan(sub, env)
                self.assertTrue(boots)
                for b in boots:
                    for _, t in b.needs():
                        self.assertIn(t, built, "%s boots %s, which needs what 'make %s' "
                                      "builds, not among its prerequisites" % (
                                          target, b.name, t))
                want = set(matrix.env_list("EMULATORS", matrix.DEFAULT_EMULATOR, env))
                got = {b.emulator for b in boots if suite.MACHINES[b.mmu.machine].emulators}
                if got:     # (not on Bochs alone)
                    self.assertEqual(got, want)

    def test_demo_shows_the_series_under_every_mmu(self):
        _, boots = cli.plan("demo", {})
        self.assertEqual({b.kernel for b in boots}, {suite.DEFAULT_KERNEL})
        self.assertEqual({b.mmu.name for b in boots}, {"npt", "tdp", "shadow"})
        self.assertEqual({b.kernel for b in cli.plan("check", {})[1]},
                         {"series", "debian11", "debian11-dkms"})
        self.assertEqual([b.kernel for b in cli.plan("vm", {"KERNEL": "debian11-dkms",
                                                            "MMU": "shadow"})[1]],
                         ["debian11-dkms"])
        with self.assertRaises(suite.SuiteError):
            cli.plan("vm", {"KERNEL": "linus"})


class BochsNeedsNoHostDevice(unittest.TestCase):
    """The new user's Bochs aborted at start in its sound code: the
    machine must start on a host without sound (bochs.console() gives it
    an empty ALSA configuration, which is what such a host looks like)."""
    def test_bochsrc(self):
        rc = bochs.bochsrc("x.iso", "x.serial", "x.log")
        for line in ("speaker: enabled=0", "parport1: enabled=0", "gameport: enabled=0",
                     "sound: waveoutdrv=dummy, waveindrv=dummy, midioutdrv=dummy"):
            self.assertIn(line + "\n", rc)

    def test_bochs_starts_without_sound(self):
        if not (shutil.which(bochs.BOCHS) and shutil.which("xorriso")
                and all(os.path.exists(f) for f in bochs.ISOLINUX)):
            self.skipTest("Bochs, xorriso or isolinux not installed (make deps)")
        with tempfile.TemporaryDirectory() as d:
            for f in ("bzImage", "initrd"):
                with open(os.path.join(d, f), "wb") as fd:
                    fd.write(b"\0" * 512)
            cmd = bochs.prepare(os.path.join(d, "bzImage"), os.path.join(d, "initrd"), "",
                                d, "nosound")
            stop = time.monotonic() + 6
            ends = [e for e in bochs.console(cmd, lambda: stop, poll=0.2)
                    if isinstance(e, qemu.End)]
            with open(os.path.join(d, "bochs-nosound.out")) as f:
                out = f.read()
            # Still running the BIOS and isolinux when the deadline came.
            self.assertEqual(ends[-1].why, "deadline", out[-2000:])
            self.assertNotIn("ALSA", out)
            self.assertNotIn("buffer overflow", out)


class RoomBeforeTheBuild(unittest.TestCase):
    """A CI run once died in series-check with "No space left on device"
    half-way through a checkout: deps.sh, the first step of every target,
    must refuse up front and say how much it needs."""
    def run_deps(self, build, need):
        env = dict(os.environ, BUILD=build, MIN_FREE_GB=str(need))
        return subprocess.run([os.path.join(suite.TOP, "scripts", "deps.sh")], env=env,
                              capture_output=True, text=True)

    def test_refuses_without_room(self):
        with tempfile.TemporaryDirectory() as d:
            p = self.run_deps(d, 1 << 30)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertRegex(p.stderr, r"error: %s has \d+ GB free, this run needs about %d GB "
                             r"\(a first build\): free some space on /\S*" % (d, 1 << 30))

    def test_says_which_build(self):
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, "linux", ".git"))
            self.assertIn("(an incremental build)", self.run_deps(d, 1 << 30).stderr)


class ReadmeMatchesTheSeries(unittest.TestCase):
    def test_patch_table(self):
        """The README's table of patches is patches/, number for number."""
        pdir = os.path.join(suite.TOP, "patches")
        want = []
        for f in sorted(os.listdir(pdir)):
            m = re.match(r"^(\d{4})-.*\.patch$", f)
            if not m or m.group(1) == "0000":
                continue
            with open(os.path.join(pdir, f)) as fd:
                subj = next(l for l in fd if l.startswith("Subject: "))
            want.append((int(m.group(1)),
                         re.sub(r"^Subject: \[PATCH \d+/\d+\] ", "", subj).strip()))
        with open(os.path.join(suite.TOP, "README.md")) as fd:
            readme = fd.read()
        table = readme[readme.index("| # | patch |"):]
        table = table[:table.index("\n\n")]
        got = [(int(n), t.strip()) for n, t in
               re.findall(r"^\| (\d+) \| (.*) \|$", table, re.M)]
        self.assertTrue(want)
        self.assertEqual(got, want)


class Ktap(unittest.TestCase):
    def test_nested(self):
        p = ktap.parse_lines("""noise before
TAP version 13
# header line
1..2
# output of a
    # Subtest: g
    1..2
    # output of g_x
kernel says hello
    ok 1 g_x
    not ok 2 g_y # exit=2
not ok 2 g
#PF: supervisor read access in kernel mode
""".splitlines())
        top = p.results()
        self.assertEqual(p.header, ["header line"])
        self.assertEqual(len(top), 1)     # "# output of a" has no result yet
        g = top[0]
        self.assertEqual((g.number, g.name, g.ok), (2, "g", False))
        self.assertEqual([(s.name, s.ok, s.directive) for s in g.subtests],
                         [("g_x", True, ""), ("g_y", False, "exit=2")])
        self.assertEqual(g.subtests[0].output, ["output of g_x"])
        self.assertEqual(g.subtests[0].kernel, ["kernel says hello"])
        self.assertEqual(p.top.plan, 2)
        self.assertFalse(p.complete)
        # "#PF: ..." is a kernel line, not a diagnostic.
        self.assertEqual(p.leftover_kernel(), ["#PF: supervisor read access in kernel mode"])

    def test_directives(self):
        self.assertEqual(ktap.split_directive("SKIP no VMX"), ("SKIP", "no VMX"))
        self.assertEqual(ktap.split_directive("TIMEOUT 30 seconds"), ("TIMEOUT", "30 seconds"))
        self.assertEqual(ktap.split_directive("exit=137"), ("exit=137", ""))
        self.assertEqual(ktap.split_directive(""), ("", ""))


class RecordedConsoles(unittest.TestCase):
    def test_pass_and_skips(self):
        res = replay("pass-skip.log", pass_skip_boot())
        self.assertEqual(table(res), [("dirty_ring", Status.PASS)] +
                         [(n, Status.PASS) for n in RING] +
                         [("memslot_metadata", Status.PASS),
                          ("demand_paging_uffd", Status.SKIP),
                          # 5.10's "skipping test" with exit 0 ...
                          ("hyperv_cpuid", Status.SKIP),
                          # ... and KSFT_SKIP
                          ("xss_msr", Status.SKIP)])
        o = {o.name: o for o in res.outcomes}
        self.assertEqual(o["hyperv_cpuid"].reason, "Enlightened VMCS is unsupported, skipping test")
        self.assertIn("userfaultfd creation fails", o["demand_paging_uffd"].reason)
        self.assertIn("param kvm.tdp_mmu=N", res.header)
        self.assertEqual(res.problems, [])
        self.assertIn("harvested 57878 entries", "\n".join(o["dirty_ring"].output))

    def test_a_skip_fails_on_the_dkms_kernel(self):
        # On Debian 11's kernel with the DKMS modules the ring tests skip
        # only if the stock KVM was loaded: there a skip is a failure,
        # except the skips the plan itself lists.
        b = pass_skip_boot()
        b.kernel = "debian11-dkms"
        res = replay("pass-skip.log", b)
        st = dict(table(res))
        self.assertEqual((st["hyperv_cpuid"], st["xss_msr"], st["demand_paging_uffd"]),
                         (Status.FAIL, Status.FAIL, Status.SKIP))
        o = {o.name: o for o in res.outcomes}
        self.assertIn("stock KVM modules were loaded", o["xss_msr"].reason)
        self.assertEqual(st["dirty_ring"], Status.PASS)

    def test_exit_assertion_timeout_oom(self):
        res = replay("exit-timeout.log", record.misc_boot())
        o = {o.name: o for o in res.outcomes}
        self.assertEqual(table(res), [("exits_1", Status.FAIL),
                                      ("assert_as_skip", Status.FAIL),
                                      ("sleeps_past_timeout", Status.TIMEOUT),
                                      ("oom_killed", Status.FAIL),
                                      ("says_skipping_exit_0", Status.SKIP)])
        self.assertIn("lib/kvm_util.c:99: ret == 0", o["exits_1"].reason)
        self.assertTrue(o["assert_as_skip"].reason.startswith("assertion failed (exit status says skip)"))
        self.assertIn("3 seconds", o["sleeps_past_timeout"].reason)
        # An OOM kill (exit 137 before the timeout) is not a timeout.
        self.assertTrue(o["oom_killed"].reason.startswith(
            "killed by the OOM killer: Out of memory: Killed process"), o["oom_killed"].reason)
        self.assertEqual(res.problems, [])

    def test_oom_alone(self):
        b = record.misc_boot()
        b.entries = [e for e in b.entries if e.name == "oom_killed"]
        res = replay("oom.log", b)
        self.assertEqual(table(res), [("oom_killed", Status.FAIL)])
        self.assertIn("(dd)", res.outcomes[0].reason)

    def test_warning_fails_the_test_it_interrupts(self):
        res = replay("warning.log", pass_skip_boot())
        o = {o.name: o for o in res.outcomes}
        self.assertEqual(o["memslot_metadata"].status, Status.FAIL)
        self.assertIn("WARNING: CPU: 0 PID: 48 at arch/x86/kvm/mmu/page_track.c:89",
                      o["memslot_metadata"].reason)
        self.assertEqual([n for n, s in table(res) if s.failed], ["memslot_metadata"])

    def test_panic(self):
        res = replay("panic.log", pass_skip_boot())
        st = dict(table(res))
        self.assertEqual(st["ring_kvm_writes"], Status.PASS)
        self.assertEqual(st["memslot_metadata"], Status.FAIL)
        o = {o.name: o for o in res.outcomes}
        self.assertIn("died during the test", o["memslot_metadata"].reason)
        self.assertIn("WARNING:", o["memslot_metadata"].reason)
        for n in ("demand_paging_uffd", "hyperv_cpuid", "xss_msr"):
            self.assertEqual(st[n], Status.NOT_RUN)
        self.assertNotIn("boot", st)

    def test_silent_reset_names_the_triple_fault(self):
        # A guest that ends in a test without a word: QEMU's own log of
        # CPU resets says why, in the failure and in the console log.
        with open(os.path.join(DATA, "panic.log")) as f:
            lines = f.read().split("\n")
        cut = next(i for i, l in enumerate(lines) if "kvm: memslot_metadata:" in l) + 1
        with tempfile.TemporaryDirectory() as d:
            qlog = os.path.join(d, "qemu.log")
            with open(qlog, "w") as f:
                f.write("CPU Reset (CPU 0)\nEAX=00000000\nTriple fault\n")
            self.assertEqual(qemu.end_detail(qlog), "QEMU's log: Triple fault")
            self.assertEqual(qemu.end_detail(os.path.join(d, "absent.log")), "")
            p = os.path.join(d, "c.log")
            with open(p, "w") as f:
                f.write("\n".join(lines[:cut]) + "\n%% exit 0 " + qemu.end_detail(qlog) + "\n")
            res = run.replay(pass_skip_boot(), p)
        o = {o.name: o for o in res.outcomes}
        self.assertEqual(o["memslot_metadata"].status, Status.FAIL)
        self.assertIn("QEMU exit status 0; QEMU's log: Triple fault",
                      o["memslot_metadata"].reason)

    def test_l2_shutdown_is_a_failure(self):
        """An L2 shutdown fails its test at once: nothing runs a test
        again (the machine's L2 shutdowns were QEMU's, qemu/0001-*.patch)."""
        r = ktap.Result(1, "dirty_log", False, "exit=254", "", [
            "==== Test Assertion Failure ====", "  dirty_log_test.c:439: false",
            "  pid=125 tid=129 - Success", "  Invalid guest sync status: exit_reason=SHUTDOWN"])
        status, why = console.verdict(r)
        self.assertEqual(status, Status.FAIL)
        self.assertIn("exit_reason=SHUTDOWN", why)
        for group in matrix.GROUPS:
            try:
                _, rows = matrix.boots("check", {"GROUP": group})
            except suite.SuiteError:
                continue
            for b in rows:
                self.assertFalse([l for l in b.plan_text().splitlines()
                                  if l.startswith("retry")], b.name)
        with open(os.path.join(suite.TOP, "tests", "init.sh")) as f:
            self.assertEqual(f.read().count('run_once "$ind" "$tmo" "$@"'), 1)

    def test_host_deadline(self):
        res = replay("host-deadline.log", pass_skip_boot())
        st = dict(table(res))
        self.assertEqual(st["ring_forged"], Status.PASS)
        self.assertEqual(st["ring_hammer"], Status.TIMEOUT)
        self.assertIn("hung", res.outcomes[3].reason)
        self.assertEqual(st["ring_signal"], Status.NOT_RUN)
        self.assertEqual(st["xss_msr"], Status.NOT_RUN)

    def test_params_must_take_effect(self):
        b = suite.select(suite.parse(PASS_SKIP_SUITE.replace(" npt ", " tdp ")), "tdp")
        b.entries = [e for e in b.entries if e.name == "ring"]
        res = replay("param-mismatch.log", b)
        st = dict(table(res))
        self.assertEqual(st["boot"], Status.FAIL)
        self.assertIn("kvm.tdp_mmu is N, the boot asks for 1", res.outcomes[-1].reason)
        self.assertTrue(all(st[n] is Status.NOT_RUN for n in RING))

    def test_no_init(self):
        b = pass_skip_boot()
        res = replay("no-init.log", b)
        st = dict(table(res))
        self.assertEqual(st["boot"], Status.FAIL)
        self.assertIn("before its KTAP plan", res.outcomes[-1].reason)
        self.assertIn("No working init found", res.outcomes[-1].reason)
        self.assertEqual(len(res.outcomes), len(b.leaves()) + 1)

    def test_deadline_before_init(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "c.log")
            with open(p, "w") as f:
                f.write("Linux version 5.10.223\nFreeing unused kernel image memory\n%% deadline\n")
            res = run.replay(pass_skip_boot(), p)
        self.assertIn("no KTAP plan from the guest within 180 s", res.outcomes[-1].reason)


class Placements(unittest.TestCase):
    def test_named_placement(self):
        recs = suite.parse("%two npt,shadow@debian11:dkms\n"
                           "a  %two,tdp  10  true\n")
        self.assertEqual(recs[0].where, (("npt", "suite", "series"),
                                         ("shadow", "dkms", "debian11"),
                                         ("tdp", "suite", "series")))
        with self.assertRaisesRegex(suite.SuiteError, "unknown placement '%three'"):
            suite.parse("a  %three  10  true\n")
        with self.assertRaisesRegex(suite.SuiteError, "defined twice"):
            suite.parse("%x npt\n%x tdp\n")


class Plans(unittest.TestCase):
    def test_anchor_in_the_plan_of_stock_kernels(self):
        recs = suite.parse("a  shadow,shadow@debian11,shadow@debian11-dkms  10  true\n")
        for kernel, anchored in (("series", False), ("debian11", True),
                                 ("debian11-dkms", True)):
            plan = suite.select(recs, "shadow", kernel=kernel).plan_text().splitlines()
            self.assertEqual("anchor" in plan, anchored, kernel)


class Matrix(unittest.TestCase):
    def test_rows_by_name(self):
        _, rows = matrix.boots("check", {"BOOTS": "pml,shadow-debian11-dkms"})
        self.assertEqual([b.name for b in rows], ["shadow-debian11-dkms", "pml"])
        with self.assertRaisesRegex(suite.SuiteError, "BOOTS names no boot of this run: npt-x"):
            matrix.boots("check", {"BOOTS": "npt-x"})

    def test_cmdline(self):
        _, rows = matrix.boots("check", {"BOOTS": "pml,tdp"})
        self.assertEqual([b.cmdline() for b in rows], [
            "kvm.tdp_mmu=1 kvm_amd.npt=1",
            "noxsaves printk.devkmsg=on printk.time=0 kvm.tdp_mmu=0 kvm_intel.ept=1 "
            "kvm_intel.pml=1"])


class Output(unittest.TestCase):
    @unittest.skipUnless(shutil.which("perl") and subprocess.run(
        ["perl", "-MTAP::Parser", "-e", "1"], capture_output=True).returncode == 0,
        "Perl's TAP::Parser is not installed")
    def test_results_tap_reads_the_same_in_tap_parser(self):
        results = [replay("exit-timeout.log", record.misc_boot()),
                   replay("pass-skip.log", pass_skip_boot()),
                   replay("param-mismatch.log", suite.select(suite.parse(
                       PASS_SKIP_SUITE.replace(" npt ", " tdp ")), "tdp"))]
        with tempfile.TemporaryDirectory() as d:
            tap = os.path.join(d, "results.tap")
            cli.write_tap(tap, results)
            seen, errors = cli.tap_consumer_counts(tap)
        n = cli.counts([o for r in results for o in r.outcomes])
        self.assertEqual(errors, [])
        self.assertEqual({k: seen[k] for k in n}, n)
        self.assertEqual(seen["run"], sum(n.values()))

    def test_results_tap_is_nested_ktap(self):
        """Boot, test, part: our KTAP parser reads back the tree."""
        results = [replay("pass-skip.log", pass_skip_boot()),
                   replay("exit-timeout.log", record.misc_boot())]
        with tempfile.TemporaryDirectory() as d:
            tap = os.path.join(d, "results.tap")
            cli.write_tap(tap, results)
            with open(tap) as f:
                lines = f.read().splitlines()
        self.assertEqual(lines[0], "KTAP version 1")
        top = ktap.parse_lines(lines)
        self.assertTrue(top.complete)
        boots = top.results()
        self.assertEqual([b.name for b in boots], [r.boot.name for r in results])
        for b, r in zip(boots, results):
            self.assertEqual(b.ok, not any(o.status.failed for o in r.outcomes))
            self.assertEqual([t.name for t in b.subtests], [e.name for e in r.boot.entries])
            self.assertEqual(b.plan, len(r.boot.entries))
        ring = [t for t in boots[0].subtests if t.name == "ring"][0]
        self.assertEqual([t.name for t in ring.subtests], RING)
        leaves = [(t.name, t.ok, t.directive) for b in boots for e in b.subtests
                  for t in (e.subtests or [e])]
        outcomes = [(o.name, not o.status.failed,
                     {Status.SKIP: "SKIP", Status.TIMEOUT: "TIMEOUT"}.get(o.status, ""))
                    for r in results for o in r.outcomes]
        self.assertEqual(leaves, outcomes)

    def test_newc(self):
        a = qemu.newc({"plan": b"plan 0\n"})
        self.assertTrue(a.startswith(b"070701"))
        self.assertIn(b"plan\0", a)
        self.assertIn(b"TRAILER!!!\0", a)
        self.assertEqual(len(a) % 4, 0)
        if shutil.which("cpio"):
            p = subprocess.run(["cpio", "-t", "--quiet"], input=a, capture_output=True)
            self.assertEqual(p.stdout.split(), [b"plan"])

    def test_demo_and_bench_figures(self):
        res = replay("pass-skip.log", pass_skip_boot())
        self.assertEqual(cli.demo_rows([res])[0][1:3], ("dirty-ring", "PASS"))
        self.assertEqual(cli.demo_rows([res])[0][6], "57878")
        fig = cli.memslot_figures([("series", res)])
        self.assertEqual(fig[("series", "npt")], ("8.0396", "8.0396"))


if __name__ == "__main__":
    unittest.main()


class Bench(unittest.TestCase):
    OUT = """Iteration 1 dirty memory time: 0.023939030s
Iteration 1: 657 ring entries, 1 for pages already reported
Iteration 1 collect time: 0.000673390s, re-arm time: 0.000937840s, 656 pages dirty
Iteration 2 dirty memory time: 1.500000000s
Iteration 2 collect time: 0.000120970s, re-arm time: 0.000334540s, 656 pages dirty, 3 re-arming ioctls
opcount: kvm_reset_dirty_gfn absent
opcount: kvm_flush_remote_tlbs 7 12.5
perf: mode=ring vcpus=1 mem_per_vcpu=268435456 stride=100 pages=65536 written=656 iterations=2 dirty_ns=1 collect_ns=1 rearm_ns=1 ring_full_exits=0 ring_repeats=0 log_bytes=65536"""

    def test_parse(self):
        from kvmtest import bench
        summary, iters, ops = bench.parse(self.OUT.splitlines())
        self.assertEqual((summary["written"], summary["log_bytes"]), ("656", "65536"))
        self.assertEqual(len(iters), 2)
        self.assertAlmostEqual(iters[1]["dirty_s"], 1.5)
        self.assertAlmostEqual(iters[0]["rearm_s"], 0.00093784)
        self.assertEqual((iters[0]["reported"], iters[0]["ioctls"]), (656, 0))
        self.assertEqual(iters[1]["ioctls"], 3)
        self.assertEqual(ops, {"kvm_flush_remote_tlbs": "7 12.5", "kvm_reset_dirty_gfn": "absent"})

    def test_matrix(self):
        from kvmtest import bench
        b = bench.boot("mainline", "npt", quick=True)
        self.assertEqual(b.archives(), ["mainline/modules.cpio.gz"])
        # Each mode on each quick cell, and each mode counted once.
        self.assertEqual(len(b.leaves()), (len(bench.QUICK["sweep"]) + 1) *
                         len(bench.SWEEP_MODES))
        self.assertIn("-M ring -r 16384 -H 0", b.leaves()[3].argv)
        self.assertTrue(b.leaves()[-1].argv.startswith("dirty-bench --count -i 3 "))
        # The kernels without the ring run the bitmap modes only.
        self.assertFalse([t for t in bench.boot("debian11", "npt").leaves() if "ring" in t.argv])
        # The sweep writes the same number of pages into every slot.
        self.assertEqual({(size << 8) // s for _, size, s in bench.cells("sweep")},
                         {bench.SWEEP_PAGES})
        # Dense cells stop at 65536 pages per iteration.
        self.assertTrue(all((size << 8) // s <= 65536 for _, size, s in bench.cells("fractions")))

    def test_crossover(self):
        from kvmtest import bench
        self.assertTrue(bench.crossover([(1024, 2.0), (4096, 0.5)]).startswith("near 2 GiB"))
        self.assertTrue(bench.crossover([(256, 0.9), (1024, 0.5)]).startswith("at or below"))
        self.assertTrue(bench.crossover([(256, 3.0), (1024, 1.5)]).startswith("not reached"))

    def test_bench_needs_its_kernels(self):
        built, _ = make_dry_run("bench", {})
        from kvmtest import bench
        for k in bench.KERNELS:
            for b in (bench.boot(k, "npt"),):
                for _, t in b.needs():
                    self.assertIn(t, built, "bench boots %s, which needs 'make %s'" % (k, t))


class Notices(unittest.TestCase):
    def test_srso_advisory_is_no_splat(self):
        from kvmtest import console
        self.assertEqual(console.splats([
            "[    0.091669] Speculative Return Stack Overflow: WARNING: See "
            "https://kernel.org/doc/html/latest/admin-guide/hw-vuln/srso.html for "
            "mitigation options."]), [])
        self.assertEqual(console.splats([
            "RETBleed: WARNING: Spectre v2 mitigation leaves CPU vulnerable to "
            "RETBleed attacks, data leaks possible!"]), [])
        self.assertEqual(len(console.splats(
            ["[  1.0] WARNING: CPU: 0 PID: 1 at arch/x86/kvm/mmu/mmu.c:1 f+0x1/0x2"])), 1)


class MigrationChecker(unittest.TestCase):
    """tests/migrate/migrate.py's comparison of two guest RAM dumps (the
    migration tests also show it catching a byte changed in a real
    destination's RAM, inside the test VM)."""

    @classmethod
    def setUpClass(cls):
        import importlib.util
        import sys
        path = os.path.join(suite.TOP, "tests", "migrate", "migrate.py")
        spec = importlib.util.spec_from_file_location("migrate", path)
        cls.m = importlib.util.module_from_spec(spec)
        dont = sys.dont_write_bytecode
        sys.dont_write_bytecode = True
        try:
            spec.loader.exec_module(cls.m)
        finally:
            sys.dont_write_bytecode = dont

    def dumps(self, pages, change=None):
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        data = bytearray(b"".join(bytes([p % 251]) * 4096 for p in range(pages)))
        a, b = os.path.join(d, "a"), os.path.join(d, "b")
        with open(a, "wb") as f:
            f.write(data)
        if change is not None:
            data[change] ^= 0xff
        with open(b, "wb") as f:
            f.write(data)
        return a, b

    def test_qmp_deadline(self):
        """A QMP command QEMU never answers fails in QMP_DEADLINE seconds,
        with where the process is (issue: cancel-vcpu-dirty-limit hung
        until the harness killed the test 600 s later)."""
        import socket
        import threading
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        path = os.path.join(d, "qmp")
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        srv.listen(1)
        self.addCleanup(srv.close)

        def qemu_that_hangs():
            c, _ = srv.accept()
            f = c.makefile("rb")
            c.sendall(b'{"QMP": {"version": {}, "capabilities": []}}\n')
            f.readline()
            c.sendall(b'{"return": {}}\n')
            f.readline()        # the command: never answered
            time.sleep(3)
            c.close()
        threading.Thread(target=qemu_that_hangs, daemon=True).start()

        class Proc:
            pid = os.getpid()

            def poll(self):
                return None
        con = os.path.join(d, "console")
        saved = self.m.QMP_DEADLINE, self.m.REPORT_SECS, self.m.CONSOLE
        self.m.QMP_DEADLINE, self.m.REPORT_SECS, self.m.CONSOLE = 1, 0.2, con
        try:
            q = self.m.Qmp(path, Proc())
            t0 = time.monotonic()
            with self.assertRaises(self.m.Fail) as e:
                q.cmd("cancel-vcpu-dirty-limit", **{"cpu-index": 0})
            self.assertLess(time.monotonic() - t0, 2.5)
        finally:
            self.m.QMP_DEADLINE, self.m.REPORT_SECS, self.m.CONSOLE = saved
        msg = str(e.exception)
        self.assertIn("QMP cancel-vcpu-dirty-limit: no answer in 1 s", msg)
        self.assertIn("threads of pid %d:" % os.getpid(), msg)
        self.assertRegex(msg, r"state [A-Z] cpu \d+ wchan")
        self.assertRegex(msg, r"interrupts taken per CPU in 0.2 s: .*LOC cpu0 \+\d+")
        # The host's console reader records the CPUs' state on this line.
        with open(con) as f:
            self.assertEqual(f.read(), qemu.STATE_REQUEST + "\n")

    def test_identical(self):
        self.assertEqual(self.m.differences(*self.dumps(64)), ([], []))

    def test_one_byte_named(self):
        for off in (0, 4095, 4096 * 37 + 1000, 64 * 4096 - 1):
            pages, d = self.m.differences(*self.dumps(64, change=off))
            self.assertEqual((pages, [x[0] for x in d]), ([off // 4096], [off // 4096]), off)
            msg = self.m.lost_page(*d[0])
            self.assertIn("page %d (guest physical 0x%x) first differs at byte 0x%x:" % (
                off // 4096, off // 4096 * 4096, off % 4096), msg)

    def test_sizes_differ(self):
        a, b = self.dumps(4)
        with open(b, "ab") as f:
            f.write(b"x")
        with self.assertRaises(self.m.Fail):
            self.m.differences(a, b)

    def payload_page(self, page, gen, writer, region, epoch):
        words = (page, gen, writer << 24 | region << 16 | epoch, ~(page ^ gen) & 0xffffffff)
        return b"".join(w.to_bytes(4, "little") for w in words) + bytes(4096 - 16)

    def test_lost_pages_named_from_their_headers(self):
        """A stale page is told as the write the destination lacks."""
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        src = [self.payload_page(p, 1, p % 2, 3, 0) for p in range(16)]
        dst = list(src)
        src[5] = self.payload_page(5, 2, 1, 3, 7)
        src[9] = self.payload_page(9, 40, 1, 1, 12)
        dst[9] = self.payload_page(9, 38, 1, 1, 11)
        paths = []
        for name, pages in (("a", src), ("b", dst)):
            paths.append(os.path.join(d, name))
            with open(paths[-1], "wb") as f:
                f.write(b"".join(pages))
        pages, diffs = self.m.differences(*paths)
        self.assertEqual(pages, [5, 9])
        self.assertEqual([self.m.lost_page(*x) for x in diffs], [
            "page 5 (once, writer 1): the source's generation 2, written in epoch 7, is "
            "generation 1 (epoch 0) on the destination",
            "page 9 (hot, writer 1): the source's generation 40, written in epoch 12, is "
            "generation 38 (epoch 11) on the destination"])
        self.assertEqual(self.m.payload_pages(paths[0]), [])   # all below 4 MiB


class StoppedVmState(unittest.TestCase):
    """A triple fault or a hung test VM is read through QEMU's monitor
    before QEMU ends (qemu.hang_state(), qemu.stopped())."""

    REGS = ("CPU#0\nRAX=0000000000000000 RBX=0000000000000000\n"
            "RIP=ffffffff81000010 RFL=00000246 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=0\n"
            "RSP=ffffc90000013ff0\nCR0=80050033 CR2=0000000000003024 CR3=0000000001000000\n"
            "CPU#1\nRIP=ffffffff81000123 RFL=00000002\nRSP=ffffc90000017f00\n"
            "CR0=80050033 CR2=0000000000000000\n")

    def fake_monitor(self, path, status, seen):
        import socket
        import threading
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        srv.listen(4)
        self.addCleanup(srv.close)

        def serve():
            while True:
                try:
                    c, _ = srv.accept()
                except OSError:
                    return
                f = c.makefile("rb")
                c.sendall(b"QEMU 7.2 monitor - type 'help'\r\n(qemu) ")
                for raw in f:
                    cmd = raw.decode().strip()
                    seen.append(cmd)
                    if cmd == "info status":
                        out = "VM status: %s" % status
                    elif cmd == "info registers -a":
                        out = self.REGS
                    elif cmd.startswith("x/") and cmd.endswith("i 0xffffffff81000010"):
                        out = "0xffffffff81000010:  0f 01 d8  vmrun"
                    elif cmd == "x/2gx 0xffffc90000013ff0":
                        out = "ffffc90000013ff0: 0xffffffff81000012 0x0000000000000246"
                    else:
                        out = ""
                    c.sendall(("%s\r\n%s\r\n(qemu) " % (cmd, out)).encode())
                c.close()
        threading.Thread(target=serve, daemon=True).start()

    def setUp(self):
        self.d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.d)
        self.map = os.path.join(self.d, "System.map")
        with open(self.map, "w") as f:
            f.write("ffffffff81000000 T __svm_vcpu_run\nffffffff81000100 t error_entry\n"
                    "ffffffff81000200 D some_data\nffffffff81001000 T _etext\n")

    def test_state_of_a_stopped_vm(self):
        path, seen = os.path.join(self.d, "mon"), []
        self.fake_monitor(path, "paused (shutdown)", seen)
        self.assertTrue(qemu.stopped(path))
        dest = os.path.join(self.d, "stopped.txt")
        line = qemu.hang_state(path, dest, self.map)
        self.assertEqual(line, "CPU 0 at __svm_vcpu_run+0x10; CPU 1 at error_entry+0x23")
        with open(dest) as f:
            text = f.read()
        self.assertIn("=== CPU 0: RIP __svm_vcpu_run+0x10, CR2 0000000000003024", text)
        self.assertIn("vmrun", text)
        # The stack up to the top of its 16 KiB: two words, one of them text.
        self.assertIn("[ffffc90000013ff0+0] __svm_vcpu_run+0x12", text)
        self.assertNotIn("0x246", text.split("newest first")[1].split("===")[0])
        self.assertIn("cpu 1", seen)
        self.assertLess(seen.index("stop"), seen.index("info registers -a"))

    def test_state_on_the_guests_request(self):
        """migrate.py's hang report asks for the CPUs' state on the console;
        the VM is stopped to read it and then goes on."""
        path, seen = os.path.join(self.d, "mon"), []
        self.fake_monitor(path, "running", seen)
        asked = []

        def on_request():
            asked.append(qemu.hang_state(path, os.path.join(self.d, "state.txt"), self.map,
                                         resume=True))
            return asked[-1]
        cmd = ["sh", "-c", "echo before; echo \"%s\"; echo after" % qemu.STATE_REQUEST]
        lines = [e.text for e in qemu.console(cmd, lambda: time.monotonic() + 30,
                                               on_request=on_request)
                 if isinstance(e, qemu.Line)]
        self.assertEqual(lines, ["before", qemu.STATE_REQUEST, "after"])
        self.assertEqual(asked, ["CPU 0 at __svm_vcpu_run+0x10; CPU 1 at error_entry+0x23"])
        self.assertLess(seen.index("stop"), seen.index("info registers -a"))
        self.assertEqual(seen[-1], "cont")

    def test_running_vm_is_not_stopped(self):
        path, seen = os.path.join(self.d, "mon"), []
        self.fake_monitor(path, "running", seen)
        self.assertFalse(qemu.stopped(path))
        self.assertFalse(qemu.stopped(os.path.join(self.d, "none")))
