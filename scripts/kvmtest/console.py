"""The console rules: what on the serial console fails a test, and how a
5.10 selftest says that it skipped.

A result as the guest reported it (exit status and output) becomes a
status here:
  - any kernel splat printed while the test ran fails it;
  - "ok ... # SKIP" (exit 4, KSFT_SKIP) is a skip, unless the output
    holds a failed assertion: unpatched 5.10's TEST_ASSERT() exits with
    KSFT_SKIP when errno happens to be EACCES (patch 20 removes that);
  - "ok" (exit 0) with 5.10's "..., skipping test" in the output is a
    skip: many of 5.10's print_skip() callers exit 0;
  - "# TIMEOUT" is a timeout; "exit=137" without one is a SIGKILL from
    something else, the OOM killer for one, and says so.
Every run counts: nothing is run again.
"""
import re
from typing import List, Optional, Tuple

from .ktap import Result, Status

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
# Lines that match SPLAT but are notices, not splats: mitigation
# advisories with "WARNING:" in them that stock kernels print at every
# boot, Debian 12's 6.1 on an AMD CPU model without SRSO microcode (the
# benchmarks' mainline anchor), Debian 11's 5.10 on Bochs's Skylake-X.
NOTICE = re.compile(r"(Speculative Return Stack Overflow: WARNING: See |"
                    r"RETBleed: WARNING: Spectre v2 mitigation leaves CPU vulnerable to RETBleed)")
OOM = re.compile(r"(Out of memory: Killed process .*|Memory cgroup out of memory: Killed process .*)")
PANIC = re.compile(r"Kernel panic - not syncing.*")
SKIP_510 = "skipping test"
ASSERT = "Test Assertion Failure"
BACKTRACE = re.compile(r"^\s*\d+\s+0x[0-9a-f]+")


def splats(lines: List[str]) -> List[str]:
    return [l.strip() for l in lines if SPLAT.search(l) and not NOTICE.search(l)]


def _last(lines: List[str]) -> str:
    nonblank = [l.strip() for l in lines if l.strip()]
    return nonblank[-1] if nonblank else ""


def assertion(lines: List[str]) -> str:
    """The failed assertion's text: the lines after the marker."""
    for i, l in enumerate(lines):
        if ASSERT in l:
            # file:line: condition, pid/tid - errno, the message; not the
            # backtrace (addr2line's, or its absence).
            rest = [x.strip() for x in lines[i + 1:i + 12] if x.strip() and
                    "addr2line" not in x and not BACKTRACE.match(x)]
            return " / ".join(rest[:3])[:300]
    return ""


def verdict(r: Result) -> Tuple[Status, str]:
    """The status of a leaf result, and why."""
    oom = [m.group(1) for l in r.kernel for m in [OOM.search(l)] if m]
    s = splats(r.kernel)
    if oom:
        # The OOM killer's report has a backtrace of its own: only the
        # other splats are news.
        others = [l for l in s if "Call Trace:" not in l]
        return Status.FAIL, "killed by the OOM killer: %s%s" % (
            oom[0], "; kernel splat: " + others[0] if others else "")
    if s:
        return Status.FAIL, "kernel splat: " + s[0]
    if r.directive == "TIMEOUT":
        return Status.TIMEOUT, r.reason or "timed out"
    if r.ok and r.directive == "SKIP":
        if any(ASSERT in l for l in r.output):
            return Status.FAIL, "assertion failed (exit status says skip): " + assertion(r.output)
        if r.reason:
            return Status.SKIP, r.reason
        said = [l.strip() for l in r.output if "skip" in l.lower()]
        return Status.SKIP, said[-1] if said else "the test skipped itself"
    if r.ok:
        said = [l.strip() for l in r.output if l.rstrip().endswith(SKIP_510)]
        if said:
            return Status.SKIP, said[-1]
        return Status.PASS, ""
    # not ok
    if r.directive == "exit=137":
        return Status.FAIL, "killed by SIGKILL (not at its timeout)"
    what = r.directive or "failed"
    detail = assertion(r.output) or _last(r.output)
    return Status.FAIL, what + (": " + detail[:240] if detail else "")


def boot_problems(kernel_lines: List[str]) -> List[str]:
    """Splats outside any test fail the boot."""
    return splats(kernel_lines)


def last_words(lines: List[str]) -> Optional[str]:
    """What a dying guest said last: a panic line, else its last line."""
    for l in reversed(lines):
        m = PANIC.search(l)
        if m:
            return m.group(0)
    return _last(lines) or None
