#!/usr/bin/env python3
"""Boot the test kernel under QEMU TCG and collect the test results.

The guest's /init (tests/init.sh) prints marker lines on the serial
console: "@@START name timeout", "@@END name rc=N secs=N", "@@DONE".
Every timeout is also enforced here, on the host: a guest that hangs
freezes its own timers.  Any kernel splat (oops, BUG, WARNING, lockdep,
RCU stall, KASAN, UBSAN, hung task) fails the test during which it was
printed, or the boot itself if no test was running.

Results are written as JSON lines to --results and printed as they come.
"""
import argparse
import json
import os
import re
import select
import signal
import subprocess
import sys
import time

SPLAT = re.compile(
    r"(WARNING: |BUG: |BUG at |kernel BUG|Oops|general protection fault|"
    r"Kernel panic|Call Trace:|rcu: INFO:|rcu_sched detected stall|"
    r"self-detected stall|rcu.*kthread starved|"
    r"possible circular locking|possible recursive locking|"
    r"inconsistent lock state|suspicious RCU usage|"
    r"UBSAN:|KASAN:|kmemleak|INFO: task .* blocked for more than|"
    r"sleeping function called from invalid context|"
    r"list_add corruption|list_del corruption|"
    r"watchdog: BUG: soft lockup|Unable to handle kernel)"
)
# ECHO_PREFIX marks a line the test program itself printed.
ECHO_PREFIX = "  | "

SKIP_RC = 4  # KSFT_SKIP


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--initrd", required=True)
    ap.add_argument("--boot", required=True, help="boot name (kvmtest.boot=)")
    ap.add_argument("--append", default="", help="extra kernel parameters")
    ap.add_argument("--only", default="", help="comma separated test names")
    ap.add_argument("--cpu", default="EPYC,+svm,+npt")
    ap.add_argument("--mem", default="4G")
    ap.add_argument("--smp", default="2")
    ap.add_argument("--boot-timeout", type=int, default=180,
                    help="seconds until the first test must start")
    ap.add_argument("--grace", type=int, default=60,
                    help="seconds past a test's own timeout before the "
                         "host declares the guest hung")
    ap.add_argument("--log", required=True, help="full console log")
    ap.add_argument("--results", required=True, help="JSON lines output")
    ap.add_argument("--quiet", action="store_true",
                    help="do not echo the console, only results")
    args = ap.parse_args()

    append = ("console=ttyS0 panic=-1 oops=panic softlockup_panic=0 "
              "loglevel=6 kvmtest.boot=%s %s" % (args.boot, args.append))
    if args.only:
        append += " kvmtest.only=" + args.only
    cmd = ["qemu-system-x86_64", "-accel", "tcg", "-cpu", args.cpu,
           "-m", args.mem, "-smp", args.smp, "-nographic", "-no-reboot",
           "-monitor", "none", "-serial", "stdio", "-nodefaults",
           "-kernel", args.kernel, "-initrd", args.initrd,
           "-append", append.strip()]

    logf = open(args.log, "w", buffering=1)
    resf = open(args.results, "w")
    logf.write("# " + " ".join(cmd) + "\n")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    t_boot = time.monotonic()
    deadline = t_boot + args.boot_timeout
    cur = None          # dict of the running test
    boot_splat = []     # splat lines seen outside any test
    done = False
    results = []
    buf = b""

    def emit(res):
        results.append(res)
        resf.write(json.dumps(res) + "\n")
        res.pop("out", None)
        resf.flush()
        print("@@RESULT %s %s %s %ds%s" % (
            res["status"], args.boot, res["name"], res["secs"],
            (": " + res["why"]) if res.get("why") else ""), flush=True)

    def handle(line):
        nonlocal cur, deadline, done
        logf.write(line + "\n")
        if not args.quiet:
            print("[%s] %s" % (args.boot, line), flush=True)
        is_echo = line.startswith(ECHO_PREFIX)
        if not is_echo and SPLAT.search(line):
            (cur["splat"] if cur else boot_splat).append(line.strip())
        if is_echo:
            if cur is not None:
                cur["out"].append(line[len(ECHO_PREFIX):])
            return
        m = re.search(r"@@START (\S+) (\d+)", line)
        if m:
            cur = {"name": m.group(1), "tmo": int(m.group(2)),
                   "t0": time.monotonic(), "splat": [], "out": []}
            deadline = cur["t0"] + cur["tmo"] + args.grace
            return
        m = re.search(r"@@END (\S+) rc=(\d+) secs=(\d+)", line)
        if m and cur is not None:
            rc = int(m.group(2))
            res = {"name": cur["name"], "boot": args.boot, "rc": rc,
                   "secs": int(m.group(3)), "out": cur["out"][-200:]}
            if cur["splat"]:
                res["status"], res["why"] = "FAIL", "kernel splat: " + cur["splat"][0]
            elif rc == 0 and any(l.rstrip().endswith("skipping test")
                                 for l in cur["out"]):
                # 5.10's print_skip() callers often exit 0: a test that
                # said it skipped is a skip, not a pass.
                res["status"] = "SKIP"
                res["why"] = [l.strip() for l in cur["out"]
                              if l.rstrip().endswith("skipping test")][-1]
            elif rc == 0:
                res["status"] = "PASS"
            elif rc == SKIP_RC and any("Test Assertion Failure" in l
                                       for l in cur["out"]):
                # Unpatched 5.10 TEST_ASSERT() exits with KSFT_SKIP when
                # errno happens to be EACCES (patch 19 removes that): a
                # failed assertion is a failure whatever the exit code.
                res["status"] = "FAIL"
                res["why"] = "assertion failed (exit code says skip): " + \
                    ([l.strip() for l in cur["out"] if l.strip()][-2][:200])
            elif rc == SKIP_RC:
                res["status"] = "SKIP"
                skips = [l for l in cur["out"] if "skip" in l.lower()]
                res["why"] = (skips[-1].strip() if skips else "test skipped itself")
            elif rc == 137:
                res["status"], res["why"] = "FAIL", "timed out after %ds" % cur["tmo"]
            else:
                res["status"] = "FAIL"
                asserts = [l.strip() for l in cur["out"] if l.strip()]
                res["why"] = "rc=%d%s" % (rc, (": " + asserts[-1][:200]) if asserts else "")
            emit(res)
            cur = None
            deadline = time.monotonic() + args.grace + 60
            return
        if "@@DONE" in line:
            done = True

    while True:
        now = time.monotonic()
        if now > deadline:
            why = ("hung: no progress %ds after the start of the test "
                   "(timeout %ds)" % (now - cur["t0"], cur["tmo"])) if cur \
                else "guest hung outside any test"
            logf.write("# HOST: %s, killing QEMU\n" % why)
            proc.kill()
            if cur:
                emit({"name": cur["name"], "boot": args.boot, "rc": -1,
                      "secs": int(now - cur["t0"]), "status": "FAIL",
                      "why": why + ((", splat: " + cur["splat"][0]) if cur["splat"] else "")})
                cur = None
            else:
                boot_splat.append(why)
            break
        r, _, _ = select.select([proc.stdout], [], [], 1.0)
        if r:
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                handle(raw.decode("utf-8", "replace").rstrip("\r"))
        elif proc.poll() is not None:
            break
    if buf:
        handle(buf.decode("utf-8", "replace"))
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    if cur is not None:
        last = [l for l in open(args.log).read().splitlines()[-5:] if l.strip()]
        emit({"name": cur["name"], "boot": args.boot, "rc": -1,
              "secs": int(time.monotonic() - cur["t0"]), "status": "FAIL",
              "why": "guest died during the test (QEMU exit status %s)%s" % (
                  proc.returncode,
                  (": " + cur["splat"][0]) if cur["splat"] else
                  (", last console line: " + last[-1][:120]) if last else "")})
    if not done or boot_splat:
        why = "; ".join(boot_splat[:3]) or "the guest did not finish its test list"
        emit({"name": "boot", "boot": args.boot, "rc": -1,
              "secs": int(time.monotonic() - t_boot), "status": "FAIL",
              "why": why})
    logf.close()
    resf.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
