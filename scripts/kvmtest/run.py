"""One boot of the test VM: its plan, QEMU, the KTAP parser and the
console rules together, producing a status for every planned test.

The host knows the plan, so it knows every deadline: the guest must
print its KTAP plan within the boot timeout, and each test's result
within that test's timeout plus a grace period after the previous
result.  A boot fails (a result named "boot") when the guest never
starts its plan, bails out, reports parameters other than the boot
asks for, reports tests out of plan, or the kernel prints a splat
outside any test; planned tests that never ran are NOT_RUN.
"""
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional

from . import bochs, console, ktap, qemu
from .ktap import Result, Status
from .suite import EMULATORS, KERNELS, MACHINES, Boot, Test

GRACE = 60          # seconds past a test's timeout before the host acts
BOOT_TIMEOUT = 180  # seconds from QEMU's start to the guest's KTAP plan


@dataclass
class Outcome:
    """The final word on one planned test (or on the boot itself)."""
    boot: str
    name: str
    status: Status
    reason: str = ""
    secs: float = 0.0
    output: List[str] = field(default_factory=list)
    kernel: List[str] = field(default_factory=list)


@dataclass
class BootResult:
    boot: Boot
    outcomes: List[Outcome]
    header: List[str]
    problems: List[str]
    log: Optional[str] = None
    secs: float = 0.0
    # What ran the test VM: "QEMU emulator version 7.2.x (Debian ...)", Bochs.
    emulator: str = ""


def _norm(v: str) -> str:
    return {"y": "1", "n": "0"}.get(v.strip().lower(), v.strip())


class BootRun:
    """Consumes the console events of one boot."""

    def __init__(self, boot: Boot, scale: int = 1,
                 on_outcome: Optional[Callable[[Outcome], None]] = None):
        self.boot = boot
        self.leaves: List[Test] = boot.leaves()
        self.multi = {e.name for e in boot.entries if e.multi}
        self.grace = GRACE * scale
        self.boot_timeout = BOOT_TIMEOUT * scale
        self.parser = ktap.Parser()
        self.outcomes: List[Outcome] = []
        self.problems: List[str] = []
        self.preamble: List[str] = []
        self.on_outcome = on_outcome
        self.t0 = time.monotonic()
        self.t_last: Optional[float] = None     # the plan or the last leaf result
        self.ended: Optional[qemu.End] = None
        self.aborted = False

    # -- deadlines ----------------------------------------------------
    def deadline(self) -> float:
        if self.t_last is None:
            return self.t0 + self.boot_timeout
        i = len(self.outcomes)
        tmo = self.leaves[i].timeout if i < len(self.leaves) else 0
        return self.t_last + tmo + self.grace

    # -- events -------------------------------------------------------
    def feed(self, ev: qemu.Event) -> bool:
        """False when the boot must stop now."""
        if isinstance(ev, qemu.End):
            self.ended = ev
            return False
        for kind, val in self.parser.feed(ev.text):
            if kind == "preamble":
                self.preamble.append(val)
            elif kind == "plan":
                self.t_last = ev.t
                if not self._check_header(val):
                    self.aborted = True
                    return False
            elif kind == "bail":
                self.problems.append("the guest bailed out: " + val)
                return False
            elif kind == "result":
                if not self._result(val, ev.t):
                    self.aborted = True
                    return False
        return True

    def _check_header(self, nplan: int) -> bool:
        have = {}
        for h in self.parser.header:
            if h.startswith("param "):
                k, _, v = h[6:].partition("=")
                have[k.strip()] = v.strip()
        ok = True
        for mod, name, want in self.boot.mmu.checked():
            key = "%s.%s" % (mod, name)
            got = have.get(key)
            if got is None or _norm(got) != _norm(want):
                self.problems.append("%s is %s, the boot asks for %s" % (
                    key, got if got is not None else "not reported", want))
                ok = False
        if nplan != len(self.boot.entries):
            self.problems.append("the guest plans %d tests, the host %d" % (
                nplan, len(self.boot.entries)))
            ok = False
        return ok

    def _result(self, r: Result, t: float) -> bool:
        is_group = r.depth == 0 and r.name in self.multi
        if is_group:
            s = console.splats(r.kernel)
            if s:
                self.problems.append("kernel splat in %s between its parts: %s" % (r.name, s[0]))
            return True
        i = len(self.outcomes)
        if i >= len(self.leaves) or self.leaves[i].name != r.name:
            self.problems.append("the guest reported %r where the plan has %s" % (
                r.name, repr(self.leaves[i].name) if i < len(self.leaves) else "nothing"))
            return False
        status, why = console.verdict(r)
        no_skips = KERNELS[self.boot.kernel].no_skips
        if status is Status.SKIP and no_skips and not self.leaves[i].skip:
            status, why = Status.FAIL, "skipped (%s) on a kernel where every test must run: %s" % (
                why, no_skips)
        self._emit(Outcome(self.boot.name, r.name, status, why,
                           t - (self.t_last or t), r.output, r.kernel))
        self.t_last = t
        return True

    def _emit(self, o: Outcome):
        self.outcomes.append(o)
        if self.on_outcome:
            self.on_outcome(o)

    # -- the end --------------------------------------------------------
    def finish(self) -> BootResult:
        p = self.parser
        end = self.ended
        leftover = p.leftover_kernel()
        now = end.t if end and end.t else time.monotonic()
        last = console.last_words(leftover or self.preamble)
        if not p.started or p.top.plan is None:
            if not self.problems:
                if end is not None and end.why == "deadline":
                    self.problems.append("no KTAP plan from the guest within %d s "
                                         "(it never reached /init, or hung)" % self.boot_timeout)
                else:
                    self.problems.append("the guest ended before its KTAP plan%s" % (
                        ": " + last if last else ""))
        elif len(self.outcomes) < len(self.leaves) and not self.problems:
            t = self.leaves[len(self.outcomes)]
            secs = now - (self.t_last or now)
            s = console.splats(leftover)
            if end is not None and end.why == "deadline":
                self._emit(Outcome(self.boot.name, t.name, Status.TIMEOUT,
                                   "hung: no result %d s after it started (timeout %d s)%s%s" % (
                                       secs, t.timeout, ", splat: " + s[0] if s else "",
                                       "; stopped: " + end.detail if end.detail else ""),
                                   secs, kernel=leftover))
            else:
                self._emit(Outcome(self.boot.name, t.name, Status.FAIL,
                                   "the guest died during the test (QEMU exit status %s%s)%s" % (
                                       end.rc if end else "?",
                                       "; " + end.detail if end and end.detail else "",
                                       ": " + (s[0] if s else last) if (s or last) else ""),
                                   secs, kernel=leftover))
        elif p.complete and end is not None and end.why == "deadline":
            self.problems.append("the guest did not power off after its last test")
        for t in self.leaves[len(self.outcomes):]:
            self._emit(Outcome(self.boot.name, t.name, Status.NOT_RUN,
                               "not run: the boot ended before it"))
        s = console.boot_problems(self.preamble + p.trailer)
        if s:
            self.problems.append("kernel splat outside any test: " + s[0])
        if self.problems:
            self._emit(Outcome(self.boot.name, "boot", Status.FAIL, "; ".join(self.problems)))
        return BootResult(self.boot, self.outcomes, p.header, self.problems,
                          secs=now - self.t0)


def run(boot: Boot, events: Iterable[qemu.Event], run_: BootRun,
        log: Optional[str] = None, echo: Optional[Callable[[str], None]] = None,
        note: str = "") -> BootResult:
    logf = open(log, "w", buffering=1) if log else None
    if logf and note:
        logf.write(qemu.HOST_NOTE + note + "\n")
    gen = iter(events)
    try:
        for ev in gen:
            if logf:
                if isinstance(ev, qemu.Line):
                    logf.write(ev.text + "\n")
                else:
                    logf.write("%s%s %s%s\n" % (qemu.HOST_NOTE, ev.why,
                                                "" if ev.rc is None else ev.rc,
                                                " " + ev.detail if ev.detail else ""))
            if echo and isinstance(ev, qemu.Line):
                echo(ev.text)
            if not run_.feed(ev):
                if not isinstance(ev, qemu.End) and logf:
                    logf.write(qemu.HOST_NOTE + "aborted: " + "; ".join(run_.problems) + "\n")
                break
    finally:
        close = getattr(gen, "close", None)
        if close:
            close()
    res = run_.finish()
    res.log = log
    if logf:
        logf.close()
    return res


def boot_vm(boot: Boot, kernel: str, initramfs: str, workdir: str, scale: int = 1,
            on_outcome=None, echo=None, extra_append: str = "",
            mem: Optional[str] = None) -> BootResult:
    """Boot the kernel on the boot's machine with this boot's plan and
    collect the results."""
    os.makedirs(workdir, exist_ok=True)
    machine = MACHINES[boot.mmu.machine]
    archives = [os.path.join(os.path.dirname(initramfs), a) for a in boot.archives()]
    for a in archives:
        if not os.path.exists(a):
            raise FileNotFoundError("%s is missing: run 'make initramfs' first" % a)
    initrd = qemu.boot_initrd(initramfs, {"plan": boot.plan_text().encode()},
                              os.path.join(workdir, "initrd-%s.gz" % boot.name), archives)
    append = " ".join(x for x in (boot.cmdline(), extra_append) if x)
    br = BootRun(boot, scale, on_outcome)
    log = os.path.join(workdir, "console-%s.log" % boot.name)
    mondir = None
    try:
        if machine.name == "bochs-intel":
            cmd = bochs.prepare(kernel, initrd, append, workdir, boot.name)
            events = bochs.console(cmd, br.deadline)
            what = "Bochs"
        else:
            qlog = os.path.join(workdir, "qemu-%s.log" % boot.name)
            if os.path.exists(qlog):
                os.unlink(qlog)
            emu = EMULATORS[boot.emulator]
            binary = os.path.join(os.path.dirname(initramfs), emu.binary) if emu.target \
                else emu.binary
            what = qemu.version(binary)
            # The monitor's socket: short (a unix socket's path is at most
            # 107 bytes) and under /tmp, which the QEMU 10 root shares.
            mondir = tempfile.mkdtemp(prefix="kvmtest-")
            monitor = os.path.join(mondir, "monitor")
            hang = os.path.join(workdir, "stopped-%s.txt" % boot.name)
            if os.path.exists(hang):
                os.unlink(hang)
            system_map = os.path.join(os.path.dirname(kernel), "System.map")

            def on_deadline():
                return "%s (%s)" % (qemu.hang_state(monitor, hang, system_map),
                                    os.path.relpath(hang))
            requests = []

            def on_request():
                # A guest's hang report asked: the state of a live VM.
                requests.append(os.path.join(workdir, "state-%s-%d.txt" % (
                    boot.name, len(requests) + 1)))
                return qemu.hang_state(monitor, requests[-1], system_map, resume=True)
            cmd = qemu.command(kernel, initrd, append, mem=mem or qemu.MEM, qlog=qlog,
                               binary=binary, monitor=monitor) + qemu.extra_args()
            events = qemu.console(cmd, br.deadline, qlog=qlog, on_deadline=on_deadline,
                                  monitor=monitor, on_request=on_request)
        r = run(boot, events, br, log=log, echo=echo, note=what + ": " + " ".join(cmd))
        r.emulator = what
        return r
    finally:
        os.unlink(initrd)
        bochs.cleanup(workdir, boot.name)
        if mondir:
            shutil.rmtree(mondir, ignore_errors=True)


def replay(boot: Boot, path: str, scale: int = 1) -> BootResult:
    """A recorded console through the same rules (the harness's tests)."""
    br = BootRun(boot, scale)
    return run(boot, qemu.replay(path), br)
