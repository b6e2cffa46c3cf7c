#!/usr/bin/python3
"""Count TAP results across all tests of a meson run (meson counts whole
programs, not their cases).  Prints "N passed, N failed, N skipped" last;
exit 1 when anything failed.  A test program that failed without reporting
a failing TAP line counts as one failure.  A "not ok ... # TODO" line is a
known gap, not a failure (TAP); each is listed and counted as skipped."""
import json
import re
import sys

passed = failed = skipped = 0
todo = []
with open(sys.argv[1]) as f:
    for line in f:
        t = json.loads(line)
        p = f_ = s = 0
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
                    f_ += 1
            elif re.match(r"^1\.\.0\b.*#\s*SKIP", l, re.I):
                s += 1
        if t.get("result") not in ("OK", "SKIP", "EXPECTEDFAIL") and f_ == 0:
            f_ = 1
            print(f"{t.get('name')}: {t.get('result')} without a failing test line", file=sys.stderr)
        passed, failed, skipped = passed + p, failed + f_, skipped + s
if todo:
    print(f"{len(todo)} TODO (known gaps, counted as skipped):")
    for l in todo:
        print("  " + l)
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
