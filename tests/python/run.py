#!/usr/bin/python3
"""Run the pytest tests of the Python module (tests/python/) and print one
TAP line per test case, so that meson and tools/tap_summary.py count the
cases: pytest's own report goes to stderr (meson keeps it in the log), the
TAP lines to stdout.  A failed case carries its traceback as TAP comments.

    run.py --bnfold build/bnfold --ext build/src/python/_bnfold.abi3.so [pytest args...]

The options are conftest.py's (the build's program and extension module,
testdata/, the source root); the rest goes to pytest as it is, e.g.
-m wheel or -k fixture.
"""
import argparse
import contextlib
import os
import sys

import pytest


class TapPlugin:
    def __init__(self):
        self.results = []  # (ok, description, directive, diagnostics)

    def pytest_runtest_logreport(self, report):
        desc = report.nodeid.replace("#", "No.")
        if report.when == "call" or (report.when == "setup" and not report.passed):
            if report.skipped:
                why = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
                xfail = hasattr(report, "wasxfail")
                self.results.append((not xfail, desc, ("TODO " if xfail else "SKIP ") + why.replace("Skipped: ", ""),
                                     ""))
            else:
                self.results.append((report.passed, desc, "", "" if report.passed else str(report.longrepr)))
        elif report.when == "teardown" and report.failed:
            self.results.append((False, desc + " (teardown)", "", str(report.longrepr)))

    def pytest_collectreport(self, report):
        if report.failed:
            self.results.append((False, "collect " + report.nodeid, "", str(report.longrepr)))

    def emit(self, out):
        out.write("TAP version 13\n")
        for i, (ok, desc, directive, diag) in enumerate(self.results, 1):
            out.write("%s %d - %s%s\n" % ("ok" if ok else "not ok", i, " ".join(desc.split()),
                                         " # " + " ".join(directive.split()) if directive else ""))
            for line in diag.splitlines()[-60:]:
                out.write("# %s\n" % line)
        out.write("1..%d%s\n" % (len(self.results), "" if self.results else " # SKIP no test ran"))
        out.flush()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(add_help=False)
    for opt in ("--bnfold", "--ext", "--testdata", "--source-root"):
        ap.add_argument(opt)
    ours, rest = ap.parse_known_args()
    # As --name=PATH: pytest reads conftest.py's options only after it has
    # found conftest.py, and would take a separate PATH for a test path.
    given = ["--%s=%s" % (k.replace("_", "-"), os.path.abspath(v)) for k, v in vars(ours).items() if v]
    tap = TapPlugin()
    args = ["-p", "no:cacheprovider", "--rootdir", here, "-c", os.path.join(here, "pytest.ini")] + given + rest
    with contextlib.redirect_stdout(sys.stderr):
        rc = pytest.main(args + [here], plugins=[tap])
    tap.emit(sys.stdout)
    # 5 (no test collected) is a failure too: a suite that runs nothing proves nothing
    return 0 if rc == 0 and tap.results and all(r[0] for r in tap.results) else 1


if __name__ == "__main__":
    sys.exit(main())
