"""Shared by every end-to-end TAP driver that runs the bnfold binary
(tests/cli, tests/bad, tests/faults, tests/oracle): running it the way the
test setup asks,
recognising crashes and sanitizer reports, and printing TAP.

BNFOLD_WRAPPER (set by `meson test --setup=valgrind`) is a command prefix
put before every bnfold run, e.g. "valgrind -q --error-exitcode=99".
"""

import hashlib
import os
import re
import shlex
import subprocess
import sys

WRAPPER = shlex.split(os.environ.get("BNFOLD_WRAPPER", ""))

# What a sanitizer or valgrind prints when it finds something; any of these
# on stderr fails the case whatever the exit status.
SANITIZER_RE = re.compile(r"ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error:|"
                          r"SUMMARY: (Address|Undefined|Leak)|==\d+== (Invalid|Conditional|Use of|Syscall param)|"
                          r"definitely lost: [1-9]")
# Exit statuses the wrappers use for their own findings.
WRAPPER_CODES = (99,)


class Tap:
    def __init__(self):
        self.results = []

    def check(self, ok, desc, diag=""):
        self.results.append((bool(ok), " ".join(str(desc).replace("#", "No.").split()), str(diag)))
        return bool(ok)

    def skip(self, desc, why):
        self.results.append((True, f"{desc} # SKIP {why}", ""))

    def emit(self):
        print("TAP version 13")
        for i, (ok, desc, diag) in enumerate(self.results, 1):
            print(f"{'ok' if ok else 'not ok'} {i} - {desc}")
            if not ok and diag:
                for line in diag.splitlines():
                    print(f"# {line}")
        print(f"1..{len(self.results)}")
        sys.stdout.flush()
        return 0 if all(r[0] for r in self.results) else 1


class Run:
    """One finished bnfold run."""

    def __init__(self, rc, out, err, timed_out=False):
        self.rc, self.out, self.err, self.timed_out = rc, out, err, timed_out

    def crashed(self):
        """Why this run is a crash, or '' when it is not."""
        if self.timed_out:
            return "timed out"
        if self.rc < 0:
            return f"killed by signal {-self.rc}"
        if self.rc in WRAPPER_CODES:
            return f"exit {self.rc} (sanitizer/valgrind finding)"
        m = SANITIZER_RE.search(self.err)
        if m:
            return f"sanitizer/valgrind report: {m.group(0)}"
        return ""

    def diag(self):
        return f"exit {self.rc}, stderr: {self.err.strip()[:1500]}"


def run(bnfold, argv, stdin=None, cwd=None, env=None, timeout=120, wrap=True, preexec_fn=None):
    cmd = (WRAPPER if wrap else []) + [bnfold] + list(argv)
    if wrap and WRAPPER:
        timeout *= 10  # valgrind runs some 20-50 times slower
    full_env = dict(os.environ)
    full_env.update(env or {})
    try:
        p = subprocess.run(cmd, input=stdin, capture_output=True, cwd=cwd, env=full_env,
                           timeout=timeout, preexec_fn=preexec_fn)
    except subprocess.TimeoutExpired as e:
        return Run(-1, e.stdout or b"", (e.stderr or b"").decode(errors="replace"), timed_out=True)
    return Run(p.returncode, p.stdout, p.stderr.decode(errors="replace"))


def run_checked(tap, bnfold, argv, stdin=None, cwd=None, env=None, timeout=120):
    """run(), and a crash or a sanitizer/valgrind report is a failed check
    of tap whatever the run printed."""
    r = run(bnfold, argv, stdin=stdin, cwd=cwd, env=env, timeout=timeout)
    if r.crashed():
        tap.check(False, "bnfold %s runs without a crash or sanitizer report: %s" % (" ".join(argv)[:200], r.crashed()),
                  r.diag())
    return r


def sha(path):
    """SHA-256 of a file, read 1 MiB at a time (models may be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree(d):
    """Every file under d with its hash: what a run left behind."""
    out = {}
    for root, _, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            out[os.path.relpath(p, d)] = sha(p)
    return out


def debris(folder):
    """Temp files bnfold left behind (.NAME.bnfold-XXXXXX)."""
    return sorted(f for f in os.listdir(folder) if ".bnfold-" in f)
