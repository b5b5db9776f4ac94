#!/usr/bin/python3 -IS
"""Live migration of a guest by an unmodified QEMU on this kernel's KVM.

Runs inside the test VM, from the migration archive (scripts/
mk-migrate-initramfs.sh): Debian 12's qemu-system-x86_64, its libraries
and firmware, this script and its L2 guest, payload.elf (payload.c): its
pages have different lives (a hot set always rewritten, a burst set
rewritten every other second, the rest written once more each, a slice
a second), so that a dirty page the log loses stays stale on the
destination instead of being sent again with everything else.  Each
page carries its number, generation, writer, region and epoch; the
guest keeps the generation of every page in its own record and checks
its pages against it.

  migrate ring -r N [-f]   migrate with -accel kvm,dirty-ring-size=N
                           (-f: the ring must fill during the migration,
                           KVM_EXIT_DIRTY_RING_FULL counted by the
                           kvm_dirty_ring_exit tracepoint)
  migrate bitmap           the same with the dirty bitmap (the control)
  migrate dirtyrate -r N   QEMU's per-vCPU dirty rate (calc-dirty-rate,
                           mode dirty-ring) and dirty limit
                           (set-vcpu-dirty-limit) on the ring
  migrate refused -r N     on a kernel without the ring: QEMU must refuse
                           dirty-ring-size (its own message) and its
                           dirty-ring mode

A migration: the source runs the guest until it has written all its pages
once; the destination waits with -incoming unix:... -S; the source
migrates at a capped bandwidth so that several dirty-sync rounds happen
while the guest writes, then the cap is lifted and the downtime limit
raised so that it converges.  Then both sides are stopped, their guest
RAM dumped (pmemsave) and compared page by page: any difference fails
and names the lost pages from their headers (region, writer, the
generation and epoch of the write the destination lacks).  Then the
checker is checked: one byte of the generation word of one page is
changed in the destination's guest RAM (through /proc/PID/mem at the
address QEMU's gpa2hva gives), and a new dump must differ from the
source's at exactly that page.  Then the destination runs: its guest
writes on and checks every page against its record once a second, and
must report the changed page, and no other.

--fault KIND=N (the fault-injected kernel, tests/fault/) turns on a loss
of one dirty page in N for the migration; with --expect-loss the test
passes only if it fails with the lost pages named.

Prints one line per migration, "migrate: key=value ...", that the host
harness collects into its report.  Exit 0 pass, 1 fail, 4 skip.
"""
import argparse
import json
import os
import random
import re
import socket
import subprocess
import sys
import time

QEMU = "/usr/bin/qemu-system-x86_64"
QEMU_VERSION = {}       # QEMU binary: its version, from the QMP greeting
FIRMWARE = "/usr/share/qemu"
PAYLOAD = "/usr/share/kvmtest/payload.elf"
WORK = "/tmp/migrate"
TRACING = "/sys/kernel/tracing"
PAGE = 4096
PAYLOAD_FIRST = 4 << 20     # payload.c: FIRST
PROGRESS = 0x300000         # payload.c: PROGRESS, passes of writer i at +4i
WRITES = PROGRESS + 0x40    # payload.c: pages written by writer i at +4i
SWEEPS = PROGRESS + 0x80    # payload.c: checks of all its pages by writer i
EPOCH = PROGRESS + 0xc0     # payload.c: seconds of the guest's RTC seen
VERDICT = PROGRESS + 0x100  # payload.c: mismatches, then NR_BAD records
NR_BAD = 8
REGIONS = {1: "hot", 2: "burst", 3: "once"}
FAULT_PARAM = "/sys/module/kvm/parameters/dirty_ring_fault_"
RING_UNAVAILABLE = "KVM dirty ring not available"
KSFT_SKIP = 4


class Fail(Exception):
    pass


def say(msg):
    print("%7.1f %s" % (time.monotonic() - T0, msg), flush=True)


def say_to_kernel_log(msg):
    """msg into the kernel's log, which the console prints synchronously:
    when a CPU takes no interrupts, this test's output relay and the
    serial port's interrupt-driven writes may never run."""
    try:
        # No rate limit on /dev/kmsg: the report is a hundred lines.
        with open("/proc/sys/kernel/printk_devkmsg", "w") as f:
            f.write("on\n")
    except OSError:
        pass
    try:
        with open("/dev/kmsg", "w") as k:
            for line in msg.splitlines():
                k.write("migrate: %s\n" % line[:900])
                k.flush()
    except OSError:
        pass


T0 = time.monotonic()


class QmpError(Exception):
    def __init__(self, cmd, err):
        super().__init__("%s: %s: %s" % (cmd, err.get("class"), err.get("desc")))
        self.desc = err.get("desc", "")


# Seconds a QMP command may take to answer.  QEMU answers every command
# these tests send at once (calc-dirty-rate and migrate start jobs that
# are polled); a command that does not answer in time fails the test
# with what shows where QEMU hangs (hang_report), in seconds, where it
# used to hang until the harness killed the whole test.
QMP_DEADLINE = 30
# hang_report(): how long it watches the interrupt counts and waits for
# the host to record the CPUs' state, and where it asks for that.
REPORT_SECS = 2.0
# /dev/kmsg: printed by the kernel's console code, which needs no
# interrupt (see say_to_kernel_log()).
CONSOLE = "/dev/kmsg"


def _read_text(path, limit=4000):
    try:
        with open(path, errors="replace") as f:
            return f.read(limit).strip()
    except OSError as e:
        return "(%s)" % (e.strerror or e)


def interrupt_counts(secs):
    """Each CPU's local timer, rescheduling and function call interrupts
    (/proc/interrupts LOC, RES, CAL), read twice secs apart."""
    def read():
        counts = {}
        for line in _read_text("/proc/interrupts").splitlines():
            f = line.split()
            if f and f[0] in ("LOC:", "RES:", "CAL:"):
                counts[f[0][:-1]] = [int(x) for x in f[1:] if x.isdigit()]
        return counts
    a = read()
    time.sleep(secs)
    b = read()
    return ["interrupts taken per CPU in %g s: " % secs + "; ".join(
        "%s %s" % (k, " ".join("cpu%d +%d" % (i, y - x) for i, (x, y) in enumerate(zip(a[k], b[k]))))
        for k in sorted(a) if k in b)]


def hang_report(pid):
    """Where process pid is: every thread's name, state, wchan and
    kernel stack, the last KVM trace events, and KVM's per-vCPU
    dropped-page counts.  (With --trace, main() adds the last KVM events
    to any failure.)"""
    out = ["threads of pid %d:" % pid]
    task = "/proc/%d/task" % pid
    try:
        tids = sorted(os.listdir(task), key=int)
    except OSError as e:
        tids = []
        out.append("  (%s)" % e)
    for tid in tids:
        d = os.path.join(task, tid)
        stat = _read_text(os.path.join(d, "stat"))
        # After the command name: state is field 3, the CPU it last ran
        # on field 39.
        fields = stat.rsplit(")", 1)[-1].split() if ")" in stat else []
        out.append("  %s %s state %s cpu %s wchan %s" % (
            tid, _read_text(os.path.join(d, "comm")), fields[0] if fields else "?",
            fields[36] if len(fields) > 36 else "?",
            _read_text(os.path.join(d, "wchan")) or "-"))
        for line in _read_text(os.path.join(d, "stack")).splitlines()[:12]:
            out.append("      " + line)
    # The ring's recent life: the last events of the kvm_dirty_ring_*
    # tracepoints dirtyrate() keeps enabled (push: entry index and the
    # reset index, so the entries in use; reset; ring-full exits).
    try:
        with open(os.path.join(TRACING, "trace"), errors="replace") as f:
            events = [l.rstrip() for l in f if not l.startswith("#")]
    except OSError as e:
        events = ["(%s)" % e]
    out.append("last %d of %d KVM trace events:" % (min(60, len(events)), len(events)))
    out += ["  " + l for l in events[-60:]]
    # A CPU that no longer takes interrupts (a thread woken onto it never
    # runs): its counts stand still while the others' go on.
    out += interrupt_counts(REPORT_SECS)
    # The host's monitor then records each CPU's registers and local APIC
    # (build/out/results/state-BOOT-N.txt) while the VM goes on.
    try:
        with open(CONSOLE, "w") as con:
            con.write("kvmtest: host, record the CPUs' state\n")
            con.flush()
        time.sleep(REPORT_SECS)
        out.append("asked the host to record the CPUs' state (kvmtest: state-BOOT-N.txt "
                   "in its results)")
    except OSError as e:
        out.append("(no request to the host: %s)" % e)
    kvm = "/sys/kernel/debug/kvm"
    try:
        vms = sorted(v for v in os.listdir(kvm) if v.startswith("%d-" % pid))
    except OSError:
        vms = []
    for vm in vms:
        for v in sorted(os.listdir(os.path.join(kvm, vm))):
            f = os.path.join(kvm, vm, v, "dirty_ring_dropped")
            if v.startswith("vcpu") and os.path.exists(f):
                out.append("%s/%s: dirty_ring_dropped %s" % (vm, v, _read_text(f)))
    return "\n".join(out)


class Qmp:
    """QMP over a unix socket: one command at a time, events set aside."""

    def __init__(self, path, proc, timeout=60):
        self.proc = proc
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise Fail("QEMU exited (%d) before its QMP socket came up" % proc.returncode)
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise Fail("no QMP socket at %s after %d s" % (path, timeout))
                time.sleep(0.2)
        self.file = self.sock.makefile("rb")
        self.events = []
        self.greeting = self._read()
        self.cmd("qmp_capabilities")

    def _read(self):
        line = self.file.readline()
        if not line:
            raise Fail("QMP connection closed")
        return json.loads(line)

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        deadline = time.monotonic() + QMP_DEADLINE
        while True:
            self.sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                r = self._read()
            except socket.timeout:
                report = hang_report(self.proc.pid)
                # Printed now: the cleanup that follows (tracepoints off,
                # QEMU killed) can itself hang on a machine in this state.
                say_to_kernel_log("QMP %s: no answer in %d s, where QEMU is:\n%s" % (
                    name, QMP_DEADLINE, report))
                raise Fail("QMP %s: no answer in %d s\n%s" % (name, QMP_DEADLINE, report))
            finally:
                self.sock.settimeout(None)
            if "return" in r:
                return r["return"]
            if "error" in r:
                raise QmpError(name, r["error"])
            self.events.append(r)

    def hmp(self, line):
        return self.cmd("human-monitor-command", **{"command-line": line})

    def close(self):
        self.sock.close()


class Vm:
    """One QEMU: the payload as an L2 guest on /dev/kvm."""

    def __init__(self, name, accel, mem_mb, smp, incoming=None, append=None):
        self.name = name
        self.smp = smp
        self.mem = mem_mb << 20
        self.serial = os.path.join(WORK, name + ".serial")
        self.stderr_path = os.path.join(WORK, name + ".stderr")
        qmp = os.path.join(WORK, name + ".qmp")
        for f in (self.serial, qmp):
            if os.path.exists(f):
                os.unlink(f)
        argv = [QEMU, "-nodefaults", "-no-user-config", "-machine", "pc",
                "-accel", accel, "-cpu", "qemu64", "-m", "%dM" % mem_mb,
                "-smp", str(smp), "-display", "none", "-L", FIRMWARE,
                "-serial", "file:" + self.serial, "-kernel", PAYLOAD,
                "-qmp", "unix:%s,server=on,wait=off" % qmp,
                # Named threads ("CPU 0/KVM", "dirtyrate-stat", ...) for
                # hang_report().
                "-name", "%s,debug-threads=on" % name]
        if append:
            argv += ["-append", append]
        if incoming:
            argv += ["-incoming", incoming, "-S"]
        say("%s: %s" % (name, " ".join(argv[1:])))
        self.err = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=self.err, stderr=self.err)
        self.qmp = Qmp(qmp, self.proc)
        v = self.qmp.cmd("query-version")
        QEMU_VERSION[QEMU] = "%s/%s" % (
            ".".join(str(v.get("qemu", {}).get(k, "?")) for k in ("major", "minor", "micro")),
            v.get("package", "").replace(" ", "_"))

    def stderr(self):
        with open(self.stderr_path) as f:
            return f.read().strip()

    def console(self):
        try:
            with open(self.serial, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def status(self):
        return self.qmp.cmd("query-status")["status"]

    def read_u32(self, gpa):
        out = self.qmp.hmp("xp /1wx 0x%x" % gpa)
        m = re.search(r":\s*0x([0-9a-f]+)", out)
        if not m:
            raise Fail("%s: cannot read guest memory at 0x%x: %r" % (self.name, gpa, out))
        return int(m.group(1), 16)

    def wait_serial(self, text, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Fail("%s: QEMU exited (%d): %s" % (self.name, self.proc.returncode,
                                                          self.stderr()))
            try:
                with open(self.serial, errors="replace") as f:
                    if text in f.read():
                        return
            except FileNotFoundError:
                pass
            time.sleep(0.5)
        raise Fail("%s: the guest did not print %r in %d s" % (self.name, text, timeout))

    def passes(self):
        """The pass number of each of the payload's writers (one per vCPU)."""
        return self.counters(PROGRESS)

    def counters(self, base):
        """One of the payload's per-writer counters (PROGRESS, WRITES, SWEEPS)."""
        return [self.read_u32(base + 4 * i) for i in range(self.smp)]

    def verdict(self):
        """What the guest's own checks found: (number of mismatches, the
        first NR_BAD of them as (page, generation wanted, generation
        found, the page's word 0))."""
        n = self.read_u32(VERDICT)
        bad = []
        for k in range(min(n, NR_BAD)):
            bad.append(tuple(self.read_u32(VERDICT + 4 + 16 * k + 4 * w) for w in range(4)))
        return n, bad

    def wait_passes(self, n, timeout):
        """Until every writer of the payload has completed n passes over
        its share of the memory."""
        deadline = time.monotonic() + timeout
        while True:
            p = self.passes()
            if min(p) >= n:
                return p
            if time.monotonic() > deadline:
                raise Fail("%s: the guest's writers completed %s passes in %d s, expected %d" % (
                    self.name, p, timeout, n))
            time.sleep(0.5)

    def dump(self, path):
        self.qmp.cmd("pmemsave", val=0, size=self.mem, filename=path)
        if os.path.getsize(path) != self.mem:
            raise Fail("%s: pmemsave wrote %d bytes, expected %d" % (
                self.name, os.path.getsize(path), self.mem))

    def quit(self):
        if self.proc.poll() is None:
            try:
                self.qmp.cmd("quit")
            except (Fail, OSError, QmpError):
                pass
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.err.close()


def differences(a_path, b_path, limit=NR_BAD):
    """(the numbers of the differing pages, the first limit of them as
    (page, bytes of a, bytes of b))."""
    if os.path.getsize(a_path) != os.path.getsize(b_path):
        raise Fail("dumps differ in size: %s %d, %s %d" % (
            a_path, os.path.getsize(a_path), b_path, os.path.getsize(b_path)))
    pages, first = [], []
    with open(a_path, "rb") as a, open(b_path, "rb") as b:
        page = 0
        while True:
            x, y = a.read(PAGE), b.read(PAGE)
            if not x:
                return pages, first
            if x != y:
                pages.append(page)
                if len(first) < limit:
                    first.append((page, x, y))
            page += 1


def page_header(data):
    """The payload's header of a page: (page word, generation, writer,
    region, epoch), or None when the page is not one of the payload's."""
    w0, gen, tag, check = (int.from_bytes(data[4 * k:4 * k + 4], "little") for k in range(4))
    if check != (~(w0 ^ gen)) & 0xffffffff:
        return None
    return w0, gen, tag >> 24, REGIONS.get((tag >> 16) & 0xff, "?"), tag & 0xffff


def lost_page(page, x, y):
    """One differing page, as the payload's headers tell it."""
    hs, hd = page_header(x), page_header(y)
    if hs and hs[0] == page:
        what = ("page %d (%s, writer %d): the source's generation %d, written in epoch %d"
                % (page, hs[3], hs[2], hs[1], hs[4]))
        if hd and hd[0] == page:
            what += ", is generation %d (epoch %d) on the destination" % (hd[1], hd[4])
        else:
            what += ", is not on the destination: %s" % describe(page, x, y)
        return what
    return describe(page, x, y)


def describe(page, x, y):
    off = next(i for i in range(len(x)) if x[i] != y[i])
    lo = off & ~15
    return ("page %d (guest physical 0x%x) first differs at byte 0x%x: "
            "source %s, destination %s" % (page, page * PAGE, off,
                                           x[lo:lo + 16].hex(" "), y[lo:lo + 16].hex(" ")))


def hva_of(vm, gpa):
    out = vm.qmp.hmp("gpa2hva 0x%x" % gpa)
    m = re.search(r"is (0x[0-9a-f]+)", out)
    if not m:
        raise Fail("gpa2hva 0x%x: %r" % (gpa, out))
    return int(m.group(1), 16)


def payload_pages(dump):
    """The pages of a dump that carry the payload's header."""
    pages = []
    with open(dump, "rb") as f:
        f.seek(PAYLOAD_FIRST)
        page = PAYLOAD_FIRST // PAGE
        while True:
            x = f.read(PAGE)
            if not x:
                return pages
            h = page_header(x)
            if h and h[0] == page:
                pages.append(page)
            page += 1


def check_the_checker(src_dump, dst):
    """Change one byte of the generation word of a random payload page in
    the destination's guest RAM; a new dump must differ from the source's
    at exactly that page.  Returns the page: once the destination runs,
    its guest must find it too."""
    page = random.choice(payload_pages(src_dump))
    gpa = page * PAGE + 4 + random.randrange(4)
    hva = hva_of(dst, gpa)
    with open("/proc/%d/mem" % dst.proc.pid, "r+b", buffering=0) as m:
        m.seek(hva)
        old = m.read(1)
        m.seek(hva)
        m.write(bytes([old[0] ^ 0x5a]))
    bad = os.path.join(WORK, "dst-corrupted.mem")
    dst.dump(bad)
    pages, first = differences(src_dump, bad, limit=1)
    os.unlink(bad)
    if pages != [page]:
        raise Fail("the checker should have found the byte changed at guest physical 0x%x, "
                   "in page %d only; it found pages %s" % (gpa, page, pages[:20]))
    say("checker: one byte changed at 0x%x on the destination is caught: %s" % (
        gpa, describe(*first[0])))
    return page


class Tracepoint:
    """Counts one of KVM's trace events over a span."""

    def __init__(self, event):
        self.dir = os.path.join(TRACING, "events", "kvm", event)
        self.event = event
        self.ok = os.path.isdir(self.dir)

    def _w(self, path, text):
        with open(os.path.join(TRACING, path), "w") as f:
            f.write(text)

    def enable(self):
        if not self.ok:
            raise Fail("no trace event kvm:%s" % self.event)
        self._w("events/kvm/%s/enable" % self.event, "1")

    def disable(self):
        if self.ok:
            self._w("events/kvm/%s/enable" % self.event, "0")

    def start(self):
        if self.ok:
            self._w("events/kvm/%s/enable" % self.event, "1")
            self._w("trace", "")

    def stop(self):
        if not self.ok:
            return None
        self._w("events/kvm/%s/enable" % self.event, "0")
        n = 0
        with open(os.path.join(TRACING, "trace"), errors="replace") as f:
            for line in f:
                if not line.startswith("#") and (self.event + ":") in line:
                    n += 1
        return n


def mmu_label():
    def p(mod, name):
        try:
            with open("/sys/module/%s/parameters/%s" % (mod, name)) as f:
                return f.read().strip()
        except OSError:
            return None
    tdp_mmu = p("kvm", "tdp_mmu")
    npt = p("kvm_amd", "npt") if os.path.isdir("/sys/module/kvm_amd") else p("kvm_intel", "ept")
    if npt not in ("Y", "1"):
        return "shadow"
    return "tdp" if tdp_mmu in ("Y", "1") else "npt"


def setup():
    os.makedirs(WORK, exist_ok=True)
    if not os.path.exists(TRACING + "/events"):
        subprocess.run(["mount", "-t", "tracefs", "tracefs", TRACING], check=False)
    if not os.path.exists("/dev/kvm"):
        print("no /dev/kvm")
        sys.exit(KSFT_SKIP)


def accel_of(ring):
    return "kvm,dirty-ring-size=%d" % ring if ring else "kvm"


def ring_in_use(vm):
    """QEMU's view: the warning it prints when KVM lacks the ring."""
    err = vm.stderr()
    if RING_UNAVAILABLE in err:
        raise Fail("QEMU did not get the dirty ring: %s" % err)


def set_fault(a, on):
    """The fault-injected kernel's knob (tests/fault/): --fault KIND=N
    makes KVM lose one dirty page in N that way; 0 turns it off."""
    if not a.fault:
        return
    kind, _, n = a.fault.partition("=")
    path = FAULT_PARAM + kind
    if not os.path.exists(path):
        raise Fail("--fault %s: no %s: not the fault-injected kernel" % (a.fault, path))
    with open(path, "w") as f:
        f.write(n if on else "0")


FAULT_LINE = re.compile(r"kvm: dirty ring fault: (.*) gfn 0x([0-9a-f]+)")


def kernel_faults(since=-1):
    """The gfns the fault-injected kernel says it lost (tests/fault/),
    from the kernel's log records after sequence number since: ({gfn:
    what}, the last record's sequence number)."""
    out, last = {}, since
    try:
        fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return out, last
    try:
        while True:
            try:
                rec = os.read(fd, 8192).decode(errors="replace")
            except BlockingIOError:
                break
            except OSError:     # EPIPE: a record overwritten while read
                continue
            seq = int(rec.split(",", 2)[1])
            last = max(last, seq)
            m = FAULT_LINE.search(rec)
            if m and seq > since:
                out[int(m.group(2), 16)] = m.group(1)
    finally:
        os.close(fd)
    return out, last


def faults_seen(a, lost):
    """With --fault: the lost pages against the gfns the kernel lost
    during this test.  A lost page the kernel did not fault on would be a
    real loss."""
    if not a.fault:
        return ""
    faulted, _ = kernel_faults(a.kmsg_seq)
    unexplained = [p for p in lost if p not in faulted]
    return ("; the kernel lost %d gfns; of the %d pages lost, %d are among them, %s" % (
        len(faulted), len(lost), len(lost) - len(unexplained),
        "unexplained: %s" % unexplained[:20] if unexplained else "none unexplained"))


def resume_destination(dst, a):
    """Let the migrated guest run: it goes on writing and checks every
    page against its own record once an epoch.  Waits until every writer
    has completed two more sweeps and the epoch has advanced by three,
    then returns the guest's verdict and what it did."""
    sweeps0, epoch0 = dst.counters(SWEEPS), dst.read_u32(EPOCH)
    writes0 = sum(dst.counters(WRITES))
    dst.qmp.cmd("cont")
    deadline = time.monotonic() + a.timeout
    while True:
        time.sleep(0.5)
        sweeps, epoch = dst.counters(SWEEPS), dst.read_u32(EPOCH)
        if epoch >= epoch0 + 3 and all(b >= a0 + 2 for a0, b in zip(sweeps0, sweeps)):
            break
        if time.monotonic() > deadline:
            raise Fail("the destination's guest made no progress: epoch %d -> %d, sweeps %s -> %s "
                       "in %d s (status %s)" % (epoch0, epoch, sweeps0, sweeps, a.timeout,
                                                dst.status()))
    writes = sum(dst.counters(WRITES)) - writes0
    n, bad = dst.verdict()
    say("destination resumed: epoch %d -> %d, sweeps %s -> %s, %d pages written; its guest "
        "found %d mismatches %s" % (epoch0, epoch, sweeps0, sweeps, writes, n,
                                    ["page %d want gen %d have %d" % b[:3] for b in bad]))
    return n, bad, writes


def migrate(a):
    mode = "ring-%d" % a.ring if a.ring else "bitmap"
    full = Tracepoint("kvm_dirty_ring_exit")
    resets = Tracepoint("kvm_dirty_ring_reset")
    src = dst = None
    try:
        _, a.kmsg_seq = kernel_faults()
        set_fault(a, True)
        src = Vm("src", accel_of(a.ring), a.mem, a.smp)
        if a.ring:
            ring_in_use(src)
        src.wait_serial("writing", 60)
        src.wait_passes(1, a.timeout)
        dst = Vm("dst", accel_of(a.ring), a.mem, a.smp,
                 incoming="unix:" + os.path.join(WORK, "mig.sock"))
        src.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": a.bandwidth << 20,
                                                 "downtime-limit": 50})
        if a.dirty_limit:
            src.qmp.cmd("migrate-set-capabilities", capabilities=[
                {"capability": "dirty-limit", "state": True}])
            src.qmp.cmd("migrate-set-parameters", **{"vcpu-dirty-limit": a.dirty_limit})
        throttle = {"dirty-limit-throttle-time-per-round": 0, "dirty-limit-ring-full-time": 0}
        limit_seen = None
        full.start()
        resets.start()
        pass0, writes0, epoch0 = src.passes(), sum(src.counters(WRITES)), src.read_u32(EPOCH)
        t0 = time.monotonic()
        src.qmp.cmd("migrate", uri="unix:" + os.path.join(WORK, "mig.sock"))
        lifted = False
        info = {}
        # Pages sent by each dirty sync, sampled every 0.2 s: {sync count:
        # pages sent when it was first seen}; the rounds between two samples
        # count as one, and the last entry holds the rounds after the last
        # sample, stop-and-copy included.
        sent_at = {}
        while True:
            info = src.qmp.cmd("query-migrate")
            st = info.get("status")
            ram = info.get("ram", {})
            sync = ram.get("dirty-sync-count", 0)
            if st == "completed":
                break
            if sync and sync not in sent_at:
                sent_at[sync] = ram.get("normal", 0) + ram.get("duplicate", 0)
            if st in ("failed", "cancelled"):
                raise Fail("migration %s: %s" % (st, info.get("error-desc", "")))
            if time.monotonic() - t0 > a.timeout:
                if a.dirty_limit and not limit_seen:
                    raise Fail("the dirty-limit throttle did not engage in %d s (%d rounds): %s"
                               % (a.timeout, sync, info))
                raise Fail("migration not completed in %d s: %s" % (a.timeout, info))
            for k in throttle:
                throttle[k] = max(throttle[k], info.get(k, 0))
            if a.dirty_limit and throttle["dirty-limit-throttle-time-per-round"] and \
                    limit_seen is None:
                limit_seen = src.qmp.cmd("query-vcpu-dirty-limit")
                say("dirty-limit throttle engaged after %d rounds: %s; query-vcpu-dirty-limit %s"
                    % (sync, throttle, limit_seen))
            if not lifted and sync >= a.rounds and (not a.dirty_limit or limit_seen):
                say("%d dirty-sync rounds at %d MiB/s: bandwidth cap lifted, downtime "
                    "limit 30 s" % (sync, a.bandwidth))
                src.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": 1 << 40,
                                                         "downtime-limit": 30000})
                lifted = True
            time.sleep(0.2)
        n_full = full.stop()
        n_resets = resets.stop()
        set_fault(a, False)
        ram = info["ram"]
        total_pages = ram.get("normal", 0) + ram.get("duplicate", 0)
        syncs = sorted(sent_at)
        per_round = [sent_at[b] - sent_at[c] for c, b in zip(syncs, syncs[1:])]
        per_round.append(total_pages - sent_at[syncs[-1]] if syncs else total_pages)
        # The destination stays paused (-S) once the migration is in.
        deadline = time.monotonic() + 60
        while dst.status() == "inmigrate":
            if time.monotonic() > deadline:
                raise Fail("the destination is still in migration 60 s after the source completed")
            time.sleep(0.2)
        if src.status() != "postmigrate" or dst.status() != "paused":
            raise Fail("after the migration: source %s, destination %s" % (
                src.status(), dst.status()))
        secs = info.get("total-time", 1) / 1000.0
        writes = sum(src.counters(WRITES)) - writes0
        epochs = src.read_u32(EPOCH) - epoch0
        src_dump = os.path.join(WORK, "src.mem")
        dst_dump = os.path.join(WORK, "dst.mem")
        src.dump(src_dump)
        dst.dump(dst_dump)
        diff_pages, diffs = differences(src_dump, dst_dump)
        n_diff = len(diff_pages)
        pass1 = dst.passes()
        passes = min(b - a for a, b in zip(pass0, pass1))
        report = {
            "mode": mode, "mmu": mmu_label(), "mem": "%dM" % a.mem, "vcpus": a.smp,
            "rounds": ram.get("dirty-sync-count"),
            "pages-per-round": ",".join(str(p) for p in per_round),
            "guest-writes-per-s": int(writes / secs),
            "epochs": epochs,
            "downtime-ms": info.get("downtime"),
            "total-ms": info.get("total-time"),
            "ring-full-exits": n_full if a.ring else 0,
            "ring-resets": n_resets if a.ring else 0,
            "guest-passes": passes,
            "result": "identical" if n_diff == 0 else "DIFFERENT",
        }
        if a.fault:
            report["fault"] = a.fault
        if a.dirty_limit:
            report["mode"] = "%s-dirty-limit-%d" % (mode, a.dirty_limit)
            report["throttle-us-per-full"] = throttle["dirty-limit-throttle-time-per-round"]
            report["ring-full-time-us"] = throttle["dirty-limit-ring-full-time"]
        report["qemu"] = QEMU_VERSION.get(QEMU, "?")
        print("migrate: " + " ".join("%s=%s" % kv for kv in report.items()), flush=True)
        for vm in (src, dst):
            gone = [e for e in vm.qmp.events if e.get("event") in ("RESET", "SHUTDOWN")]
            if gone:
                raise Fail("%s: the guest reset or shut down: %s (console: %r)" % (
                    vm.name, gone, vm.console()))
        if n_diff:
            # Let the destination's guest look for itself before failing.
            try:
                n, bad, _ = resume_destination(dst, a)
                guest = "%d mismatches: %s" % (n, "; ".join(
                    "page %d wants generation %d, has %d" % b[:3] for b in bad))
            except Fail as e:
                guest = "no verdict: %s" % e
            raise Fail("guest memory differs after the migration: %d pages lost; %s; the "
                       "destination's guest found %s%s" % (
                           n_diff, "; ".join(lost_page(*d) for d in diffs), guest,
                           faults_seen(a, diff_pages)))
        say("guest memory identical on both sides: %d pages" % (a.mem << 20 >> 12))
        if passes < 1:
            raise Fail("a writer of the guest completed no pass over its memory during the "
                       "migration: passes %s at the start, %s at the end" % (pass0, pass1))
        if ram.get("dirty-sync-count", 0) < a.rounds:
            raise Fail("%d dirty-sync rounds, expected at least %d" % (
                ram.get("dirty-sync-count", 0), a.rounds))
        if a.ring:
            ring_in_use(src)
            ring_in_use(dst)
            # Without the tracepoint this check could not fail: require it.
            if n_resets is None:
                raise Fail("no kvm_dirty_ring_reset tracepoint to see the ring in use")
            if n_resets == 0:
                raise Fail("no KVM_RESET_DIRTY_RINGS reset a ring during the migration")
        if a.dirty_limit:
            bad = [v for v in limit_seen if v.get("limit-rate") != a.dirty_limit]
            if not limit_seen or bad:
                raise Fail("query-vcpu-dirty-limit during the throttle: %s, expected "
                           "limit-rate %d on every vCPU" % (limit_seen, a.dirty_limit))
        if a.expect_full:
            if n_full is None:
                raise Fail("no kvm_dirty_ring_exit tracepoint to count ring-full exits")
            if n_full == 0:
                raise Fail("the ring never filled (no KVM_EXIT_DIRTY_RING_FULL) during "
                           "the migration")
        checked = check_the_checker(src_dump, dst)
        # The migrated guest runs on and must find the changed page, and
        # only that one.
        n, bad, dst_writes = resume_destination(dst, a)
        if dst.status() != "running":
            raise Fail("the destination is %s after cont" % dst.status())
        if dst_writes == 0:
            raise Fail("the destination's guest wrote no page after it resumed")
        if n != 1 or bad[0][0] != checked:
            raise Fail("the destination's guest should have found the page the test changed "
                       "(%d) and no other; it found %d: %s" % (checked, n, bad))
        say("the destination's guest found the page the test changed, %d, and no other" % checked)
        return 0
    finally:
        set_fault(a, False)
        full.stop()
        resets.stop()
        for vm in (src, dst):
            if vm:
                vm.quit()


def measure_rate(vm, secs):
    """QEMU's calc-dirty-rate in dirty-ring mode: (total MB/s, [per vCPU])."""
    vm.qmp.cmd("calc-dirty-rate", **{"calc-time": secs, "mode": "dirty-ring"})
    deadline = time.monotonic() + secs + 60
    while True:
        r = vm.qmp.cmd("query-dirty-rate")
        if r["status"] == "measured":
            return r["dirty-rate"], [v["dirty-rate"] for v in r.get("vcpu-dirty-rate", [])]
        if time.monotonic() > deadline:
            raise Fail("calc-dirty-rate: still %s after %d s" % (r["status"], secs + 60))
        time.sleep(0.5)


# QEMU's migration-test: DIRTYLIMIT_TOLERANCE_RANGE, MB/s.
TOLERANCE = 25
RING_EVENTS = ("kvm_dirty_ring_push", "kvm_dirty_ring_reset", "kvm_dirty_ring_exit")


def drop_gif():
    """Diagnostic (issue 26), only under the emulator qemu7race with
    QEMU_F0_DROPS_GIF: a write to port F0h makes the test VM's CPU 0 clear
    GIF at its next HLT in host mode, what the emulator's race leaves
    behind when CPU 0 goes idle before its next VMRUN."""
    # This process on CPU 1, so that it can report what follows (QEMU's
    # threads stay where the scheduler puts them).
    os.sched_setaffinity(0, {1})
    with open("/dev/port", "r+b", buffering=0) as port:
        port.seek(0xf0)
        port.write(b"\0")
    say("port F0h written: CPU 0's next HLT clears GIF (qemu7race)")
    time.sleep(1)


def dirtyrate(a):
    vm = None
    # A limit is enforced at ring-full exits and reset by QEMU's reaper:
    # keep the ring's events so that a hang shows the ring's last state.
    ring_events = [Tracepoint(e) for e in RING_EVENTS]
    for t in ring_events:
        t.enable()
    try:
        vm = Vm("src", accel_of(a.ring), a.mem, a.smp, append="all")
        ring_in_use(vm)
        vm.wait_serial("writing", 60)
        vm.wait_passes(1, a.timeout)
        # As QEMU's own test checks it (tests/qtest/migration-test.c,
        # test_vcpu_dirty_limit): a quota of half the rate; the rate of 1 s
        # measurements must fall below quota + 25 MB/s within 19 tries,
        # and rise above it again within 19 tries after the cancel.
        total, per_vcpu = measure_rate(vm, 1)
        say("calc-dirty-rate (dirty-ring): %d MB/s, per vCPU %s" % (total, per_vcpu))
        if len(per_vcpu) != a.smp or min(per_vcpu) <= 0:
            raise Fail("expected a positive dirty rate for each of %d vCPUs, got %s" % (
                a.smp, per_vcpu))
        origin = per_vcpu[0]
        quota = origin // 2
        if quota + TOLERANCE >= origin:
            raise Fail("the guest dirties %d MB/s: too slow for QEMU's tolerance of %d MB/s "
                       "around a quota of half of it" % (origin, TOLERANCE))
        vm.qmp.cmd("set-vcpu-dirty-limit", **{"dirty-rate": quota})
        lim = vm.qmp.cmd("query-vcpu-dirty-limit")
        say("query-vcpu-dirty-limit: %s" % lim)
        if len(lim) != a.smp or any(v["limit-rate"] != quota for v in lim):
            raise Fail("query-vcpu-dirty-limit does not show the limit %d: %s" % (quota, lim))
        time.sleep(2)
        limited = []
        for _ in range(19):
            limited.append(measure_rate(vm, 1)[1][0])
            if limited[-1] < quota + TOLERANCE:
                break
        say("limited to %d MB/s: vCPU 0 at %s MB/s" % (quota, limited))
        if a.drop_gif:
            drop_gif()
        vm.qmp.cmd("cancel-vcpu-dirty-limit")
        if a.drop_gif:
            # The diagnostic expects the hang; an answer is no result,
            # never a pass (another emulator ignores the port write, and
            # CPU 0 may run a VMRUN before it idles).
            print("SKIP: cancel-vcpu-dirty-limit answered: CPU 0 did not stay halted with "
                  "GIF clear (qemu7race with QEMU_F0_DROPS_GIF=1 is needed)", flush=True)
            return KSFT_SKIP
        after = vm.qmp.cmd("query-vcpu-dirty-limit")
        restored = []
        for _ in range(19):
            restored.append(measure_rate(vm, 1)[1][0])
            if restored[-1] > quota + TOLERANCE:
                break
        say("limit cancelled (query-vcpu-dirty-limit %s): vCPU 0 at %s MB/s" % (after, restored))
        print("migrate: mode=dirtyrate-%d mmu=%s mem=%dM qemu=%s rate-mb-s=%d limit-mb-s=%d "
              "limited-rate-mb-s=%d restored-rate-mb-s=%d" % (
                  a.ring, mmu_label(), a.mem, QEMU_VERSION.get(QEMU, "?"), origin, quota,
                  limited[-1], restored[-1]), flush=True)
        if limited[-1] >= quota + TOLERANCE:
            raise Fail("the dirty limit of %d MB/s did not take effect: vCPU 0 at %s MB/s" % (
                quota, limited))
        if after:
            raise Fail("query-vcpu-dirty-limit after cancel-vcpu-dirty-limit: %s" % after)
        if restored[-1] <= quota + TOLERANCE:
            raise Fail("the rate did not come back after cancel-vcpu-dirty-limit: %s MB/s" %
                       restored)
        return 0
    except Exception as e:
        # Said before the cleanup, which can hang on a test VM in trouble.
        say_to_kernel_log("FAIL: %s" % e)
        raise
    finally:
        for t in ring_events:
            t.disable()
        if vm:
            vm.quit()


def refused(a):
    vm = None
    try:
        vm = Vm("src", accel_of(a.ring), a.mem, a.smp)
        err = vm.stderr()
        try:
            vm.qmp.cmd("calc-dirty-rate", **{"calc-time": 1, "mode": "dirty-ring"})
            rate_err = None
        except QmpError as e:
            rate_err = e.desc
        say("QEMU: %s" % (err or "(nothing on stderr)"))
        say("calc-dirty-rate mode=dirty-ring: %s" % (rate_err or "accepted"))
        if RING_UNAVAILABLE not in err:
            raise Fail("QEMU did not refuse dirty-ring-size=%d: this kernel has the ring" % a.ring)
        if rate_err is None:
            raise Fail("QEMU accepted calc-dirty-rate in dirty-ring mode without a ring")
        print("migrate: mode=refused-%d result=refused" % a.ring, flush=True)
        return 0
    finally:
        if vm:
            vm.quit()


def main(argv=None):
    global QEMU, FIRMWARE
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=("ring", "bitmap", "dirtyrate", "refused"))
    ap.add_argument("-r", "--ring", type=int, default=0, help="dirty-ring-size (entries)")
    ap.add_argument("-f", "--expect-full", action="store_true",
                    help="the ring must fill during the migration")
    ap.add_argument("-m", "--mem", type=int, default=32, help="guest RAM, MiB")
    ap.add_argument("-c", "--smp", type=int, default=1, help="guest vCPUs")
    ap.add_argument("-b", "--bandwidth", type=int, default=4,
                    help="migration bandwidth, MiB/s, until the rounds are done")
    ap.add_argument("-n", "--rounds", type=int, default=3,
                    help="dirty-sync rounds at the capped bandwidth")
    ap.add_argument("-t", "--timeout", type=int, default=240, help="seconds per phase")
    ap.add_argument("--qemu", default=QEMU, help="the VMM (default: Debian 12's QEMU 7.2)")
    ap.add_argument("--firmware", default=FIRMWARE, help="its firmware directory (-L)")
    ap.add_argument("--dirty-limit", type=int, default=0, metavar="MB_S",
                    help="migrate with QEMU's dirty-limit capability (8.1 and later) at "
                    "vcpu-dirty-limit MB_S: the throttle must engage")
    ap.add_argument("--fault", default="",
                    help="KIND=N: the fault-injected kernel loses one dirty page in N "
                    "(kind drop or rearm) during the migration")
    ap.add_argument("--expect-loss", action="store_true",
                    help="pass only if the migration fails with lost pages named")
    ap.add_argument("--drop-gif", action="store_true",
                    help="diagnostic, under the emulator qemu7race only: have CPU 0 of "
                    "the test VM lose GIF before cancel-vcpu-dirty-limit (issue 26)")
    ap.add_argument("--trace", default="",
                    help="KVM trace events to record (comma separated); on a failure "
                    "the last of them are printed")
    a = ap.parse_args(argv)
    if a.mode in ("ring", "dirtyrate", "refused") and not a.ring:
        ap.error("%s needs -r" % a.mode)
    if a.mode == "bitmap":
        a.ring = 0
    QEMU, FIRMWARE = a.qemu, a.firmware
    setup()
    traced = [Tracepoint(e) for e in a.trace.split(",") if e]
    for t in traced:
        t.enable()
    try:
        r = {"ring": migrate, "bitmap": migrate, "dirtyrate": dirtyrate,
             "refused": refused}[a.mode](a)
        if a.expect_loss:
            print("FAIL: the migration passed: the loss of one dirty page in %s went unseen"
                  % a.fault.partition("=")[2], flush=True)
            return 1
        return r
    except (Fail, QmpError) as e:
        if a.expect_loss and "pages lost" in str(e) and "none unexplained" in str(e):
            print("expected failure, seen: %s" % e, flush=True)
            print("migrate: mode=%s fault=%s result=loss-seen" % (
                "ring-%d" % a.ring, a.fault), flush=True)
            return 0
        print("FAIL: %s" % e, flush=True)
        if traced:
            print("the last KVM events (%s):" % a.trace)
            with open(os.path.join(TRACING, "trace"), errors="replace") as f:
                lines = [l.rstrip() for l in f if not l.startswith("#")]
            print("\n".join(lines[-120:]))
        return 1
    finally:
        for t in traced:
            t.disable()


if __name__ == "__main__":
    sys.exit(main())
