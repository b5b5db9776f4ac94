"""The test VM: QEMU's command line, the initrd of one boot, and the serial
console as a generator of lines under deadlines.

The console log of a boot (build/out/results/console-BOOT.log) holds
every console line as it came, and the host's own notes on lines that
start with "%% "; replay() reads such a log back as the same events, so
a recorded console is a test fixture (scripts/kvmtest/tests/data/).
"""
import bisect
import gzip
import os
import re
import select
import shlex
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Union

# The test machine (README, "The test machine"; test-vm-notes.md).
QEMU = "qemu-system-x86_64"
CPU = "EPYC,+svm,+npt"
MEM = "4G"
SMP = "2"
# panic=-1 reboots at once on a panic, and -no-reboot turns that into
# QEMU's exit.
APPEND = "console=ttyS0 panic=-1 oops=panic softlockup_panic=0 loglevel=6"
HOST_NOTE = "%% "


@dataclass
class Line:
    text: str
    t: float


@dataclass
class End:
    why: str            # "exit" (QEMU exited) or "deadline" (the host killed it)
    rc: Optional[int]
    t: float
    detail: str = ""    # what QEMU's own log says of the end ("Triple fault")


Event = Union[Line, End]


def command(kernel: str, initrd: str, append: str, cpu: str = CPU,
            mem: str = MEM, smp: str = SMP, qlog: Optional[str] = None,
            binary: str = QEMU, monitor: Optional[str] = None) -> List[str]:
    """qlog: QEMU's own log of CPU resets and guest errors, so that a
    guest that ends without a word (a triple fault of the test VM's
    kernel) says why (end_detail()).  binary: the emulator
    (matrix.EMULATORS).  monitor: a unix socket for QEMU's monitor, which
    console() reads a hung test VM's CPUs through (hang_state())."""
    # With a monitor, a reset (a triple fault, or the guest's own reboot at
    # the end of its plan) stops the VM instead of ending QEMU
    # (-no-reboot -no-shutdown), so that console() can read a triple
    # fault's state before it ends QEMU.
    mon = ["-monitor", "unix:%s,server=on,wait=off" % monitor, "-no-shutdown"] \
        if monitor else ["-monitor", "none"]
    return [binary, "-accel", "tcg", "-cpu", cpu, "-m", mem, "-smp", smp,
            "-nographic", "-no-reboot"] + mon + ["-serial", "stdio",
            "-nodefaults", "-kernel", kernel, "-initrd", initrd,
            "-append", (APPEND + " " + append).strip()] + (
                ["-d", "cpu_reset,guest_errors", "-D", qlog] if qlog else [])


def extra_args(env=os.environ) -> List[str]:
    """KVMTEST_QEMU_ARGS: more of QEMU's options, for an investigation
    (e.g. "-no-shutdown -monitor unix:/tmp/mon,server=on,wait=off": a
    test VM that triple-faults stops, its state there for "info
    registers -a"); every boot's console log records the command line."""
    return shlex.split(env.get("KVMTEST_QEMU_ARGS", ""))


def version(binary: str = QEMU) -> str:
    """The first line of "BINARY --version": "QEMU emulator version 7.2.x
    (Debian 1:7.2+dfsg-7+deb12u...)"."""
    p = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=60)
    lines = p.stdout.splitlines()
    if p.returncode or not lines:
        raise RuntimeError("%s --version failed (%d): %s" % (binary, p.returncode,
                                                             p.stderr.strip()))
    return lines[0].strip()


def end_detail(qlog: Optional[str]) -> str:
    """The reset reasons in QEMU's log (TCG logs "Triple fault" before it
    resets, or with -no-reboot exits)."""
    if not qlog or not os.path.exists(qlog):
        return ""
    with open(qlog, errors="replace") as f:
        found = [l.strip() for l in f if "triple fault" in l.lower()]
    return "QEMU's log: %s" % found[-1] if found else ""


def _symbols(system_map: Optional[str]):
    """The kernel's text symbols from its System.map: (addresses, names)."""
    addrs, names = [], []
    if system_map and os.path.exists(system_map):
        with open(system_map) as f:
            for line in f:
                a, kind, name = (line.split() + ["", ""])[:3]
                if kind in ("t", "T"):
                    addrs.append(int(a, 16))
                    names.append(name)
    order = sorted(range(len(addrs)), key=addrs.__getitem__)
    return [addrs[i] for i in order], [names[i] for i in order]


def _symbolize(syms, v: int) -> Optional[str]:
    addrs, names = syms
    if not addrs or not addrs[0] <= v < addrs[-1]:
        return None
    i = bisect.bisect_right(addrs, v) - 1
    return "%s+0x%x" % (names[i], v - addrs[i])


class _Monitor:
    """QEMU's human monitor on a unix socket."""

    def __init__(self, path: str, timeout: float = 10.0):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.read()

    def read(self) -> str:
        buf = b""
        while not buf.endswith(b"(qemu) "):
            d = self.s.recv(1 << 20)
            if not d:
                break
            buf += d
        text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", buf.decode("utf-8", "replace"))
        return text.replace("\r", "")

    def cmd(self, c: str) -> str:
        self.s.sendall(c.encode() + b"\n")
        out = self.read()
        # The echo of the command first, the prompt last.
        return "\n".join(out.splitlines()[1:-1] if "\n" in out else [])


def stopped(monitor: str) -> bool:
    """Whether the VM behind the monitor has stopped (a reset under
    -no-reboot -no-shutdown)."""
    try:
        m = _Monitor(monitor, timeout=5.0)
        try:
            status = m.cmd("info status")
            return "paused" in status or "shutdown" in status
        finally:
            m.s.close()
    except OSError:
        return False


# A line the guest prints to have the host record every CPU's state
# while the VM goes on (migrate.py's hang report, issue 26).
STATE_REQUEST = "kvmtest: host, record the CPUs' state"


def hang_state(monitor: str, dest: str, system_map: Optional[str] = None,
               stack_bytes: int = 16384, resume: bool = False) -> str:
    """A test VM that missed its deadline, read through its monitor before
    it is killed: every CPU's registers, the instructions at its RIP, its
    local APIC and its kernel stack up to the top of the THREAD_SIZE
    (16 KiB) stack, each word that is a kernel text address symbolized (a guessed
    backtrace, newest first), into dest.  Returns one line: each CPU's
    RIP, symbolized.  resume: let the VM go on afterwards."""
    syms = _symbols(system_map)
    m = _Monitor(monitor)
    m.cmd("stop")
    out_status = m.cmd("info status")
    regs = m.cmd("info registers -a")
    out = ["=== " + out_status, "=== info registers -a", regs]
    summary = []
    for block in regs.split("CPU#")[1:]:
        n, ip, sp = (re.search(r, block) for r in (r"^\s*(\d+)", r"[RE]IP=([0-9a-f]+)",
                                                     r"[RE]SP=([0-9a-f]+)"))
        if not (n and ip and sp):
            summary.append("a CPU the monitor gave no RIP and RSP for")
            continue
        cpu, rip, rsp = int(n.group(1)), int(ip.group(1), 16), int(sp.group(1), 16)
        cr2 = re.search(r"CR2=([0-9a-f]+)", block)
        where = _symbolize(syms, rip) or "0x%x" % rip
        summary.append("CPU %d at %s" % (cpu, where))
        m.cmd("cpu %d" % cpu)
        out += ["=== CPU %d: RIP %s, CR2 %s" % (cpu, where, cr2.group(1) if cr2 else "?"),
                m.cmd("x/16i 0x%x" % rip),
                # Interrupts requested but not taken (IRR) show a CPU
                # that no longer accepts them.
                "=== CPU %d: info lapic" % cpu, m.cmd("info lapic")]
        top = (rsp | (stack_bytes - 1)) + 1
        words = min((top - rsp) // 8, stack_bytes // 8)
        trace = []
        for line in m.cmd("x/%dgx 0x%x" % (words, rsp)).splitlines():
            addr, _, vals = line.partition(":")
            for k, v in enumerate(vals.split()):
                sym = _symbolize(syms, int(v, 16)) if re.match(r"^0x[0-9a-f]+$", v) else None
                if sym:
                    trace.append("  [%s+%d] %s" % (addr.strip(), 8 * k, sym))
        out += ["=== CPU %d: kernel text addresses on its stack (RSP 0x%x, newest first)"
                % (cpu, rsp)] + trace
    if resume:
        m.cmd("cont")
    with open(dest, "w") as f:
        f.write("\n".join(out) + "\n")
    return "; ".join(summary)


def newc(files: Dict[str, bytes]) -> bytes:
    """A cpio archive in the kernel's initramfs format (newc)."""
    out = bytearray()

    def entry(name, data, mode, ino):
        nb = name.encode() + b"\0"
        hdr = "070701" + "".join("%08X" % v for v in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nb), 0))
        out.extend(hdr.encode() + nb)
        out.extend(b"\0" * (-len(out) % 4))
        out.extend(data)
        out.extend(b"\0" * (-len(out) % 4))
    for i, (name, data) in enumerate(sorted(files.items()), 1):
        entry(name, data, 0o100644, i)
    entry("TRAILER!!!", b"", 0, 0)
    return bytes(out)


def boot_initrd(base: str, files: Dict[str, bytes], dest: str,
                archives: List[str] = ()) -> str:
    """The common initramfs, the archives this boot needs and this boot's
    files appended: the kernel unpacks concatenated archives in order,
    later files winning."""
    with open(dest, "wb") as out:
        for a in [base] + list(archives):
            with open(a, "rb") as f:
                shutil.copyfileobj(f, out)
        out.write(gzip.compress(newc(files), 6))
    return dest


def _read_state(on_deadline: Optional[Callable[[], str]]) -> str:
    """on_deadline()'s account of a stopped or hung VM, or why there is none."""
    if not on_deadline:
        return ""
    try:
        return on_deadline()
    except (OSError, ValueError, AttributeError) as e:
        return "the monitor did not answer: %s" % e


def console(cmd: List[str], deadline: Callable[[], float],
            poll: float = 1.0, qlog: Optional[str] = None,
            on_deadline: Optional[Callable[[], str]] = None,
            monitor: Optional[str] = None,
            on_request: Optional[Callable[[], str]] = None) -> Iterator[Event]:
    """Run QEMU; yield its console line by line.  deadline() is asked
    again after every line: past it, QEMU is killed (a hung guest stops
    its own timers, so every timeout is enforced from here too), after
    on_deadline() has read what it can of the hung VM (hang_state()),
    whose answer is the End's detail.  monitor: the VM's monitor when
    command() gave it one; a VM that stopped there (a reset) ends QEMU,
    after on_deadline() has read it if QEMU's log says it was a triple
    fault.  on_request: called when the guest prints STATE_REQUEST."""
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    buf = b""
    try:
        while True:
            if time.monotonic() > deadline():
                detail = _read_state(on_deadline) if proc.poll() is None else ""
                proc.kill()
                proc.wait()
                if buf:
                    yield Line(buf.decode("utf-8", "replace"), time.monotonic())
                yield End("deadline", None, time.monotonic(), detail)
                return
            r, _, _ = select.select([proc.stdout], [], [], poll)
            if not r:
                if monitor and proc.poll() is None and stopped(monitor):
                    detail = end_detail(qlog)
                    state = _read_state(on_deadline) if detail else ""
                    if state:
                        detail += "; stopped: " + state
                    proc.kill()
                    proc.wait()
                    if buf:
                        yield Line(buf.decode("utf-8", "replace").rstrip("\r"), time.monotonic())
                    yield End("exit", 0, time.monotonic(), detail)
                    return
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                text = raw.decode("utf-8", "replace").rstrip("\r")
                if on_request and STATE_REQUEST in text:
                    _read_state(on_request)
                yield Line(text, time.monotonic())
        if buf:
            yield Line(buf.decode("utf-8", "replace").rstrip("\r"), time.monotonic())
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        yield End("exit", rc, time.monotonic(), end_detail(qlog))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def replay(path: str) -> Iterator[Event]:
    """A recorded console log as the events console() yielded."""
    with open(path, errors="replace") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if line.startswith(HOST_NOTE):
                note = line[len(HOST_NOTE):].split()
                if note[:1] == ["deadline"]:
                    yield End("deadline", None, 0.0)
                    return
                if note[:1] == ["exit"]:
                    yield End("exit", int(note[1]) if len(note) > 1 and
                              note[1].lstrip("-").isdigit() else None, 0.0,
                              " ".join(note[2:]))
                    return
                continue
            yield Line(line, 0.0)
    yield End("exit", 0, 0.0)
