"""Record the consoles in data/ that come from real boots of the test VM
(see data/README): python3 -m kvmtest.tests.record OUTDIR
Needs build/out/bzImage and build/out/initramfs.cpio.gz."""
import os
import sys

from kvmtest import qemu, run, suite
from kvmtest.suite import Boot, Entry, Test

OUT = os.path.join(suite.TOP, "build", "out")


def misc_boot() -> Boot:
    sh = "sh -c '%s'"
    tests = [
        Test("exits_1", 30, sh % "echo ==== Test Assertion Failure ====; "
             "echo   lib/kvm_util.c:99: ret == 0; echo   pid=1 tid=1 - Invalid argument; exit 1"),
        Test("assert_as_skip", 30, sh % "echo ==== Test Assertion Failure ====; "
             "echo   dirty_log_test.c:283: false; echo   pid=1 tid=1 - Permission denied; exit 4"),
        Test("sleeps_past_timeout", 3, "sleep 30"),
        Test("oom_killed", 300, "dd if=/dev/zero of=/dev/null bs=3900M count=1 iflag=fullblock"),
        Test("says_skipping_exit_0", 30, sh % "echo Must be run on an Intel CPU, skipping test; exit 0"),
    ]
    return Boot(suite.MMUS["npt"], "suite", [Entry(t.name, [t], False) for t in tests])


def main(dest):
    os.makedirs(dest, exist_ok=True)
    kernel = os.path.join(OUT, "bzImage")
    initramfs = os.path.join(OUT, "initramfs.cpio.gz")
    b = misc_boot()
    r = run.boot_vm(b, kernel, initramfs, dest)
    os.rename(os.path.join(dest, "console-npt.log"), os.path.join(dest, "exit-timeout-oom.log"))
    print([(o.name, o.status.value, o.reason) for o in r.outcomes])
    # tdp asked for, tdp_mmu=0 given later on the command line.
    b = suite.select(suite.load(), "tdp", only=["ring"])
    r = run.boot_vm(b, kernel, initramfs, dest, extra_append="kvm.tdp_mmu=0")
    os.rename(os.path.join(dest, "console-tdp.log"), os.path.join(dest, "param-mismatch.log"))
    print([(o.name, o.status.value, o.reason) for o in r.outcomes])
    # An initramfs without /init.
    empty = os.path.join(dest, "empty.cpio")
    with open(empty, "wb") as f:
        f.write(qemu.newc({"nothing": b""}))
    b = suite.select(suite.load(), "npt", only=["ring"])
    r = run.boot_vm(b, kernel, empty, dest)
    os.rename(os.path.join(dest, "console-npt.log"), os.path.join(dest, "no-init.log"))
    os.unlink(empty)
    print([(o.name, o.status.value, o.reason) for o in r.outcomes])


if __name__ == "__main__":
    main(sys.argv[1])
