"""The test half of the tooling: the suite, the boots, the QEMU runner and
the KTAP parser.  Standard library only.

  suite.py    tests/suite.list read once into records; the MMU table; the
              test groups and build variants; a boot's plan for the guest
  qemu.py     the QEMU command line, the per-boot initrd, the console as
              a generator of lines under deadlines
  ktap.py     KTAP/TAP 13: the parser (a tree of results with a status
              enum) and the writer of results.tap (nested KTAP)
  console.py  the console rules: kernel splats, 5.10's ways of skipping
  run.py      one boot: plan, QEMU, parser and rules together; also the
              replay of a recorded console (the harness's own tests)
  report.py   the report of a run: the table, results.tap and its check
              by Perl's TAP::Parser, the summary line, the figures tables
  bochs.py    the Bochs machine (Intel: VMX, EPT, PML)
  bench.py    make bench: the matrix of cells, the CSV, tables and plots
  __main__.py the subcommands: check, vm, demo, bench, bench-memslot,
              programs, plan, selftest
"""
