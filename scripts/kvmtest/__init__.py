"""The test half of the tooling: the suite, the boots, the QEMU runner and
the KTAP parser.  Standard library only.

  suite.py    tests/suite.list read once into records; the MMU table; the
              test groups and build variants; a boot's plan for the guest
  qemu.py     the QEMU command line, the per-boot initrd, the console as
              a generator of lines under deadlines
  ktap.py     KTAP/TAP 13: the parser (a tree of results with a status
              enum) and the writer of results.tap
  console.py  the console rules: kernel splats, 5.10's ways of skipping
  run.py      one boot: plan, QEMU, parser and rules together; also the
              replay of a recorded console (the harness's own tests)
  __main__.py the subcommands: check, vm, demo, bench-memslot, plan
"""
