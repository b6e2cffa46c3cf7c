#!/usr/bin/python3
"""Count TAP results across all tests of one or more meson runs (meson
counts whole programs, not their cases): tap_summary.py TESTLOG.json...
Prints "N passed, N failed, N skipped" last; exit 1 when anything failed.
A test program that failed without reporting a failing TAP line counts as
one failure, and so does a log file that is missing.  A "not ok ... # TODO"
line is a known gap, not a failure (TAP); each is listed and counted as
skipped."""
import json
import re
import sys

todo = []


def count(t):
    p = f = s = 0
    for l in (t.get("stdout") or "").splitlines():
        if re.match(r"^ok\b", l):
            if re.search(r"#\s*SKIP", l, re.I):
                s += 1
            else:
                p += 1
        elif re.match(r"^not ok\b", l):
            if re.search(r"#\s*TODO", l, re.I):
                s += 1
                todo.append("%s: %s" % (t.get("name"), re.sub(r"^not ok \d+ - ", "", l)))
            else:
                f += 1
        elif re.match(r"^1\.\.0\b.*#\s*SKIP", l, re.I):
            s += 1
    if t.get("result") not in ("OK", "SKIP", "EXPECTEDFAIL") and f == 0:
        f = 1
        print(f"{t.get('name')}: {t.get('result')} without a failing test line", file=sys.stderr)
    return p, f, s


passed = failed = skipped = 0
for path in sys.argv[1:]:
    try:
        with open(path) as fh:
            tests = [json.loads(line) for line in fh]
    except OSError as e:
        print(f"{path}: {e.strerror}", file=sys.stderr)
        failed += 1
        continue
    for t in tests:
        p, f_, s = count(t)
        passed, failed, skipped = passed + p, failed + f_, skipped + s
if todo:
    print("known gaps (TAP TODO, counted as skipped):")
    for line in todo:
        print("  " + line)
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
