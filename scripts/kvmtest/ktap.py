"""KTAP (TAP version 13, as kselftest prints it): a streaming parser
that builds a tree of results, the status enum, and the writer of a
run's results.tap.

Grammar (each line may be indented by 4 spaces per nesting level):
  TAP version 13 | KTAP version 1      a document starts
  1..N                                 its plan
  # Subtest: NAME                      a nested document starts
  ok N NAME [# DIRECTIVE [REASON]]     a result
  not ok N NAME [# DIRECTIVE [REASON]]
  # TEXT                               a diagnostic: the output of the
                                       test whose result comes next
  Bail out! REASON                     the producer gave up
Any other line is not KTAP: on a serial console, a kernel message.
"""
import enum
import re
from dataclasses import dataclass, field
from typing import List, Optional


class Status(enum.Enum):
    PASS = "PASS"
    SKIP = "SKIP"
    FAIL = "FAIL"
    TIMEOUT = "TIMEOUT"     # killed at its timeout (guest or host)
    NOT_RUN = "NOT_RUN"     # planned, but the boot ended before it

    @property
    def failed(self) -> bool:
        return self in (Status.FAIL, Status.TIMEOUT, Status.NOT_RUN)


@dataclass
class Result:
    """One KTAP result, as the producer reported it."""
    number: int
    name: str
    ok: bool
    directive: str = ""         # SKIP, TIMEOUT, exit=N, ... (upper-cased keyword)
    reason: str = ""
    output: List[str] = field(default_factory=list)    # its '# ' lines
    kernel: List[str] = field(default_factory=list)    # kernel lines meanwhile
    subtests: List["Result"] = field(default_factory=list)
    plan: Optional[int] = None
    secs: float = 0.0
    depth: int = 0


_VERSION = re.compile(r"^(K?TAP) version (\d+)$")
_PLAN = re.compile(r"^1\.\.(\d+)$")
_RESULT = re.compile(r"^(ok|not ok) (\d+)(?: -)?(?: ([^#]*?))?\s*(?:#\s*(.*))?$")
_SUBTEST = re.compile(r"^# Subtest: (.*)$")
_BAIL = re.compile(r"^Bail out!\s*(.*)$")


def split_directive(text: str):
    """'SKIP reason' -> ('SKIP', 'reason'); 'exit=1' -> ('exit=1', '')."""
    if not text:
        return "", ""
    word, _, rest = text.strip().partition(" ")
    if word.upper() in ("SKIP", "TODO", "TIMEOUT", "XFAIL"):
        return word.upper(), rest.strip()
    if re.match(r"^[a-z]+=\S*$", word):
        return word, rest.strip()
    return "", text.strip()


class _Doc:
    def __init__(self, depth, name=""):
        self.depth = depth
        self.name = name
        self.plan = None
        self.results: List[Result] = []
        self.pending_out: List[str] = []
        self.pending_kernel: List[str] = []


class Parser:
    """Feed console lines one at a time; results come back as events.

    feed() returns a list of events: ("header", text) for a diagnostic
    before the plan, ("plan", n), ("result", Result) for every result
    at any depth (a leaf's before its parent's), ("bail", reason),
    ("kernel", line) for a non-KTAP line once the document has started
    and ("preamble", line) before it."""

    def __init__(self):
        self.started = False
        self.stack: List[_Doc] = []
        self.top: Optional[_Doc] = None
        self.header: List[str] = []
        self.bailed: Optional[str] = None
        self.trailer: List[str] = []    # lines after the top-level plan is complete

    @property
    def complete(self) -> bool:
        t = self.top
        return t is not None and t.plan is not None and len(t.results) >= t.plan

    def feed(self, line: str):
        line = line.rstrip("\r\n")
        stripped = line.lstrip(" ")
        indent = (len(line) - len(stripped)) // 4
        if not self.started:
            if _VERSION.match(stripped):
                self.started = True
                self.top = _Doc(0)
                self.stack = [self.top]
                return []
            return [("preamble", line)]
        if self.complete or self.bailed is not None:
            self.trailer.append(line)
            return [("kernel", line)]
        m = _BAIL.match(stripped)
        if m:
            self.bailed = m.group(1)
            return [("bail", self.bailed)]
        if indent >= len(self.stack):
            # A nested document opens with "# Subtest:", a version line
            # or its plan, indented one level deeper.
            if indent == len(self.stack) and (_SUBTEST.match(stripped) or
                                              _PLAN.match(stripped) or
                                              _VERSION.match(stripped)):
                ms = _SUBTEST.match(stripped)
                self.stack.append(_Doc(indent, ms.group(1) if ms else ""))
                if ms or _VERSION.match(stripped):
                    return []
            else:
                return self._kernel(line)
        doc = self.stack[indent]
        mp = _PLAN.match(stripped)
        if mp and doc.plan is None and not doc.results:
            if indent == len(self.stack) - 1:
                doc.plan = int(mp.group(1))
                return [("plan", doc.plan)] if indent == 0 else []
        mr = _RESULT.match(stripped)
        if mr:
            return self._result(indent, mr)
        if (stripped == "#" or stripped.startswith("# ")) and indent == len(self.stack) - 1:
            # ("#PF: ..." is a kernel line, not a diagnostic.)
            text = stripped[2:]
            if doc is self.top and doc.plan is None and not doc.results:
                self.header.append(text)
                return [("header", text)]
            doc.pending_out.append(text)
            return []
        return self._kernel(line)

    def _kernel(self, line):
        self.stack[-1].pending_kernel.append(line)
        return [("kernel", line)]

    def _result(self, indent, m):
        events = []
        # A result at this depth closes any deeper document: that
        # document is the subtests of this result.
        sub = None
        while len(self.stack) > indent + 1:
            sub = self.stack.pop()
        doc = self.stack[indent]
        directive, reason = split_directive(m.group(4) or "")
        r = Result(int(m.group(2)), (m.group(3) or "").strip(), m.group(1) == "ok",
                   directive, reason, doc.pending_out, doc.pending_kernel, depth=indent)
        if sub is not None:
            r.subtests = sub.results
            r.plan = sub.plan
            r.output = sub.pending_out + r.output
            r.kernel = sub.pending_kernel + r.kernel
        doc.pending_out, doc.pending_kernel = [], []
        doc.results.append(r)
        events.append(("result", r))
        return events

    def results(self) -> List[Result]:
        return self.top.results if self.top else []

    def leftover_kernel(self) -> List[str]:
        """Kernel lines after the last result of an unfinished document."""
        return [l for d in self.stack for l in d.pending_kernel]


def parse_lines(lines) -> Parser:
    p = Parser()
    for l in lines:
        p.feed(l)
    return p


def _escape(s: str) -> str:
    return s.replace("#", "\\#")


@dataclass
class Node:
    """A result to write: a test, or a document of subtests (a boot, a
    multi-part test) whose own result follows from theirs."""
    name: str
    status: Optional[Status] = None     # None: from the children
    reason: str = ""
    diag: List[str] = field(default_factory=list)      # after the result
    header: List[str] = field(default_factory=list)    # before the plan
    children: List["Node"] = field(default_factory=list)

    def outcome(self) -> Status:
        if self.status is not None:
            return self.status
        st = [c.outcome() for c in self.children]
        if any(x.failed for x in st):
            return Status.FAIL
        if st and all(x is Status.SKIP for x in st):
            return Status.SKIP
        return Status.PASS


def _write_doc(f, nodes: List[Node], header: List[str], depth: int, name: str = ""):
    ind = "    " * depth
    f.write("%sKTAP version 1\n" % ind)
    if name:
        f.write("%s# Subtest: %s\n" % (ind, name))
    for h in header:
        f.write(("%s# %s" % (ind, h)).rstrip() + "\n")
    f.write("%s1..%d\n" % (ind, len(nodes)))
    for n, node in enumerate(nodes, 1):
        if node.children:
            _write_doc(f, node.children, node.header, depth + 1, node.name)
        status = node.outcome()
        line = "%s%s %d %s" % (ind, "not ok" if status.failed else "ok", n, _escape(node.name))
        if status is Status.SKIP:
            line += " # SKIP %s" % node.reason
        elif status is Status.TIMEOUT:
            line += " # TIMEOUT %s" % node.reason
        f.write(line.rstrip() + "\n")
        diag = list(node.diag)
        if node.reason and status is not Status.SKIP and status is not Status.TIMEOUT:
            # A failure's reason.
            diag = [node.reason] + diag
        for d in diag:
            f.write(("%s# %s" % (ind, d)).rstrip() + "\n")


def write(path: str, header: List[str], nodes: List[Node]) -> None:
    """A whole run as one nested KTAP document: a subtest per boot, and in
    it a subtest per multi-part test; the results of the tests that ran
    are the leaves."""
    with open(path, "w") as f:
        _write_doc(f, nodes, header, 0)
