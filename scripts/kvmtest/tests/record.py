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


def retry_boot(mmu: str = "npt", group: str = "suite") -> Boot:
    """/init's second run of a test that ended in an L2 shutdown: the
    assertion 5.10's dirty_log_test printed in the CI run of 2026-11-29,
    once, twice, and a failure of another kind (never run again)."""
    # The marker is spelled out only at run time, so that the command
    # line /init echoes does not hold it.
    sh = "sh -c '%s'"
    fail = 'a=Assertion; echo "==== Test $a Failure ===="; '
    shutdown = fail + ('echo "  dirty_log_test.c:439: false"; echo "  pid=125 tid=129 - Success"; '
                       'echo "  Invalid guest sync status: exit_reason=SHUTDOWN"; exit 254')
    tests = [
        Test("shutdown_once", 30, sh % ("[ -e /tmp/once ] && echo fine && exit 0; "
                                        "touch /tmp/once; " + shutdown)),
        Test("shutdown_twice", 30, sh % shutdown),
        Test("other_failure", 30, sh % (fail + 'echo "  dirty_log_test.c:275: false"; '
                                        'echo "  pid=1 tid=1 - Success"; '
                                        'echo "  Set page 4216 value 10 incorrect"; exit 254')),
        Test("passes", 30, "true"),
    ]
    return Boot(suite.MMUS[mmu], group, [Entry(t.name, [t], False) for t in tests])


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
    r = run.boot_vm(retry_boot(), kernel, initramfs, dest)
    os.rename(os.path.join(dest, "console-npt.log"), os.path.join(dest, "retry.log"))
    print([(o.name, o.status.value, o.reason) for o in r.outcomes])


if __name__ == "__main__":
    main(sys.argv[1])
