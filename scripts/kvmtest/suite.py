"""The suite: tests/suite.list read once into records, the table of MMU
configurations, the build variants, and the plan of one boot.

A boot is one MMU configuration running one test group.  Its plan is
what the guest's /init executes and what the host expects back, so the
host writes it (timeouts included, already scaled) and hands it to the
guest in the initramfs: the guest never reads suite.list.
"""
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SUITE_LIST = os.path.join(TOP, "tests", "suite.list")

DEFAULT_GROUP = "suite"
# No second run after an L2 shutdown (Mmu.retry_l2_shutdown) in the group
# that runs the multi-vCPU tests under nested paging to see how often it
# happens, nor in the benchmarks, whose figures come from one run.
NO_RETRY_GROUPS = ("stress", "bench", "bench2")


@dataclass(frozen=True)
class Kernel:
    """A kernel a boot can run: its image and the archives it needs, as
    paths under build/out."""
    name: str
    image: str
    label: str
    # The make target that builds the image and the archives: every
    # subcommand's target that boots this kernel has it among its
    # prerequisites (the harness tests check that against "make -n").
    target: str
    archives: Tuple[str, ...] = ()
    append: str = ""            # kernel command line of its boots
    # Why a test that skips itself on this kernel fails instead ("" if
    # skips are skips): every test planned for it must run.
    no_skips: str = ""


# An idle VM held for the whole boot of a kernel with CONFIG_JUMP_LABEL=y:
# the tests' VMs then flip no static keys, on which multi-threaded TCG can
# livelock (tests/anchor/kvm-anchor.c, test-vm-notes.md).
ANCHOR = "kvmtest.anchor=1"

# In suite.list a boot of another kernel than the series is "mmu@kernel".
KERNELS = {k.name: k for k in (
    Kernel("series", "bzImage", "5.10 with the series", "initramfs"),
    Kernel("base", "bench/bzImage-base", "the pinned base without the series",
           "base-kernel"),
    # Stock Debian kernels, unmodified, whose KVM /init loads from
    # modules (scripts/fetch-kernel.sh).  Built with jump labels: /init
    # holds an idle VM for the whole boot (kvmtest.anchor=1).
    Kernel("debian11", "debian11/vmlinuz",
           "Debian 11's stock 5.10.223-1 (the base, without the series)", "debian11",
           ("debian11/modules.cpio.gz",), ANCHOR),
    Kernel("mainline", "mainline/vmlinuz", "Debian 12's stock 6.1 (mainline's ring)",
           "mainline", ("mainline/modules.cpio.gz",), ANCHOR),
    # Debian 11's stock kernel with the series' KVM as DKMS built it in a
    # Debian 11 root (scripts/dkms-root.sh).
    Kernel("debian11-dkms", "debian11-dkms/vmlinuz",
           "Debian 11's stock 5.10.223-1 with the DKMS-built KVM of the series",
           "debian11-dkms", ("debian11-dkms/modules.cpio.gz",), ANCHOR,
           no_skips="its tests skip only without the ring, i.e. if the stock KVM "
           "modules were loaded instead of the DKMS-built ones"),
)}
DEFAULT_KERNEL = "series"

# The kernels each subcommand may boot, with the lean build; its make
# target builds them (Kernel.target).  The debug and KVMGT variants are
# builds of the series kernel: they boot nothing else.  "vm" boots the
# kernel KERNEL names (the series by default); "bench" and
# "bench-memslot" choose their kernels themselves (bench.py,
# cmd_bench_memslot).
SUBCOMMAND_KERNELS = {
    "check": ("series", "debian11", "debian11-dkms"),
    "demo": ("series",),
    "vm": ("series",),
}


def kernels_for(cmd: str, variant: "Variant", env=os.environ) -> Tuple[str, ...]:
    """The kernels the subcommand cmd boots, in the order it boots them."""
    if variant.name != "lean":
        return (DEFAULT_KERNEL,)
    if cmd == "vm" and env.get("KERNEL"):
        k = env["KERNEL"]
        if k not in KERNELS:
            raise SuiteError("unknown KERNEL %r (known: %s)" % (k, ", ".join(KERNELS)))
        return (k,)
    return SUBCOMMAND_KERNELS[cmd]

# Programs that are not selftests but come in an archive of their own,
# under build/out, which a boot appends to the common initramfs when its
# plan runs one of them.
ARCHIVES = {
    # tests/migrate/migrate.py with Debian's QEMU and Python
    # (scripts/mk-migrate-initramfs.sh).
    "migrate": "migrate.cpio.gz",
}


@dataclass(frozen=True)
class Machine:
    """An emulated test machine (scripts/kvmtest/qemu.py, bochs.py)."""
    name: str
    label: str
    # Kernel parameters this machine needs, whatever the MMU.
    append: str = ""
    # "tty": /init writes to the console; "kmsg": through /dev/kmsg, so
    # that the kernel's console driver writes it out synchronously.
    output: str = "tty"


MACHINES = {m.name: m for m in (
    Machine("qemu-amd", "QEMU 7.2 TCG, AMD EPYC with SVM and NPT"),
    # Bochs 2.7's corei7_skylake_x reports the compacted XSAVE area
    # (CPUID 0xD.1 EBX) at the standard format's size, and 5.10 then
    # WARNs in fpu__init_system_xstate: with noxsaves it uses the
    # standard format, whose sizes Bochs reports consistently.  Its UART
    # starves /init's tty output (lines reach the serial file seconds
    # late, or never before a reboot): /init writes through /dev/kmsg,
    # without timestamps (Debian's kernels print them by default).
    Machine("bochs-intel", "Bochs 2.7, Intel Skylake-X with VMX, EPT, A/D bits and PML",
            append="noxsaves printk.devkmsg=on printk.time=0", output="kmsg"),
)}


@dataclass(frozen=True)
class Mmu:
    """One x86 MMU configuration of a machine, chosen on the kernel
    command line."""
    name: str
    machine: str
    label: str
    # (module, parameter, value): passed as module.param=value and read
    # back from /sys/module/<module>/parameters/<param>.
    params: Tuple[Tuple[str, str, str], ...]
    # (module, parameter, value): not passed, but must read back so.
    expect: Tuple[Tuple[str, str, str], ...] = ()
    # QEMU TCG's nested paging: now and then the nested guest triple
    # faults (KVM_EXIT_SHUTDOWN), on mainline's 6.1 too (README, "Known
    # problems"); a test that fails so runs once more (tests/init.sh),
    # and the report names every such retry.
    retry_l2_shutdown: bool = False

    def cmdline(self) -> str:
        return " ".join("%s.%s=%s" % p for p in self.params)

    def checked(self) -> Tuple[Tuple[str, str, str], ...]:
        return self.params + self.expect


# The one table of MMU configurations.
MMUS = {m.name: m for m in (
    Mmu("npt", "qemu-amd", "legacy MMU + NPT", (("kvm", "tdp_mmu", "0"), ("kvm_amd", "npt", "1")),
        retry_l2_shutdown=True),
    Mmu("tdp", "qemu-amd", "TDP MMU + NPT", (("kvm", "tdp_mmu", "1"), ("kvm_amd", "npt", "1")),
        retry_l2_shutdown=True),
    Mmu("shadow", "qemu-amd", "shadow paging", (("kvm", "tdp_mmu", "0"), ("kvm_amd", "npt", "0"))),
    Mmu("pml", "bochs-intel", "legacy MMU + EPT + PML",
        (("kvm", "tdp_mmu", "0"), ("kvm_intel", "ept", "1"), ("kvm_intel", "pml", "1")),
        (("kvm_intel", "eptad", "1"),)),
    Mmu("nopml", "bochs-intel", "legacy MMU + EPT, write protection",
        (("kvm", "tdp_mmu", "0"), ("kvm_intel", "ept", "1"), ("kvm_intel", "pml", "0")),
        (("kvm_intel", "eptad", "1"),)),
    Mmu("tdppml", "bochs-intel", "TDP MMU + EPT + PML",
        (("kvm", "tdp_mmu", "1"), ("kvm_intel", "ept", "1"), ("kvm_intel", "pml", "1")),
        (("kvm_intel", "eptad", "1"),)),
    Mmu("noept", "bochs-intel", "shadow paging on Intel",
        (("kvm", "tdp_mmu", "0"), ("kvm_intel", "ept", "0")),
        (("kvm_intel", "pml", "0"),)),
)}


@dataclass(frozen=True)
class Variant:
    """A build of the test kernel (scripts/lib.sh names its directories)."""
    name: str
    env: str                    # the make variable that selects it
    tmo_scale: int = 1          # timeouts are multiplied by this
    test_set: Optional[str] = None       # run only this [set] of suite.list
    only: Tuple[str, ...] = ()           # ... or only these tests
    machines: Tuple[str, ...] = ()       # ... on these machines (all if empty)
    why: str = ""


VARIANTS = {v.name: v for v in (
    Variant("lean", ""),
    # The debug kernel (KASAN, lockdep, UBSAN) runs the dirty tracking
    # tests, more slowly.
    # Not under Bochs: KASAN in an interpreter is too slow for the suite.
    Variant("debug", "DEBUG", tmo_scale=4, test_set="tracking", machines=("qemu-amd",)),
    # KVMGT built in: what a VM pays for memslot metadata when KVMGT is
    # built but no vGPU registered with it.
    Variant("kvmgt", "KVMGT", only=("memslot_metadata", "svm_nested_paging"),
            machines=("qemu-amd",)),
)}


def variant_from_env(env=os.environ) -> Variant:
    for v in VARIANTS.values():
        if v.env and env.get(v.env, "0") == "1":
            return v
    return VARIANTS["lean"]


@dataclass
class Test:
    """A leaf: one program run, one result."""
    name: str
    timeout: int
    argv: str                   # the command line, or "" for a skip
    skip: str = ""              # reason, if listed as "!skip REASON"
    group: Optional[str] = None  # the multi-part test it belongs to


@dataclass
class Record:
    """One record of suite.list: a test, or a multi-part test."""
    name: str
    where: Tuple[Tuple[str, str, str], ...]   # (mmu, group, kernel)
    timeout: int
    command: str
    test_set: str
    lineno: int
    parts: List[Tuple[str, str]] = field(default_factory=list)

    def runs_in(self, mmu: str, group: str, kernel: str = DEFAULT_KERNEL) -> bool:
        return (mmu, group, kernel) in self.where

    def leaves(self, scale: int = 1) -> List[Test]:
        tmo = self.timeout * scale
        if self.command.startswith("!skip"):
            return [Test(self.name, 0, "", skip=self.command[5:].strip())]
        if not self.parts:
            return [Test(self.name, tmo, self.command)]
        return [Test("%s_%s" % (self.name, p), tmo, "%s %s" % (self.command, a),
                     group=self.name) for p, a in self.parts]


class SuiteError(Exception):
    pass


_NAME = re.compile(r"^[A-Za-z0-9_]+$")


def parse(text: str, path: str = "suite.list") -> List[Record]:
    records: List[Record] = []
    test_set = ""
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not line.strip() or line.lstrip().startswith("#"):
            continue

        def err(msg):
            raise SuiteError("%s:%d: %s" % (path, n, msg))
        m = re.match(r"^\[(\w+)\]$", line)
        if m:
            test_set = m.group(1)
            continue
        if line[0].isspace():
            if not records or records[-1].command.startswith("!skip"):
                err("a part without a multi-part test above it")
            part = line.split(None, 1)
            if not _NAME.match(part[0]) or len(part) < 2:
                err("a part is 'name arguments'")
            records[-1].parts.append((part[0], part[1]))
            continue
        f = line.split(None, 3)
        if len(f) < 4:
            err("expected: name where timeout command")
        name, where, tmo, cmd = f
        if not _NAME.match(name):
            err("bad test name %r" % name)
        if not tmo.isdigit():
            err("timeout %r is not a number of seconds" % tmo)
        pairs = []
        for w in where.split(","):
            mmu, _, group = w.partition(":")
            mmu, _, kernel = mmu.partition("@")
            if mmu not in MMUS:
                err("unknown MMU %r (known: %s)" % (mmu, ", ".join(MMUS)))
            if kernel and kernel not in KERNELS:
                err("unknown kernel %r (known: %s)" % (kernel, ", ".join(KERNELS)))
            pairs.append((mmu, group or DEFAULT_GROUP, kernel or DEFAULT_KERNEL))
        if not cmd.startswith("!skip") and int(tmo) <= 0:
            err("a test that runs needs a timeout")
        records.append(Record(name, tuple(pairs), int(tmo), cmd, test_set, n))
    names = [t.name for r in records for t in r.leaves()] + [r.name for r in records if r.parts]
    dup = sorted({x for x in names if names.count(x) > 1})
    if dup:
        raise SuiteError("%s: names used twice: %s" % (path, ", ".join(dup)))
    return records


def load(path: str = SUITE_LIST) -> List[Record]:
    with open(path) as f:
        return parse(f.read(), path)


def groups(records: List[Record]) -> List[str]:
    return sorted({g for r in records for _, g, _ in r.where})


def programs(records: List[Record]) -> List[str]:
    """The test programs the common initramfs must hold (those of
    ARCHIVES come in their own archives)."""
    out = []
    for r in records:
        if r.command.startswith("!skip"):
            continue
        prog = r.command.split()[0]
        if prog not in out and prog not in ARCHIVES:
            out.append(prog)
    return out


@dataclass
class Entry:
    """A top-level entry of a boot's plan: a test, or a multi-part test
    and the parts of it that this boot runs."""
    name: str
    tests: List[Test]
    multi: bool


@dataclass
class Boot:
    mmu: Mmu
    group: str
    entries: List[Entry]
    kernel: str = DEFAULT_KERNEL

    @property
    def name(self) -> str:
        name = self.mmu.name
        if self.kernel != DEFAULT_KERNEL:
            name += "-" + self.kernel
        if self.group != DEFAULT_GROUP:
            name += "-" + self.group
        return name

    def leaves(self) -> List[Test]:
        return [t for e in self.entries for t in e.tests]

    @property
    def retry(self) -> bool:
        """Whether a test that ends in an L2 shutdown runs once more: on
        nested paging, except in the group that is there to count them."""
        return self.mmu.retry_l2_shutdown and self.group not in NO_RETRY_GROUPS

    def archives(self) -> List[str]:
        """The archives this boot's kernel and tests need (ARCHIVES), in
        the order they need them."""
        out = list(KERNELS[self.kernel].archives)
        for t in self.leaves():
            a = ARCHIVES.get(t.argv.split()[0]) if t.argv else None
            if a and a not in out:
                out.append(a)
        return out

    def plan_text(self) -> str:
        """The plan file the guest's /init executes (tests/init.sh)."""
        out = ["boot %s" % self.name]
        out += ["param %s %s" % p[:2] for p in self.mmu.checked()]
        out.append("output %s" % MACHINES[self.mmu.machine].output)
        if self.retry:
            out.append("retry l2-shutdown")
        out.append("plan %d" % len(self.entries))
        for e in self.entries:
            if e.multi:
                out.append("group %s %d" % (e.name, len(e.tests)))
            for t in e.tests:
                if t.skip:
                    out.append("skip %s %s" % (t.name, t.skip))
                else:
                    out.append("test %d %s %s" % (t.timeout, t.name, t.argv))
        return "\n".join(out) + "\n"


def select(records: List[Record], mmu: str, group: str = DEFAULT_GROUP,
           variant: Variant = VARIANTS["lean"],
           only: Optional[List[str]] = None, kernel: str = DEFAULT_KERNEL) -> Boot:
    """The plan of one boot.  only: test names, or names of multi-part
    tests (all their parts)."""
    only = list(only or variant.only) or None
    entries = []
    if variant.machines and MMUS[mmu].machine not in variant.machines:
        records = []
    for r in records:
        if not r.runs_in(mmu, group, kernel):
            continue
        if variant.test_set and r.test_set != variant.test_set:
            continue
        leaves = r.leaves(variant.tmo_scale)
        if only is not None and r.name not in only:
            leaves = [t for t in leaves if t.name in only]
        if leaves:
            entries.append(Entry(r.name, leaves, bool(r.parts)))
    return Boot(MMUS[mmu], group, entries, kernel)


def check_only(records: List[Record], only: List[str]) -> None:
    known = {r.name for r in records} | {t.name for r in records for t in r.leaves()}
    bad = [o for o in only if o not in known]
    if bad:
        raise SuiteError("ONLY names unknown tests: %s" % ", ".join(bad))
