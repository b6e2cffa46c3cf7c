#!/usr/bin/python3
"""End-to-end cases for the CI gate (--check), the inspection table (--list)
and several inputs (-O DIR, NAME.folded.onnx, one report for all).  Prints TAP.

Expected outcomes come from testdata/expected.json (written by hand), from
the models themselves read with the onnx package, and from the cases below;
every report is validated against src/lib/report.schema.json.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import jsonschema
import onnx
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import bnftest  # noqa: E402
from bnftest import sha, tree  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--bnfold", required=True)
ap.add_argument("--testdata", required=True)
ap.add_argument("--schema", required=True)
args = ap.parse_args()

BNFOLD = os.path.abspath(args.bnfold)
TESTDATA = os.path.abspath(args.testdata)
SCHEMA = json.load(open(args.schema))
EXPECTED = {fx["file"]: fx for fx in json.load(open(os.path.join(TESTDATA, "expected.json")))["fixtures"]}
COLUMNS = ["LAYER", "NODE", "PATTERN", "CHANNELS", "DTYPE", "ACTION", "REASON"]
tap = bnftest.Tap()
check = tap.check


def run(argv, stdin=None, cwd=None, env=None):
    r = bnftest.run_checked(tap, BNFOLD, argv, stdin=stdin, cwd=cwd, env=env, timeout=120)
    return r.rc, r.out.decode(errors="replace"), r.err


def fixture(name):
    return os.path.join(TESTDATA, name)


def bn_names(path):
    """BatchNormalization node names in file order, subgraphs where their node is,
    then those of the function bodies."""
    names = []

    def walk(g):
        for n in g.node:
            if n.op_type == "BatchNormalization":
                names.append(n.name or "(unnamed BatchNormalization, output %s)" % n.output[0])
            for a in n.attribute:
                if a.HasField("g"):
                    walk(a.g)
                for sg in a.graphs:
                    walk(sg)
    m = onnx.load(path)
    walk(m.graph)
    for f in m.functions:
        walk(f)
    return names


def bn_count(path):
    return len(bn_names(path))


def schema_errors(obj):
    v = jsonschema.Draft7Validator(SCHEMA)
    return ["%s: %s" % ("/".join(map(str, e.path)), e.message) for e in v.iter_errors(obj)]


def report_doc(path):
    """The report: one JSON document, valid against the schema."""
    try:
        doc = json.load(open(path))
    except ValueError as e:
        return {"inputs": []}, [str(e)]
    return doc, schema_errors(doc)


def parse_table(text):
    """Rows of an aligned table: cells cut at the header's column starts (so
    a misaligned row reads wrong), cross-checked against a split on runs of
    two or more spaces."""
    lines = text.rstrip("\n").split("\n")
    header = lines[0]
    names = re.split(r"  +", header.strip())
    starts = [header.index(n) for n in names]
    rows, bad = [], []
    for line in lines[1:]:
        cut = [line[s:(starts[k + 1] if k + 1 < len(starts) else None)].strip() for k, s in enumerate(starts)]
        split = re.split(r"  +", line.strip())
        if cut != split:
            bad.append(line)
        rows.append(dict(zip(names, cut)))
    return names, rows, bad


os.umask(0o022)
tmp = tempfile.mkdtemp(prefix="bnfold-jobs-")
try:
    demo = os.path.join(tmp, "demo.onnx")
    nothing = os.path.join(tmp, "nothing.onnx")
    mixed = os.path.join(tmp, "mixed.onnx")
    shutil.copy(fixture("demo.onnx"), demo)
    shutil.copy(fixture("nothing_to_fold.onnx"), nothing)
    shutil.copy(fixture("conv_bn_mixed.onnx"), mixed)
    missing = os.path.join(tmp, "missing.onnx")
    before = tree(tmp)

    # ------------------------------------------------------------ --check
    rc, out, err = run(["--check", demo])
    lines = [l for l in err.splitlines() if ": foldable " in l and "<- BatchNormalization" in l]
    check(rc == 3, "--check exits 3 when a BN would fold", "exit %d: %s" % (rc, err))
    check(sorted(re.findall(r"BatchNormalization '([^']*)'", "\n".join(lines))) == sorted(bn_names(demo)) and
          all(l.startswith(demo + ": foldable Conv '") for l in lines),
          "--check names file, layer and BN of each foldable BN on stderr", err)
    check(out == "", "--check prints nothing on stdout", out)
    check(re.search(r"bnfold: .*demo\.onnx: foldable 3 of 3 BatchNormalization", err), "--check summary line", err)

    rc, out, err = run(["--check", nothing])
    check(rc == 0 and "foldable 0 of 0" in err, "--check exits 0 when nothing would fold", "exit %d: %s" % (rc, err))
    rc, out, err = run(["--check", mixed])
    check(rc == 3 and len(re.findall(r": foldable Conv ", err)) == 1, "--check on a model with folds and skips lists only the fold",
          "exit %d: %s" % (rc, err))
    rc, out, err = run(["--check", "-v", mixed])
    check(rc == 3 and re.search(r"mixed\.onnx: skipped BatchNormalization .*: bn_before_conv_with_padding: ", err) and
          re.search(r": layer_output_is_graph_output: ", err), "--check -v also lists skips with their reason", err)
    rc, out, err = run(["--check", "-q", demo])
    check(rc == 3 and out == "" and err == "", "--check -q is silent and keeps exit 3", "exit %d: %r %r" % (rc, out, err))
    rc, out, err = run(["--check", "-"], stdin=open(demo, "rb").read())
    check(rc == 3 and err.startswith("-: foldable "), "--check reads stdin", "exit %d: %s" % (rc, err))

    folded = os.path.join(tmp, "demo.folded.onnx")
    rc, _, err = run([demo, "-o", folded])
    rc2, _, err2 = run(["--check", folded])
    check(rc == 0 and rc2 == 0, "a folded model passes --check", err + err2)
    os.unlink(folded)

    rc, out, err = run(["--check", nothing, demo, mixed])
    check(rc == 3 and err.count(": foldable Conv") == 4, "--check over several files: exit 3, every foldable BN listed", err)
    check(re.search(r"bnfold: 3 files: foldable 4 of 6 BatchNormalization, in 2 files$", err, re.M),
          "--check totals line over several files", err)
    rc, out, err = run(["--check", nothing, nothing])
    check(rc == 0, "--check over several clean files exits 0", err)
    rc, out, err = run(["--check", demo, missing, nothing])
    check(rc == 1 and "missing.onnx: cannot open" in err and err.count(": foldable Conv") == 3 and
          "nothing.onnx: foldable 0" in err,
          "--check: an unreadable file gives exit 1 (over 3), the others are still checked", err)
    rc, out, err = run(["--check", "--fold-overridable", fixture("conv_bn_overridable.onnx")])
    rc0, _, _ = run(["--check", fixture("conv_bn_overridable.onnx")])
    check(rc0 == 0 and rc == 3, "--check follows --fold-overridable (0 without, 3 with)", "%d %d" % (rc0, rc))

    # The gate agrees with the hand-written expectations of every fixture.
    disagree = []
    for name, fx in sorted(EXPECTED.items()):
        if fx.get("exit", 0) != 0:
            continue
        rc, _, err = run(["--check"] + fx.get("args", []) + [fixture(name)])
        want = 3 if fx["folded"] else 0
        if rc != want:
            disagree.append("%s: exit %d, want %d" % (name, rc, want))
    check(not disagree, "--check exit code matches testdata/expected.json for every fixture", disagree)

    # reports from --check
    rep = os.path.join(tmp, "check.json")
    rc, _, err = run(["--check", demo, "--report", rep])
    doc, errs = report_doc(rep)
    r = doc["inputs"][0] if doc["inputs"] else {}
    check(rc == 3 and not errs and doc["job"] == "check" and len(doc["inputs"]) == 1 and r["output"] is None and
          r["counts"]["folded"] == 3 and len(r["fusions"]) == 3,
          "--check --report: one entry, valid, output null, fusions that would happen", errs or json.dumps(r)[:300])
    rc, out, err = run(["--check", demo, "--report", "-"])
    try:
        r = json.loads(out)
        ok = rc == 3 and not schema_errors(r) and r["inputs"][0]["input"] == demo
    except ValueError as e:
        ok, err = False, str(e)
    check(ok, "--check --report - puts only the JSON on stdout", out[:200] + err)
    os.unlink(rep)
    rc, _, err = run(["--check", demo, missing, mixed, "--report", rep])
    doc, errs = report_doc(rep)
    check(rc == 1 and not errs and [o["input"] for o in doc["inputs"]] == [demo, missing, mixed] and
          doc["inputs"][1].get("error", {}).get("code") == "io_error" and doc["totals"]["failed"] == 1,
          "--check --report over several files: one valid document, an entry per file, the missing one an error",
          errs or [o["input"] for o in doc["inputs"]])
    os.unlink(rep)
    rc, _, err = run(["--check", demo, "--report", os.path.join(tmp, "no", "dir", "r.json")])
    check(rc == 1 and "cannot create a file in" in err and ": foldable Conv" in err,
          "--check: a report that cannot be written gives exit 1 (over 3)", "exit %d: %s" % (rc, err))
    rc, _, err = run(["--check", demo, nothing, "--report", nothing])
    check(rc == 1 and "refusing to write the report over the input" in err, "--report over an input is refused",
          "exit %d: %s" % (rc, err))
    check(tree(tmp) == before, "--check wrote no file", sorted(set(tree(tmp)) ^ set(before)))

    # ------------------------------------------------------------- --list
    rc, out, err = run(["--list", demo])
    names, rows, bad = parse_table(out)
    check(rc == 0 and names == COLUMNS, "--list header has the documented columns", out[:200])
    check(not bad, "--list columns are aligned", bad)
    check([r["NODE"] for r in rows] == bn_names(demo), "--list has one row per BN, in model order",
          [r["NODE"] for r in rows])
    check(all(r["ACTION"] == "fold" and r["REASON"] == "-" and r["PATTERN"] == "conv_bn" and r["DTYPE"] == "float32"
              and r["CHANNELS"] == "8" for r in rows), "--list fold rows: pattern, channels, dtype, action", out)
    m = onnx.load(demo)
    producer = {o: n for n in m.graph.node for o in n.output}
    want_layers = [producer[n.input[0]].name for n in m.graph.node if n.op_type == "BatchNormalization"]
    check([r["LAYER"] for r in rows] == want_layers, "--list LAYER is the Conv feeding each BN", out)
    check(re.search(r"demo\.onnx: foldable 3 of 3", err), "--list summary on stderr", err)

    rc_d, out_d, _ = run(["--dry-run", demo])
    rc_l, out_l, _ = run(["-l", demo])
    check(rc_d == 0 and out_d == out and rc_l == 0 and out_l == out, "--dry-run and -l are --list")

    rc, out, err = run(["--list", mixed])
    names, rows, bad = parse_table(out)
    want = EXPECTED["conv_bn_mixed.onnx"]
    skips = {}
    for r in rows:
        if r["ACTION"] == "skip":
            skips[r["REASON"]] = skips.get(r["REASON"], 0) + 1
    check(rc == 0 and not bad and sum(r["ACTION"] == "fold" for r in rows) == want["folded"] and skips == want["skipped"] and
          all(r["PATTERN"] == "-" and r["CHANNELS"] == "-" and r["DTYPE"] == "-" for r in rows if r["ACTION"] == "skip"),
          "--list skip rows carry the reason code (expected.json)", out)

    # every fixture: the table's fold/skip counts and reasons are the hand-written ones
    disagree = []
    for name, fx in sorted(EXPECTED.items()):
        if fx.get("exit", 0) != 0:
            continue
        rc, out, err = run(["--list"] + fx.get("args", []) + [fixture(name)])
        try:
            _, rows, bad = parse_table(out)
        except (ValueError, IndexError) as e:
            disagree.append("%s: %s" % (name, e))
            continue
        # Mul/Add next to a layer, folded or not, get rows of their own
        names = bn_names(fixture(name))
        bn_rows = [r for r in rows if r["NODE"] in names]
        other = [r for r in rows if r["NODE"] not in names]
        skips, aff_skips = {}, {}
        for r in rows:
            if r["ACTION"] == "skip":
                d = skips if r["NODE"] in names else aff_skips
                d[r["REASON"]] = d.get(r["REASON"], 0) + 1
        folds = sum(r["ACTION"] == "fold" for r in bn_rows)
        affine = sum(r["ACTION"] == "fold" for r in other)
        if rc != 0 or bad or folds != fx["folded"] or affine != fx.get("affine_folded", 0) or \
                skips != fx["skipped"] or aff_skips != fx.get("affine_skipped", {}) or \
                [r["NODE"] for r in bn_rows] != names:
            disagree.append("%s: exit %d, folds %d, Mul/Add %d, skips %s, Mul/Add left %s, misaligned %s" % (
                name, rc, folds, affine, skips, aff_skips, bad))
    check(not disagree, "--list agrees with testdata/expected.json and the model for every fixture", disagree)

    rc, out, err = run(["--list", fixture("conv_bn_empty_names.onnx")])
    _, rows, _ = parse_table(out)
    check(rows and [(r["LAYER"], r["NODE"]) for r in rows] ==
          [("(unnamed Conv, output conv1_out)", "(unnamed BatchNormalization, output bn1_out)"),
           ("(unnamed Conv, output conv2_out)", "(unnamed BatchNormalization, output Y)")],
          "--list shows unnamed nodes by op type and output (the layer's own output, before the fold)", out)

    rc, out, err = run(["--list", "-v", demo])
    names, rows, bad = parse_table(out)
    check(rc == 0 and names == COLUMNS + ["DETAILS"] and not bad and
          all(re.search(r"graph '.*', output '.*', Conv, epsilon 1e-05, weight '.*', bias '.*'", r["DETAILS"]) for r in rows),
          "--list -v adds a DETAILS column per fusion", out)
    rc, out, err = run(["--list", "-v", mixed])
    _, rows, _ = parse_table(out)
    check(all(": " in r["DETAILS"] for r in rows if r["ACTION"] == "skip"), "--list -v gives the skip message", out)
    rc, out, err = run(["--list", "-q", demo])
    check(rc == 0 and out == "" and err == "", "--list -q prints nothing", out + err)

    rc, out, err = run(["--list", demo, missing, nothing])
    blocks = out.split("\n\n")
    check(rc == 1 and len(blocks) == 2 and blocks[0].startswith(demo + ":\nLAYER") and
          blocks[1].startswith(nothing + ":\nLAYER") and "missing.onnx: cannot open" in err,
          "--list over several files: a FILE: heading per table, failures on stderr, exit 1", out + err)

    rep = os.path.join(tmp, "list.json")
    rc, _, _ = run(["--list", "-q", mixed, "--report", rep])
    doc, errs = report_doc(rep)
    r = doc["inputs"][0] if doc["inputs"] else {}
    check(rc == 0 and not errs and doc["job"] == "list" and r["output"] is None and r["counts"]["skipped"] == 2,
          "--list --report writes a valid report", errs)
    os.unlink(rep)
    check(tree(tmp) == before, "--list wrote no file", sorted(set(tree(tmp)) ^ set(before)))

    # ------------------------------------------------- several inputs, writing
    d = os.path.join(tmp, "multi")
    os.mkdir(d)
    a, b, c = os.path.join(d, "a.onnx"), os.path.join(d, "b.onnx"), os.path.join(d, "c.onnx")
    shutil.copy(demo, a)
    shutil.copy(nothing, b)
    shutil.copy(nothing, c)
    # three: two positional models alone read as 'bnfold IN OUT' (test_habits.py)
    rc, _, err = run([a, b, c])
    check(rc == 0 and bn_count(os.path.join(d, "a.folded.onnx")) == 0 and
          sha(os.path.join(d, "b.folded.onnx")) == sha(b), "several inputs: each to NAME.folded.onnx", err)
    check(re.search(r"^bnfold: 3 files: folded 3 of 3 BatchNormalization$", err, re.M), "totals line after several inputs", err)
    # a.folded.onnx... are skipped as bnfold outputs; the others exist
    rc, _, err = run([a, b, c] + [os.path.join(d, x + ".folded.onnx") for x in "abc"])
    check(rc == 1 and err.count("already exists; use -f") == 3 and err.count("skipped: already a bnfold output") == 3,
          "several inputs: existing outputs refused without -f", err)
    rc, _, err = run(["-f", a, b, c])
    check(rc == 0, "several inputs: -f replaces them", err)
    os.unlink(c)

    od = os.path.join(tmp, "out")
    os.mkdir(od)
    rep = os.path.join(tmp, "multi.json")
    rc, _, err = run(["-O", od, a, missing, b, "--report", rep])
    check(rc == 1 and sorted(os.listdir(od)) == ["a.onnx", "b.onnx"] and bn_count(os.path.join(od, "a.onnx")) == 0,
          "-O DIR: same base names in DIR; a failing input does not stop the others (exit 1)", err)
    doc, errs = report_doc(rep)
    check(not errs and [(o["input"], o.get("output"), "error" in o) for o in doc["inputs"]] ==
          [(a, os.path.join(od, "a.onnx"), False), (missing, None, True), (b, os.path.join(od, "b.onnx"), False)],
          "several inputs: the report is one valid document with an entry per input, the failed one included",
          errs or doc["inputs"])
    rc, _, err = run(["-O", od + "/", a])
    check(rc == 1 and "already exists; use -f to replace it" in err, "-O DIR: an existing file is kept without -f", err)
    rc, _, err = run(["-f", "-O", od + "/", a])
    check(rc == 0 and re.search(r"-> %s: folded" % re.escape(os.path.join(od, "a.onnx")), err),
          "-O DIR/ with -f: replaced, no doubled slash in the name", err)
    rc, _, err = run(["-O", d, a])
    check(rc == 1 and "refusing to overwrite the input" in err and sha(a) == sha(demo), "-O to the input's own directory is refused", err)
    rc, _, err = run(["-O", os.path.join(tmp, "no-such-dir", "sub"), a])
    check(rc == 1 and "no-such-dir/sub: cannot create the output directory: No such file or directory" in err and
          not os.path.exists(os.path.join(tmp, "no-such-dir")),
          "-O to a directory whose parent is missing is an error", err)
    rc, _, err = run(["-O", a, b])
    check(rc == 1 and "not a directory" in err, "-O to a file is an error", err)

    i1, i2 = os.path.join(d, "i1.onnx"), os.path.join(d, "i2.onnx")
    shutil.copy(demo, i1)
    shutil.copy(mixed, i2)
    rc, _, err = run(["--in-place", i1, i2])
    check(rc == 0 and bn_count(i1) == 0 and bn_count(i2) == 2, "--in-place with several inputs", err)
    leftovers = [f for f in os.listdir(d) + os.listdir(od) if ".bnfold-" in f]
    check(not leftovers, "no temp files left", leftovers)

    # ------------------------------------------------------------ usage errors
    usage = [
        (["--check", "--list", demo], r"--check and --list cannot be used together"),
        (["--check", demo, "-o", os.path.join(tmp, "x.onnx")], r"--check writes no model; -o cannot"),
        (["--check", "-O", od, demo], r"--check writes no model; -O cannot"),
        (["--list", "--in-place", demo], r"--list writes no model; --in-place cannot"),
        (["--list", demo, "--report", "-"], r"the table and the report cannot both go to stdout"),
        (["-o", os.path.join(tmp, "x.onnx"), "-O", od, demo], r"-o and -O cannot be used together"),
        (["--in-place", "-O", od, demo], r"--in-place and -O cannot be used together"),
        (["-O", od, "-"], r"-O needs input files, not stdin"),
        (["-", "-"], r"stdin \('-'\) can be read only once"),
        (["--check", "-", "-"], r"stdin \('-'\) can be read only once"),
        ([demo, "-"], r"stdin \('-'\) cannot be one of several inputs"),
        ([a, demo], None),  # different names: fine (checked below)
        (["-O", od, a, os.path.join(tmp, "a.onnx")], r"would both be written to"),
        ([demo, demo, demo], r"would both be written to"),
        ([demo, demo], r"two models given without -o"),
        (["-O"], r"option '-O' needs an argument"),
        (["--output-dir"], r"option '--output-dir' needs an argument"),
        (["--check"], r"no input file given"),
    ]
    shutil.copy(demo, os.path.join(tmp, "a.onnx"))
    snapshot = tree(tmp)
    for argv, pat in usage:
        if pat is None:
            continue
        rc, out, err = run(argv)
        lines = [l for l in err.splitlines() if l.strip()]
        check(rc == 2 and re.search(pat, err) and lines[0].startswith("bnfold: error: ") and
              lines[-1] == "Try 'bnfold --help' for more information." and len(lines) == 2,
              "usage error, exit 2: bnfold %s" % " ".join(os.path.basename(x) if x.startswith(tmp) else x for x in argv),
              "exit %d: %s" % (rc, err))
    check(tree(tmp) == snapshot, "usage errors write nothing", sorted(set(tree(tmp)) ^ set(snapshot)))
finally:
    shutil.rmtree(tmp, ignore_errors=True)

sys.exit(tap.emit())
