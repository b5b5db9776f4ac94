"""The suite: tests/suite.list read once into records, and a boot (a row
of the matrix, matrix.py) with the tests it runs and its plan.

A boot's plan is what the guest's /init executes and what the host
expects back, so the host writes it (timeouts included, already scaled)
and hands it to the guest in the initramfs: the guest never reads
suite.list.
"""
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from .matrix import (ARCHIVE_TARGETS, ARCHIVES, DEFAULT_EMULATOR, DEFAULT_GROUP, DEFAULT_KERNEL, EMULATORS,  # noqa: F401
                     GROUPS, KERNELS,
                     MACHINES, MMUS, SUBCOMMAND_KERNELS, VARIANTS, Group, Kernel,
                     Machine, Mmu, SuiteError, Variant, kernels_for, variant_from_env)

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SUITE_LIST = os.path.join(TOP, "tests", "suite.list")


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


_NAME = re.compile(r"^[A-Za-z0-9_]+$")


def parse(text: str, path: str = "suite.list") -> List[Record]:
    records: List[Record] = []
    places: Dict[str, List[str]] = {}   # "%name where": a named placement list
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
        m = re.match(r"^%(\w+)\s+(\S+)$", line)
        if m:
            if m.group(1) in places:
                err("placement %%%s defined twice" % m.group(1))
            places[m.group(1)] = m.group(2).split(",")
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
        ws = []
        for w in where.split(","):
            if w.startswith("%"):
                if w[1:] not in places:
                    err("unknown placement %r (define it above: '%s where')" % (w, w))
                ws += places[w[1:]]
            else:
                ws.append(w)
        for w in ws:
            mmu, _, group = w.partition(":")
            mmu, _, kernel = mmu.partition("@")
            if mmu not in MMUS:
                err("unknown MMU %r (known: %s)" % (mmu, ", ".join(MMUS)))
            if kernel and kernel not in KERNELS:
                err("unknown kernel %r (known: %s)" % (kernel, ", ".join(KERNELS)))
            if group and group not in GROUPS:
                err("unknown group %r (known: %s)" % (group, ", ".join(GROUPS)))
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
    """A row of the boot matrix (matrix.py) and the tests it runs."""
    mmu: Mmu
    group: str
    entries: List[Entry]
    kernel: str = DEFAULT_KERNEL
    emulator: str = DEFAULT_EMULATOR
    # Each test this many times (REPEAT=N: failure rates); every run counts.
    repeat: int = 1
    # KVM trace events the guest records through the whole boot (TRACE=);
    # a failed test's report ends with the last of them.
    trace: Tuple[str, ...] = ()

    @property
    def name(self) -> str:
        name = self.mmu.name
        if self.kernel != DEFAULT_KERNEL:
            name += "-" + self.kernel
        if self.emulator != DEFAULT_EMULATOR:
            name += "-" + self.emulator
        if self.group != DEFAULT_GROUP:
            name += "-" + self.group
        return name

    def leaves(self) -> List[Test]:
        return [t for e in self.entries for t in e.tests]

    @property
    def anchor(self) -> bool:
        return KERNELS[self.kernel].anchor

    def cmdline(self) -> str:
        """The kernel command line: the machine's needs and the MMU's
        parameters."""
        return " ".join(x for x in (MACHINES[self.mmu.machine].append,
                                    self.mmu.cmdline()) if x)

    def needs(self) -> List[tuple]:
        """The build outputs this boot needs, under build/out, each with
        the make target that builds it."""
        k = KERNELS[self.kernel]
        e = EMULATORS[self.emulator]
        return [(f, k.target) for f in (k.image,) + k.archives] + \
            [(a, ARCHIVE_TARGETS[a]) for a in self.archives() if a not in k.archives] + \
            ([(e.binary, e.target)] if e.target and MACHINES[self.mmu.machine].emulators
             else [])

    def archives(self) -> List[str]:
        """The archives this boot's kernel and tests need (ARCHIVES), in
        the order they need them."""
        out = list(KERNELS[self.kernel].archives)
        for t in self.leaves():
            for a, _ in ARCHIVES.get(t.argv.split()[0], ()) if t.argv else ():
                if a not in out:
                    out.append(a)
        return out

    def plan_text(self) -> str:
        """The plan file the guest's /init executes (tests/init.sh)."""
        out = ["boot %s" % self.name]
        out += ["param %s %s" % p[:2] for p in self.mmu.checked()]
        out.append("output %s" % MACHINES[self.mmu.machine].output)
        if self.anchor:
            out.append("anchor")
        if self.trace:
            out.append("trace %s" % ",".join(self.trace))
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
           only: Optional[List[str]] = None, kernel: str = DEFAULT_KERNEL,
           emulator: str = DEFAULT_EMULATOR, repeat: int = 1) -> Boot:
    """The plan of one boot.  only: test names, or names of multi-part
    tests (all their parts).  repeat: each entry that many times, the
    runs after the first named NAME_r2, NAME_r3..."""
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
    entries = [e if k == 1 else Entry(
        "%s_r%d" % (e.name, k),
        [Test("%s_r%d" % (t.name, k), t.timeout, t.argv, t.skip,
              t.group and "%s_r%d" % (t.group, k)) for t in e.tests], e.multi)
        for k in range(1, repeat + 1) for e in entries]
    return Boot(MMUS[mmu], group, entries, kernel, emulator, repeat)


def check_only(records: List[Record], only: List[str]) -> None:
    known = {r.name for r in records} | {t.name for r in records for t in r.leaves()}
    bad = [o for o in only if o not in known]
    if bad:
        raise SuiteError("ONLY names unknown tests: %s" % ", ".join(bad))
