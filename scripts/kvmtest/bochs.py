"""The Intel test machine: Bochs 2.7 (Debian 12's), an x86 interpreter that
emulates VMX with EPT, EPT A/D bits and PML, which QEMU's TCG lacks.

The kernel and the boot's initrd go on an ISO made with Debian's
isolinux and xorriso; the serial console goes to a file, which
console() follows.  Debian builds Bochs with its debugger, which stops
at the first instruction: "-rc" feeds it "c" (continue), and with stdin
at end of file Bochs quits when the guest resets, so "reboot -f" (and
panic=-1) end the run as -no-reboot does for QEMU.  No display: Debian
builds no "nogui", so the rfb display waits for no client (timeout=0).
clock: sync=none makes guest time follow the instruction count
(virtual time: timings inside the guest are not wall time).

Nothing of the host but the files named in the bochsrc: no sound (with
its default drivers Bochs 2.7 opens ALSA's default PCM at start and, on a
machine without a sound card, aborts with "buffer overflow detected"
before the BIOS runs), no parallel ports, no game port.  Bochs runs with
an empty ALSA configuration, so that every machine behaves as one
without sound: a plugin that still opened ALSA would fail here too.
"""
import os
import shutil
import subprocess
import tempfile
import time
from typing import Callable, Iterator, List

from .qemu import APPEND, End, Event, Line

BOCHS = "bochs"
CPU_MODEL = "corei7_skylake_x"
MEGS = 2048
IPS = 50000000
ISOLINUX = ("/usr/lib/ISOLINUX/isolinux.bin", "/usr/lib/syslinux/modules/bios/ldlinux.c32")


def make_iso(kernel: str, initrd: str, append: str, dest: str) -> str:
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(os.path.join(d, "isolinux"))
        for f in ISOLINUX:
            shutil.copy(f, os.path.join(d, "isolinux"))
        shutil.copy(kernel, os.path.join(d, "bzImage"))
        shutil.copy(initrd, os.path.join(d, "initrd.gz"))
        with open(os.path.join(d, "isolinux", "isolinux.cfg"), "w") as f:
            f.write("default linux\nprompt 0\ntimeout 0\nlabel linux\n"
                    "  kernel /bzImage\n  append initrd=/initrd.gz %s\n" % append)
        subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-o", dest,
                        "-b", "isolinux/isolinux.bin", "-c", "isolinux/boot.cat",
                        "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table", d],
                       check=True, capture_output=True)
    return dest


def bochsrc(iso: str, serial: str, log: str, cpus: int = 1) -> str:
    return "\n".join([
        "megs: %d" % MEGS,
        "speaker: enabled=0",
        "sound: waveoutdrv=dummy, waveindrv=dummy, midioutdrv=dummy",
        "parport1: enabled=0",
        "parport2: enabled=0",
        "gameport: enabled=0",
        "cpu: model=%s, count=%d, ips=%d, reset_on_triple_fault=1" % (CPU_MODEL, cpus, IPS),
        "romimage: file=/usr/share/bochs/BIOS-bochs-latest",
        "vgaromimage: file=/usr/share/vgabios/vgabios.bin",
        "ata0-master: type=cdrom, path=%s, status=inserted" % iso,
        "boot: cdrom",
        "com1: enabled=1, mode=file, dev=%s" % serial,
        'display_library: rfb, options="timeout=0"',
        "clock: sync=none, time0=local",
        "log: %s" % log,
        "panic: action=fatal",
        "error: action=report",
        "info: action=ignore",
        "debug: action=ignore",
        ""])


def prepare(kernel: str, initrd: str, append: str, workdir: str, name: str) -> List[str]:
    """Write the ISO, bochsrc and debugger script; the command to run."""
    base = os.path.join(workdir, "bochs-%s" % name)
    iso = make_iso(kernel, initrd, (APPEND + " " + append).strip(), base + ".iso")
    with open(base + ".rc", "w") as f:
        f.write("c\n")
    with open(base + ".bochsrc", "w") as f:
        f.write(bochsrc(iso, base + ".serial", base + ".log"))
    if os.path.exists(base + ".serial"):
        os.unlink(base + ".serial")
    return [BOCHS, "-q", "-f", base + ".bochsrc", "-rc", base + ".rc"]


def cleanup(workdir: str, name: str) -> None:
    base = os.path.join(workdir, "bochs-%s" % name)
    for ext in (".iso", ".rc", ".serial"):
        if os.path.exists(base + ext):
            os.unlink(base + ext)


def console(cmd: List[str], deadline: Callable[[], float], poll: float = 0.5) -> Iterator[Event]:
    """Run Bochs; yield the serial console line by line (from the file
    it writes), under deadline() as qemu.console() does."""
    serial = cmd[cmd.index("-f") + 1].replace(".bochsrc", ".serial")
    out = open(cmd[cmd.index("-f") + 1].replace(".bochsrc", ".out"), "w")
    env = dict(os.environ, ALSA_CONFIG_PATH=os.devnull)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                            env=env)
    buf = b""
    pos = 0
    try:
        while True:
            done = proc.poll() is not None
            if os.path.exists(serial):
                with open(serial, "rb") as f:
                    f.seek(pos)
                    chunk = f.read()
                pos += len(chunk)
                buf += chunk
                while b"\n" in buf:
                    raw, buf = buf.split(b"\n", 1)
                    yield Line(raw.decode("utf-8", "replace").rstrip("\r"), time.monotonic())
            if done:
                if buf:
                    yield Line(buf.decode("utf-8", "replace").rstrip("\r"), time.monotonic())
                yield End("exit", proc.returncode, time.monotonic())
                return
            if time.monotonic() > deadline():
                proc.kill()
                proc.wait()
                yield End("deadline", None, time.monotonic())
                return
            time.sleep(poll)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        out.close()
