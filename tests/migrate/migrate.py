#!/usr/bin/python3 -IS
"""Live migration of a guest by an unmodified QEMU on this kernel's KVM.

Runs inside the test VM, from the migration archive (scripts/
mk-migrate-initramfs.sh): Debian 12's qemu-system-x86_64, its libraries
and firmware, this script and its L2 guest, payload.elf, which rewrites
every page of its RAM above 4 MiB with the page's number and a pass
counter, forever.

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
and names the first differing page and both contents.  Then the checker
is checked: one byte of one page is changed in the destination's guest
RAM (through /proc/PID/mem at the address QEMU's gpa2hva gives), and a
new dump must differ from the source's at exactly that page.

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
FIRMWARE = "/usr/share/qemu"
PAYLOAD = "/usr/share/kvmtest/payload.elf"
WORK = "/tmp/migrate"
TRACING = "/sys/kernel/tracing"
PAGE = 4096
PAYLOAD_FIRST = 4 << 20     # payload.c: FIRST
PROGRESS = 0x300000         # payload.c: PROGRESS
RING_UNAVAILABLE = "KVM dirty ring not available"
KSFT_SKIP = 4


class Fail(Exception):
    pass


def say(msg):
    print("%7.1f %s" % (time.monotonic() - T0, msg), flush=True)


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


def _read_text(path, limit=4000):
    try:
        with open(path, errors="replace") as f:
            return f.read(limit).strip()
    except OSError as e:
        return "(%s)" % (e.strerror or e)


def hang_report(pid):
    """Where process pid is: every thread's name, state, wchan and
    kernel stack, and KVM's per-vCPU dropped-page counts.  (With --trace,
    main() adds the last KVM events to any failure.)"""
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
        state = stat.rsplit(")", 1)[-1].split()[0] if ")" in stat else "?"
        out.append("  %s %s state %s wchan %s" % (
            tid, _read_text(os.path.join(d, "comm")), state,
            _read_text(os.path.join(d, "wchan")) or "-"))
        for line in _read_text(os.path.join(d, "stack")).splitlines()[:12]:
            out.append("      " + line)
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
                raise Fail("QMP %s: no answer in %d s\n%s" % (
                    name, QMP_DEADLINE, hang_report(self.proc.pid)))
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

    def __init__(self, name, accel, mem_mb, smp, incoming=None):
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
                "-qmp", "unix:%s,server=on,wait=off" % qmp]
        if incoming:
            argv += ["-incoming", incoming, "-S"]
        say("%s: %s" % (name, " ".join(argv[1:])))
        self.err = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=self.err, stderr=self.err)
        self.qmp = Qmp(qmp, self.proc)

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
        return [self.read_u32(PROGRESS + 4 * i) for i in range(self.smp)]

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


def first_difference(a_path, b_path):
    """(page number, bytes of a, bytes of b) of the first differing page,
    or None when the two dumps are identical.  Sizes must match."""
    if os.path.getsize(a_path) != os.path.getsize(b_path):
        raise Fail("dumps differ in size: %s %d, %s %d" % (
            a_path, os.path.getsize(a_path), b_path, os.path.getsize(b_path)))
    with open(a_path, "rb") as a, open(b_path, "rb") as b:
        page = 0
        while True:
            x, y = a.read(PAGE), b.read(PAGE)
            if not x:
                return None
            if x != y:
                return page, x, y
            page += 1


def describe(page, x, y):
    off = next(i for i in range(len(x)) if x[i] != y[i])
    lo = off & ~15
    return ("page %d (guest physical 0x%x) first differs at byte 0x%x: "
            "source %s, destination %s" % (page, page * PAGE, off,
                                           x[lo:lo + 16].hex(" "), y[lo:lo + 16].hex(" ")))


def compare(a_path, b_path):
    d = first_difference(a_path, b_path)
    return None if d is None else describe(*d)


def hva_of(vm, gpa):
    out = vm.qmp.hmp("gpa2hva 0x%x" % gpa)
    m = re.search(r"is (0x[0-9a-f]+)", out)
    if not m:
        raise Fail("gpa2hva 0x%x: %r" % (gpa, out))
    return int(m.group(1), 16)


def check_the_checker(src_dump, dst, mem):
    """Change one byte of a random payload page in the destination's guest
    RAM; a new dump must differ from the source's at exactly that page."""
    page = random.randrange(PAYLOAD_FIRST // PAGE, mem // PAGE)
    gpa = page * PAGE + random.randrange(8, PAGE)
    hva = hva_of(dst, gpa)
    with open("/proc/%d/mem" % dst.proc.pid, "r+b", buffering=0) as m:
        m.seek(hva)
        old = m.read(1)
        m.seek(hva)
        m.write(bytes([old[0] ^ 0x5a]))
    bad = os.path.join(WORK, "dst-corrupted.mem")
    dst.dump(bad)
    d = first_difference(src_dump, bad)
    os.unlink(bad)
    if d is None or d[0] != page:
        raise Fail("the checker missed a byte changed at guest physical 0x%x: %s" % (
            gpa, "no difference found" if d is None else describe(*d)))
    say("checker: one byte changed at 0x%x on the destination is caught: %s" % (gpa, describe(*d)))


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


def migrate(a):
    mode = "ring-%d" % a.ring if a.ring else "bitmap"
    full = Tracepoint("kvm_dirty_ring_exit")
    resets = Tracepoint("kvm_dirty_ring_reset")
    src = dst = None
    try:
        src = Vm("src", accel_of(a.ring), a.mem, a.smp)
        if a.ring:
            ring_in_use(src)
        src.wait_serial("payload: writing", 60)
        src.wait_passes(1, a.timeout)
        dst = Vm("dst", accel_of(a.ring), a.mem, a.smp,
                 incoming="unix:" + os.path.join(WORK, "mig.sock"))
        src.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": a.bandwidth << 20,
                                                 "downtime-limit": 50})
        full.start()
        resets.start()
        pass0 = src.passes()
        t0 = time.monotonic()
        src.qmp.cmd("migrate", uri="unix:" + os.path.join(WORK, "mig.sock"))
        lifted = False
        info = {}
        rate = 0
        while True:
            info = src.qmp.cmd("query-migrate")
            st = info.get("status")
            ram = info.get("ram", {})
            rate = max(rate, ram.get("dirty-pages-rate", 0))
            if st == "completed":
                break
            if st in ("failed", "cancelled"):
                raise Fail("migration %s: %s" % (st, info.get("error-desc", "")))
            if time.monotonic() - t0 > a.timeout:
                raise Fail("migration not completed in %d s: %s" % (a.timeout, info))
            if not lifted and ram.get("dirty-sync-count", 0) >= a.rounds:
                say("%d dirty-sync rounds at %d MiB/s: bandwidth cap lifted, downtime "
                    "limit 30 s" % (ram["dirty-sync-count"], a.bandwidth))
                src.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": 1 << 40,
                                                         "downtime-limit": 30000})
                lifted = True
            time.sleep(0.5)
        n_full = full.stop()
        n_resets = resets.stop()
        ram = info["ram"]
        # The destination stays paused (-S) once the migration is in.
        deadline = time.monotonic() + 60
        while dst.status() == "inmigrate":
            if time.monotonic() > deadline:
                raise Fail("the destination is still in migration 60 s after the source completed")
            time.sleep(0.2)
        if src.status() != "postmigrate" or dst.status() != "paused":
            raise Fail("after the migration: source %s, destination %s" % (
                src.status(), dst.status()))
        src_dump = os.path.join(WORK, "src.mem")
        dst_dump = os.path.join(WORK, "dst.mem")
        src.dump(src_dump)
        dst.dump(dst_dump)
        diff = compare(src_dump, dst_dump)
        pass1 = dst.passes()
        passes = min(b - a for a, b in zip(pass0, pass1))
        report = {
            "mode": mode, "mmu": mmu_label(), "mem": "%dM" % a.mem, "vcpus": a.smp,
            "rounds": ram.get("dirty-sync-count"),
            "pages": ram.get("normal"),
            "dirty-pages-rate": rate,
            "downtime-ms": info.get("downtime"),
            "total-ms": info.get("total-time"),
            "ring-full-exits": n_full if a.ring else 0,
            "ring-resets": n_resets if a.ring else 0,
            "guest-passes": passes,
            "result": "identical" if diff is None else "DIFFERENT",
        }
        print("migrate: " + " ".join("%s=%s" % kv for kv in report.items()), flush=True)
        for vm in (src, dst):
            gone = [e for e in vm.qmp.events if e.get("event") in ("RESET", "SHUTDOWN")]
            if gone:
                raise Fail("%s: the guest reset or shut down: %s (console: %r)" % (
                    vm.name, gone, vm.console()))
        if diff is not None:
            raise Fail("guest memory differs after the migration: " + diff)
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
        if a.expect_full:
            if n_full is None:
                raise Fail("no kvm_dirty_ring_exit tracepoint to count ring-full exits")
            if n_full == 0:
                raise Fail("the ring never filled (no KVM_EXIT_DIRTY_RING_FULL) during "
                           "the migration")
        check_the_checker(src_dump, dst, a.mem << 20)
        return 0
    finally:
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


def dirtyrate(a):
    vm = None
    try:
        vm = Vm("src", accel_of(a.ring), a.mem, a.smp)
        ring_in_use(vm)
        vm.wait_serial("payload: writing", 60)
        vm.wait_passes(1, a.timeout)
        total, per_vcpu = measure_rate(vm, 2)
        say("calc-dirty-rate (dirty-ring): %d MB/s, per vCPU %s" % (total, per_vcpu))
        if len(per_vcpu) != a.smp or min(per_vcpu) <= 0:
            raise Fail("expected a positive dirty rate for each of %d vCPUs, got %s" % (
                a.smp, per_vcpu))
        limit = max(1, per_vcpu[0] // 4)
        vm.qmp.cmd("set-vcpu-dirty-limit", **{"cpu-index": 0, "dirty-rate": limit})
        time.sleep(4)
        lim = vm.qmp.cmd("query-vcpu-dirty-limit")
        say("query-vcpu-dirty-limit: %s" % lim)
        if not lim or lim[0]["limit-rate"] != limit:
            raise Fail("query-vcpu-dirty-limit does not show the limit %d: %s" % (limit, lim))
        # The rate while limited, measured as before.
        total2, per_vcpu2 = measure_rate(vm, 2)
        say("limited to %d MB/s: calc-dirty-rate %d MB/s, per vCPU %s" % (
            limit, total2, per_vcpu2))
        vm.qmp.cmd("cancel-vcpu-dirty-limit", **{"cpu-index": 0})
        print("migrate: mode=dirtyrate-%d mmu=%s mem=%dM rate-mb-s=%d limit-mb-s=%d "
              "limited-rate-mb-s=%d current-rate-mb-s=%d" % (
                  a.ring, mmu_label(), a.mem, per_vcpu[0], limit, per_vcpu2[0],
                  lim[0]["current-rate"]), flush=True)
        if per_vcpu2[0] >= per_vcpu[0]:
            raise Fail("the dirty limit of %d MB/s did not lower the rate: %d MB/s before, "
                       "%d MB/s after" % (limit, per_vcpu[0], per_vcpu2[0]))
        return 0
    finally:
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
    ap.add_argument("--trace", default="",
                    help="KVM trace events to record (comma separated); on a failure "
                    "the last of them are printed")
    a = ap.parse_args(argv)
    if a.mode in ("ring", "dirtyrate", "refused") and not a.ring:
        ap.error("%s needs -r" % a.mode)
    if a.mode == "bitmap":
        a.ring = 0
    setup()
    traced = [Tracepoint(e) for e in a.trace.split(",") if e]
    for t in traced:
        t.enable()
    try:
        return {"ring": migrate, "bitmap": migrate, "dirtyrate": dirtyrate,
                "refused": refused}[a.mode](a)
    except (Fail, QmpError) as e:
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
