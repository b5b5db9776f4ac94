"""The boot matrix: every boot that a subcommand runs is a row of it.

A row is a kernel (KERNELS) on a machine with an MMU configuration
(MACHINES, MMUS), running one test group (GROUPS) of one build variant
(VARIANTS).  From these tables a row (suite.Boot) has its kernel command
line, whether /init holds the anchor VM, and the build outputs it needs
with the make targets that build them; the guest learns what it must
from the row's plan (/plan).  boots() is how every subcommand selects its rows: by
kernel (SUBCOMMAND_KERNELS, KERNEL=), MMU (MMUS=, MMU=), group (GROUP=),
tests (ONLY=) and boot name (BOOTS=).
"""
import dataclasses
import os
import re
from dataclasses import dataclass
from typing import List, Optional, Tuple


class SuiteError(Exception):
    pass


@dataclass(frozen=True)
class Group:
    """A test group: the tests suite.list places in it, one boot per MMU
    (and kernel) that has any."""
    name: str


GROUPS = {g.name: g for g in (
    Group("suite"),             # make check
    # Longer runs, and the nested-paging tests on Debian 12's 6.1
    # (GROUP=stress).
    Group("stress"),
    Group("migrate"),           # make migrate
    Group("dkms"),              # make check-dkms
    Group("fault"),             # make check-fault
    Group("intel"),             # GROUP=intel: the other Intel configurations
    # Diagnostics of the test machine, under EMULATORS=qemu7race only
    # (docs/known-problems.md, issue 26).
    Group("diag"),
    # The benchmark's figures come from one run; "bench2" runs the cells
    # left after a hang of the test VM in a boot of their own.
    Group("bench"),
    Group("bench2"),
)}
DEFAULT_GROUP = "suite"


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
    # Built with jump labels: /init holds an idle VM for the whole boot
    # (the plan's "anchor" line), so that the tests' VMs flip no static
    # keys, on which multi-threaded TCG can livelock
    # (tests/anchor/kvm-anchor.c, test-vm-notes.md).
    anchor: bool = False
    # Why a test that skips itself on this kernel fails instead ("" if
    # skips are skips): every test planned for it must run.
    no_skips: str = ""


# In suite.list a boot of another kernel than the series is "mmu@kernel".
KERNELS = {k.name: k for k in (
    Kernel("series", "bzImage", "5.10 with the series", "initramfs"),
    Kernel("base", "bench/bzImage-base", "the pinned base without the series",
           "base-kernel"),
    # Stock Debian kernels, unmodified, whose KVM /init loads from
    # modules (scripts/fetch-kernel.sh), built with jump labels.
    Kernel("debian11", "debian11/vmlinuz",
           "Debian 11's stock 5.10.262-1 (the base, without the series)", "debian11",
           ("debian11/modules.cpio.gz",), anchor=True),
    Kernel("mainline", "mainline/vmlinuz", "Debian 12's stock 6.1 (mainline's ring)",
           "mainline", ("mainline/modules.cpio.gz",), anchor=True),
    # Debian 11's stock kernel with the series' KVM as DKMS built it in a
    # Debian 11 root (scripts/dkms-root.sh).
    Kernel("debian11-dkms", "debian11-dkms/vmlinuz",
           "Debian 11's stock 5.10.262-1 with the DKMS-built KVM of the series",
           "debian11-dkms", ("debian11-dkms/modules.cpio.gz",), anchor=True,
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
    "check": ("series", "debian11", "debian11-dkms", "mainline"),
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


# Programs that are not selftests but come in archives of their own,
# under build/out, which a boot appends to the common initramfs, in
# order, when its plan runs one of them; each with its make target.
ARCHIVES = {
    # tests/migrate/migrate.py with Debian's QEMU and Python
    # (scripts/mk-migrate-initramfs.sh).
    "migrate": (("migrate.cpio.gz", "initramfs"),),
    # QEMU's own migration-test (scripts/mk-qtest-archive.sh), which
    # drives the migration archive's QEMU.
    "qemu-migration-test": (("migrate.cpio.gz", "initramfs"), ("qtest.cpio.gz", "qtest")),
    # migrate.py with Debian 13's QEMU 10.0 as the VMM
    # (scripts/mk-qemu10-client.sh).
    "migrate10": (("migrate.cpio.gz", "initramfs"), ("qemu10-client.cpio.gz", "qemu10-client")),
}
ARCHIVE_TARGETS = {f: t for a in ARCHIVES.values() for f, t in a}


@dataclass(frozen=True)
class Emulator:
    """A build of QEMU that runs the test VM (qemu.py)."""
    name: str
    label: str
    # The command, and the make target that builds it (None: installed).
    binary: str
    target: Optional[str] = None


EMULATORS = {e.name: e for e in (
    # Debian 12's, installed by make deps.
    Emulator("qemu7", "Debian 12's QEMU 7.2", "qemu-system-x86_64"),
    # Debian 13's, in a cached trixie root (scripts/fetch-qemu10.sh): the
    # wrapper runs it there, in a mount namespace of its own.
    Emulator("qemu10", "Debian 13's QEMU 10.0", "qemu10/qemu-system-x86_64", "qemu10"),
    # Debian 12's 7.2 rebuilt from its source package with qemu/*.patch,
    # the fix of the machine's own failures (scripts/build-qemu7fix.sh).
    Emulator("qemu7fix", "Debian 12's QEMU 7.2 with qemu/*.patch",
             "qemu7fix/qemu-system-x86_64", "qemu7fix"),
    # Diagnostic, never a default: Debian's 7.2 with qemu/diag/*.patch
    # instead of the fix, the race's window widened by QEMU_IGNNE_RACE_NS
    # and the SVM state in "info registers" (issue 26).
    Emulator("qemu7race", "Debian 12's QEMU 7.2 with qemu/diag/*.patch",
             "qemu7race/qemu-system-x86_64", "qemu7race"),
)}
# Debian 12's QEMU 7.2 loses GIF and NPT of CPU 0 now and then under nested
# SVM (qemu/0001-*.patch; README, "The test machine's own failures").
DEFAULT_EMULATOR = "qemu7fix"


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
    # The emulators that can run it (EMULATORS); Bochs is its own.
    emulators: Tuple[str, ...] = ()


MACHINES = {m.name: m for m in (
    Machine("qemu-amd", "QEMU TCG, AMD EPYC with SVM and NPT", emulators=tuple(EMULATORS)),
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

    def cmdline(self) -> str:
        return " ".join("%s.%s=%s" % p for p in self.params)

    def checked(self) -> Tuple[Tuple[str, str, str], ...]:
        return self.params + self.expect


# The one table of MMU configurations.
MMUS = {m.name: m for m in (
    Mmu("npt", "qemu-amd", "legacy MMU + NPT", (("kvm", "tdp_mmu", "0"), ("kvm_amd", "npt", "1"))),
    Mmu("tdp", "qemu-amd", "TDP MMU + NPT", (("kvm", "tdp_mmu", "1"), ("kvm_amd", "npt", "1"))),
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
    # The series with tests/fault/*.patch: the migration test must see
    # the dirty pages it loses on request.
    Variant("fault", "FAULT", test_set="fault", machines=("qemu-amd",)),
)}


def variant_from_env(env=os.environ) -> Variant:
    for v in VARIANTS.values():
        if v.env and env.get(v.env, "0") == "1":
            return v
    return VARIANTS["lean"]



def env_list(name, default="", env=os.environ) -> List[str]:
    # Make exports its variables even when they are empty.
    return [x for x in re.split(r"[,\s]+", env.get(name) or default) if x]


def select_boots(records, variant: Variant, mmus, group: str, only,
                 kernels=(DEFAULT_KERNEL,), emulators=(DEFAULT_EMULATOR,),
                 repeat: int = 1) -> list:
    """The rows for these MMUs, kernels and emulators that have tests in
    the group (an emulator applies to the machines it can run)."""
    from . import suite
    if only:
        suite.check_only(records, only)
    if group not in GROUPS:
        raise SuiteError("unknown group %r (known: %s)" % (group, ", ".join(GROUPS)))
    out = []
    for m in mmus:
        if m not in MMUS:
            raise SuiteError("unknown MMU %r (known: %s)" % (m, ", ".join(MMUS)))
        runs = MACHINES[MMUS[m].machine].emulators
        for k in kernels:
            for e in [e for e in emulators if e in runs] if runs else [DEFAULT_EMULATOR]:
                b = suite.select(records, m, group, variant, only, kernel=k, emulator=e,
                                 repeat=repeat)
                if b.entries:
                    out.append(b)
    if not out:
        raise SuiteError("no test runs in group %r under %s%s" % (
            group, " ".join(mmus), " with ONLY=" + ",".join(only) if only else ""))
    return out


# The tests the demo runs.
DEMO_TESTS = ["dirty_log", "clear_log", "dirty_ring"]


def repeat(env=os.environ) -> int:
    """REPEAT=N: every test of the run N times in its boot, without the
    second run after an L2 shutdown: rates of failure (report.print_rates())."""
    v = env.get("REPEAT") or "1"
    if not v.isdigit() or int(v) < 1:
        raise SuiteError("REPEAT=%r: a count of runs, 1 or more" % v)
    return int(v)


def boots(cmd: str, env=os.environ, mmus=None, group=None, only=None):
    """(variant, rows): the boots of subcommand cmd (check, vm, demo) under
    the environment env, which is what it runs and what the harness tests
    hold against its make target's prerequisites.  BOOTS=NAME,... keeps
    only the rows of those names."""
    from . import suite
    variant = variant_from_env(env)
    if cmd == "demo":
        mmus, group, only = list(MMUS), DEFAULT_GROUP, DEMO_TESTS
    elif cmd == "vm":
        mmus = mmus or [env.get("MMU") or "npt"]
    emulators = env_list("EMULATORS", DEFAULT_EMULATOR, env)
    unknown = [e for e in emulators if e not in EMULATORS]
    if unknown:
        raise SuiteError("unknown emulator %s (known: %s)" % (
            ", ".join(unknown), ", ".join(EMULATORS)))
    rows = select_boots(suite.load(), variant,
                        mmus or env_list("MMUS", " ".join(MMUS), env),
                        group or env.get("GROUP") or DEFAULT_GROUP,
                        only or env_list("ONLY", "", env),
                        kernels_for(cmd, variant, env), emulators, repeat(env))
    names = env_list("BOOTS", "", env)
    if names:
        unknown = [n for n in names if n not in {b.name for b in rows}]
        if unknown:
            raise SuiteError("BOOTS names no boot of this run: %s (its boots: %s)" % (
                ", ".join(unknown), ", ".join(b.name for b in rows)))
        rows = [b for b in rows if b.name in names]
    trace = env_list("TRACE", "", env)
    bad = [e for e in trace if not re.match(r"^kvm_[a-z_]+$", e)]
    if bad:
        raise SuiteError("TRACE=%s: KVM trace events (kvm_exit,kvm_entry,...), not %s" % (
            ",".join(trace), ", ".join(bad)))
    if trace:
        rows = [dataclasses.replace(b, trace=tuple(trace)) for b in rows]
    return variant, rows
