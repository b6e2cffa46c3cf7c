#!/usr/bin/python3
"""The durability policy, end to end: an output is fsync'd before its
rename exactly when the rename replaces an existing file (--in-place, -f or
-o over a file), or when --sync asks; --no-sync (and its older name
--no-fsync) never syncs.  A model and its external data file are synced
both or neither.  Prints TAP.

The fault shim (faultshim.c, BNFOLD_FAULT_SYNC_LOG) logs every fsync,
fdatasync and sync_file_range on files of the case's folder; where strace
runs, the count of fsync and fdatasync system calls is checked with it too.
Every case also checks the exit code, the summary line on stderr and the
files left behind.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import bnftest  # noqa: E402
from bnftest import sha  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--bnfold", required=True)
ap.add_argument("--shim", required=True)
ap.add_argument("--testdata", required=True)
args = ap.parse_args()

BNFOLD = os.path.abspath(args.bnfold)
SHIM = os.path.abspath(args.shim)
DEMO = os.path.join(os.path.abspath(args.testdata), "demo.onnx")
tap = bnftest.Tap()
OLD = b"an earlier file, which a replacing run syncs its successor over\n"
SUMMARY = re.compile(r"^bnfold: .*: folded \d+ of \d+ BatchNormalization", re.M)


def synced(log):
    """{target name: [calls]} from the shim's log: a temp file
    .NAME.bnfold-XXXXXX counts for NAME."""
    got = {}
    if not os.path.exists(log):
        return got
    with open(log) as f:
        for line in f:
            call, path = line.rstrip("\n").split(" ", 1)
            base = os.path.basename(path)
            m = re.fullmatch(r"\.(.*)\.bnfold-\w{6}", base)
            got.setdefault(m.group(1) if m else base, []).append(call)
    return got


def strace_syncs(argv):
    """fsync and fdatasync system calls of a run under strace (None where
    strace cannot run here)."""
    st = shutil.which("strace")
    if not st or bnftest.WRAPPER:
        return None
    log = os.path.join(tmp, "strace.log")
    p = subprocess.run([st, "-f", "-qq", "-e", "trace=fsync,fdatasync", "-o", log, BNFOLD] + argv,
                       capture_output=True, timeout=120)
    if p.returncode != 0 or not os.path.exists(log):
        return None
    with open(log) as f:
        return sum(1 for l in f if re.search(r"\b(fsync|fdatasync)\(", l))


def setup(d, src, in_name, existing, dirs):
    """A folder holding the input (in_name, a copy of src, with its
    external data file) and the earlier files `existing`."""
    os.mkdir(d)
    shutil.copy(src, os.path.join(d, in_name))
    if os.path.exists(src + ".bin"):
        shutil.copy(src + ".bin", os.path.join(d, os.path.basename(src) + ".bin"))
    for name in existing:
        with open(os.path.join(d, name), "wb") as f:
            f.write(OLD)
    for name in dirs:
        os.mkdir(os.path.join(d, name))


def case(n, desc, argv, expect, existing=(), dirs=(), in_name="m.onnx", model=None, outputs=None):
    """Run bnfold in a new folder (setup()); argv names files in it as
    {d}/NAME.  expect: the names whose temp files must be synced, once
    each, and nothing else.  outputs: the files that must hold the fold
    (default: the models in expect, else out.onnx).  Then the same run on
    the same start under strace, where it runs."""
    d = os.path.join(tmp, "c%d" % n)
    src = model or DEMO
    setup(d, src, in_name, existing, dirs)
    log = os.path.join(tmp, "c%d.log" % n)
    argv = [a.format(d=d) for a in argv]
    env = {"LD_PRELOAD": SHIM, "BNFOLD_FAULT_MATCH": d + "/", "BNFOLD_FAULT_SYNC_LOG": log,
           "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"}
    r = bnftest.run(BNFOLD, argv, env=env)
    got = synced(log)
    want = {name: ["fsync"] for name in expect}
    ok = r.rc == 0 and not r.crashed() and SUMMARY.search(r.err) and "error" not in r.err
    tap.check(ok, "%s: exit 0 and the summary line" % desc, r.diag())
    tap.check(got == want, "%s: synced %s" % (desc, sorted(expect) or "nothing"), "sync calls: %s" % got)
    outs = outputs if outputs is not None else [o for o in expect if not o.endswith(".data")] or ["out.onnx"]
    tap.check(all(os.path.exists(os.path.join(d, o)) and sha(os.path.join(d, o)) == REF[src] for o in outs)
              and bnftest.debris(d) == [],
              "%s: %s holds the folded model, no temp file left" % (desc, ", ".join(outs)),
              "folder: %s" % sorted(os.listdir(d)))
    shutil.rmtree(d)
    setup(d, src, in_name, existing, dirs)
    count = strace_syncs(argv)
    if count is None:
        tap.skip("%s: strace counts the fsync calls" % desc, "strace is missing or cannot trace here")
    else:
        tap.check(count == len(want), "%s: strace counts %d fsync/fdatasync calls" % (desc, len(want)),
                  "counted %d" % count)


os.umask(0o022)
tmp = tempfile.mkdtemp(prefix="bnfold-sync-")
try:
    import onnx
    ext_model = os.path.join(tmp, "ext.onnx")
    m = onnx.load(DEMO)
    onnx.save(m, ext_model, save_as_external_data=True, all_tensors_to_one_file=True, location="ext.onnx.bin",
              size_threshold=0)
    REF = {}
    for i, src in enumerate((DEMO, ext_model)):
        # what a clean run writes to out.onnx (which a model with external data names)
        ref = os.path.join(tmp, "ref%d" % i, "out.onnx")
        os.mkdir(os.path.dirname(ref))
        r = bnftest.run(BNFOLD, [src, "-o", ref])
        tap.check(r.rc == 0 and not r.crashed(), "reference run on %s" % os.path.basename(src), r.diag())
        REF[src] = sha(ref)
        shutil.rmtree(os.path.dirname(ref))

    ext_both = ["out.onnx", "out.onnx.data"]
    cases = [
        ("a new file (-o)", ["{d}/m.onnx", "-o", "{d}/out.onnx"], [], {}),
        ("a new file under the default name", ["{d}/m.onnx"], [], dict(outputs=["m.folded.onnx"])),
        ("-f over an existing default-named output", ["-f", "{d}/m.onnx"], ["m.folded.onnx"],
         dict(existing=["m.folded.onnx"])),
        ("-o over an existing file", ["{d}/m.onnx", "-o", "{d}/out.onnx"], ["out.onnx"], dict(existing=["out.onnx"])),
        ("--in-place", ["--in-place", "{d}/m.onnx"], ["m.onnx"], {}),
        ("--sync on a new file", ["--sync", "{d}/m.onnx", "-o", "{d}/out.onnx"], ["out.onnx"], {}),
        ("--no-sync with --in-place", ["--no-sync", "--in-place", "{d}/m.onnx"], [], dict(outputs=["m.onnx"])),
        ("--no-sync over an existing file", ["--no-sync", "{d}/m.onnx", "-o", "{d}/out.onnx"], [],
         dict(existing=["out.onnx"])),
        ("--no-fsync (the older name) with --in-place", ["--no-fsync", "--in-place", "{d}/m.onnx"], [],
         dict(outputs=["m.onnx"])),
        ("--no-sync then --sync: the last wins", ["--no-sync", "--sync", "{d}/m.onnx", "-o", "{d}/out.onnx"],
         ["out.onnx"], {}),
        ("--sync then --no-sync: the last wins", ["--sync", "--no-sync", "--in-place", "{d}/m.onnx"], [],
         dict(outputs=["m.onnx"])),
        ("-O DIR, a new file", ["{d}/m.onnx", "-O", "{d}/o"], [], dict(dirs=["o"], outputs=["o/m.onnx"])),
        ("a report over an existing file, the model new",
         ["{d}/m.onnx", "-o", "{d}/out.onnx", "--report", "{d}/fold.json"], ["fold.json"],
         dict(existing=["fold.json"], outputs=["out.onnx"])),
        ("external data, model and data file new", ["{d}/m.onnx", "-o", "{d}/out.onnx"], [],
         dict(model=ext_model)),
        ("external data, the model replaces a file (its data file new): both synced",
         ["{d}/m.onnx", "-o", "{d}/out.onnx"], ext_both, dict(model=ext_model, existing=["out.onnx"])),
        ("external data, only the data file exists: both synced",
         ["{d}/m.onnx", "-o", "{d}/out.onnx"], ext_both, dict(model=ext_model, existing=["out.onnx.data"])),
        ("external data, --sync on new files: both synced", ["--sync", "{d}/m.onnx", "-o", "{d}/out.onnx"],
         ext_both, dict(model=ext_model)),
        ("external data, --no-sync over both: neither synced", ["--no-sync", "{d}/m.onnx", "-o", "{d}/out.onnx"],
         [], dict(model=ext_model, existing=ext_both)),
    ]
    for n, (desc, argv, expect, kw) in enumerate(cases):
        case(n, desc, argv, expect, **kw)
finally:
    shutil.rmtree(tmp, ignore_errors=True)

sys.exit(tap.emit())
