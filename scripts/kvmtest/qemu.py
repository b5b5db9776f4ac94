"""The test VM: QEMU's command line, the initrd of one boot, and the serial
console as a generator of lines under deadlines.

The console log of a boot (build/out/results/console-BOOT.log) holds
every console line as it came, and the host's own notes on lines that
start with "%% "; replay() reads such a log back as the same events, so
a recorded console is a test fixture (scripts/kvmtest/tests/data/).
"""
import gzip
import os
import select
import shlex
import shutil
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
            binary: str = QEMU) -> List[str]:
    """qlog: QEMU's own log of CPU resets and guest errors, so that a
    guest that ends without a word (a triple fault of the test VM's
    kernel) says why (end_detail()).  binary: the emulator
    (matrix.EMULATORS)."""
    return [binary, "-accel", "tcg", "-cpu", cpu, "-m", mem, "-smp", smp,
            "-nographic", "-no-reboot", "-monitor", "none", "-serial", "stdio",
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


def console(cmd: List[str], deadline: Callable[[], float],
            poll: float = 1.0, qlog: Optional[str] = None) -> Iterator[Event]:
    """Run QEMU; yield its console line by line.  deadline() is asked
    again after every line: past it, QEMU is killed (a hung guest stops
    its own timers, so every timeout is enforced from here too)."""
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    buf = b""
    try:
        while True:
            if time.monotonic() > deadline():
                proc.kill()
                proc.wait()
                if buf:
                    yield Line(buf.decode("utf-8", "replace"), time.monotonic())
                yield End("deadline", None, time.monotonic())
                return
            r, _, _ = select.select([proc.stdout], [], [], poll)
            if not r:
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                yield Line(raw.decode("utf-8", "replace").rstrip("\r"), time.monotonic())
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
