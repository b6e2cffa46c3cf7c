#!/usr/bin/python3
"""Every malformed or hostile input of tests/bad/test_bad.py, folded through
the library (bnfold_fold_file in tests/api/api_fold.c) instead of the
program, and through bnfold_fold_buffer (api_fold --buffer: the file's
outcome, see buffer_problems).  Prints TAP.

The cases and what each must give come from test_bad.py --export-cases:
  error: a status other than OK and BNFOLD_E_VERIFY, with its name, no
         result, and a one-line message "IN: ..." matching the case's
         pattern and equal to what build/bnfold prints after
         "bnfold: error: "; no output and no temp file left;
  skip:  OK, one BatchNormalization skipped with the reason code and a
         message matching the case's pattern, nothing folded, the output
         the input unchanged;
  ok:    OK within the case's time.
In every case: nothing on stderr (the library prints nothing; a sanitizer
report would be there), every temp file announced through the tempfile
callback is released, no crash.  Run in build-asan, LeakSanitizer checks
each case for leaks.
"""
import argparse
import concurrent.futures
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import bnftest  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--api-fold", required=True)
ap.add_argument("--bnfold", required=True)
ap.add_argument("--testdata", required=True)
ap.add_argument("--source-root", required=True)
ap.add_argument("--sanitized", action="store_true", help="built with ASan: no address-space limit")
args = ap.parse_args()

API_FOLD = os.path.abspath(args.api_fold)
BNFOLD = os.path.abspath(args.bnfold)
STATUS = {0: "ok", 1: "invalid_argument", 2: "io_error", 3: "not_onnx", 4: "out_of_memory", 5: "verify_failed"}
LIMIT_AS = None if (args.sanitized or bnftest.WRAPPER) else 1 << 30
SLOWER = 30 if bnftest.WRAPPER else 5 if args.sanitized else 1
tap = bnftest.Tap()


def limit_memory():
    if LIMIT_AS:
        resource.setrlimit(resource.RLIMIT_AS, (LIMIT_AS, LIMIT_AS))


def parse(out):
    """api_fold's stdout as a dict: code, name, message, counts, skips, temps."""
    got = {"skips": []}
    for line in out.decode(errors="replace").splitlines():
        m = re.match(r"code=(\d+) name=(\S+) message=(.*)$", line)
        if m:
            got.update(code=int(m.group(1)), name=m.group(2), message=m.group(3))
        elif line.startswith("counts "):
            got["counts"] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}
        elif line.startswith("skip "):
            m = re.match(r"skip reason=(\S+) message=(.*)$", line)
            got["skips"].append((m.group(1), m.group(2)) if m else ("?", line))
        elif line.startswith("tempfiles "):
            got["temps"] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}
        else:
            got.setdefault("other", []).append(line)
    return got


def api_fold(inp, out, extra=(), cwd=None):
    t0 = time.monotonic()
    r = bnftest.run(API_FOLD, list(extra) + [inp, out], cwd=cwd, preexec_fn=limit_memory)
    return r, parse(r.out), time.monotonic() - t0


def common_problems(r, got, folder):
    """What every run must satisfy, whatever the case expects."""
    problems = []
    why = r.crashed()
    if why:
        problems.append(why)
    if r.err.strip():
        problems.append("stderr is not empty")
    if "code" not in got or "temps" not in got or got.get("other"):
        problems.append("unexpected stdout")
        return problems
    if got["name"] != STATUS.get(got["code"], "unknown"):
        problems.append(f"status name {got['name']} for code {got['code']}")
    if r.rc != got["code"]:
        problems.append(f"exit {r.rc}, not the status code {got['code']}")
    if got["temps"]["created"] != got["temps"]["released"]:
        problems.append(f"tempfile callback: {got['temps']}")
    left = bnftest.debris(folder)
    if left:
        problems.append(f"temp files left: {left}")
    return problems


def error_problems(got, inp, out, regex):
    problems = []
    if got["code"] in (0, 5):
        problems.append(f"expected an error other than verify_failed, got {got['name']}")
    if "counts" in got:
        problems.append("a result came back with the error")
    msg = got["message"]
    if not msg.startswith(f"{inp}: "):
        problems.append("the message does not start with 'IN: '")
    elif not re.search(regex, msg):
        problems.append(f"the message does not match /{regex}/")
    if os.path.exists(out):
        problems.append("the output was written")
    # The program prints the library's message as it is.
    r = bnftest.run(BNFOLD, [inp, "-o", out, "-q"], preexec_fn=limit_memory)
    if r.err.strip() != f"bnfold: error: {msg}":
        problems.append(f"build/bnfold says {r.err.strip()!r}")
    return problems


def skip_problems(got, data, out, case):
    problems = []
    if got["code"] != 0:
        problems.append("expected ok")
        return problems
    c = got.get("counts", {})
    if c.get("folded") != 0 or c.get("affine") != 0 or c.get("skipped") != 1 or len(got["skips"]) != 1:
        problems.append(f"expected one skip and no fold: {c} {got['skips']}")
    elif got["skips"][0][0] != case["reason"]:
        problems.append(f"reason {got['skips'][0][0]}, expected {case['reason']}")
    elif not re.search(case["message_regex"], got["skips"][0][1]):
        problems.append(f"skip message {got['skips'][0][1]!r} does not match /{case['message_regex']}/")
    if not os.path.exists(out) or open(out, "rb").read() != data:
        problems.append("the output is not the input unchanged")
    return problems


def buffer_problems(got, gotb, inp, out, outb, data, case):
    """The case through bnfold_fold_buffer (named IN) against the file's
    outcome: the same error (a buffer is "input", not "file", when empty),
    except that a buffer's external data is not looked for (a buffer has no
    folder), so its BN is skipped as unsupported_storage; the same skips
    and the same output bytes otherwise."""
    problems = []
    if gotb["temps"]["created"]:
        problems.append("a temp file for a buffer")
    if case["expect"] == "error" and "external data" in case["regex"]:
        if gotb["code"] != 0 or [s[0] for s in gotb["skips"]] != ["unsupported_storage"]:
            problems.append(f"expected ok, the BN skipped as unsupported_storage: {gotb}")
        elif not os.path.exists(outb) or open(outb, "rb").read() != data:
            problems.append("the output is not the input unchanged")
    elif case["expect"] == "error":
        if gotb["code"] != got.get("code") or "counts" in gotb or os.path.exists(outb):
            problems.append(f"expected error {got.get('name')} alone, got {gotb['name']}")
        if not gotb["message"].startswith(f"{inp}: ") or \
           not re.search(case["regex"].replace("file is empty", "input is empty"), gotb["message"]):
            problems.append(f"the message {gotb['message']!r} does not match /{case['regex']}/")
    elif gotb["code"] != got.get("code") or gotb.get("counts") != got.get("counts") or gotb["skips"] != got["skips"]:
        problems.append(f"not what the file gave: {gotb}")
    elif not os.path.exists(outb) or not os.path.exists(out) or open(outb, "rb").read() != open(out, "rb").read():
        problems.append("not the bytes the file gave")
    return problems


def run_case(tmp, cases_dir, n, case):
    folder = os.path.join(tmp, f"case{n:03d}")
    os.mkdir(folder)
    inp = os.path.join(folder, "in.onnx")
    out = os.path.join(folder, "out.onnx")
    shutil.move(os.path.join(cases_dir, case["file"]), inp)
    data = open(inp, "rb").read()
    r, got, secs = api_fold(inp, out, case.get("args", []), cwd=folder)
    problems = common_problems(r, got, folder)
    # The same bytes through bnfold_fold_buffer.
    outb = os.path.join(folder, "out-buffer.onnx")
    rb, gotb, secs_b = api_fold(inp, outb, ["--buffer"] + case.get("args", []), cwd=folder)
    problems += [f"buffer: {p}" for p in common_problems(rb, gotb, folder) +
                 (buffer_problems(got, gotb, inp, out, outb, data, case) if "code" in gotb else [])]
    secs = max(secs, secs_b)
    if "code" in got:
        if case["expect"] == "error":
            problems += error_problems(got, inp, out, case["regex"])
        elif case["expect"] == "skip":
            problems += skip_problems(got, data, out, case)
        elif got["code"] != 0 or not os.path.exists(out):
            problems.append("expected ok and an output")
    max_secs = case.get("max_secs", 20)
    if secs > max_secs * SLOWER:
        problems.append(f"took {secs:.1f} s")
    outcome = case["expect"] if case["expect"] != "error" else f"error {got.get('name')}"
    if case["expect"] == "skip":
        outcome = f"skip {case['reason']}"
    shutil.rmtree(folder, ignore_errors=True)
    return (not problems, f"{case['desc']}: {outcome}",
            "; ".join(problems) + f"\nexit {r.rc}, stdout: {r.out.decode(errors='replace')[:1500]}"
            f"\nstderr: {r.err.strip()[:1500]}")


def not_a_file_cases(tmp):
    """Inputs that are not regular files, as in test_bad.py."""
    demo = os.path.join(args.testdata, "demo.onnx")
    plain = os.path.join(tmp, "plain.onnx")
    shutil.copy(demo, plain)
    loop = os.path.join(tmp, "loop.onnx")
    os.symlink(loop, loop)
    for desc, inp, regex in (("a directory as input", os.path.join(tmp, "adir"), r"is a directory, not an ONNX model$"),
                             ("a path through a regular file", plain + "/model.onnx", r"cannot open: Not a directory$"),
                             ("a symlink pointing at itself", loop, r"cannot open: Too many levels of symbolic links$"),
                             ("a missing file", os.path.join(tmp, "missing.onnx"),
                              r"cannot open: No such file or directory$")):
        if desc.startswith("a directory"):
            os.mkdir(inp)
        out = os.path.join(tmp, "o.onnx")
        r, got, _ = api_fold(inp, out, cwd=tmp)
        problems = common_problems(r, got, tmp)
        if "code" in got:
            problems += error_problems(got, inp, out, regex)
        tap.check(not problems, f"{desc}: error {got.get('name')}",
                  "; ".join(problems) + f"\nexit {r.rc}, stdout: {r.out.decode(errors='replace')}\nstderr: {r.err}")


os.umask(0o022)
tmp = tempfile.mkdtemp(prefix="bnfold-api-bad-")
try:
    cases_dir = os.path.join(tmp, "cases")
    p = subprocess.run([sys.executable, os.path.join(args.source_root, "tests", "bad", "test_bad.py"),
                        "--testdata", args.testdata, "--export-cases", cases_dir], capture_output=True, timeout=300)
    if tap.check(p.returncode == 0, "tests/bad/test_bad.py --export-cases writes the cases",
                 p.stderr.decode(errors="replace")[-1500:]):
        cases = json.load(open(os.path.join(cases_dir, "cases.json")))
        tap.check(len(cases) >= 80, f"{len(cases)} cases", "fewer cases than test_bad.py had when this was written")
        # Two at a time: the two 20000-node cases take seconds under ASan.
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            for outcome in pool.map(lambda nc: run_case(tmp, cases_dir, *nc), enumerate(cases)):
                tap.check(*outcome)
    not_a_file_cases(tmp)
finally:
    shutil.rmtree(tmp, ignore_errors=True)

sys.exit(tap.emit())
