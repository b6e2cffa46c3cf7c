#!/usr/bin/python3
"""End-to-end cases of --verify / --no-verify / --tolerance: exit codes, the
error line, what is written and the report.  Prints TAP.

The expected outcomes are written here by hand.  That a wrong fold is caught
is shown by the unit tests (tests/unit/test_verify.c), which hand verify.c
deliberately wrong plans; here --tolerance 0 makes the real binary meet a
failing check, since no fold of float32 values is free of rounding.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import bnftest  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--bnfold", required=True)
ap.add_argument("--testdata", required=True)
args = ap.parse_args()

BNFOLD = os.path.abspath(args.bnfold)
TESTDATA = os.path.abspath(args.testdata)
DEMO = os.path.join(TESTDATA, "demo.onnx")
tap = bnftest.Tap()
check = tap.check


def run(argv, stdin=None, cwd=None, env=None):
    r = bnftest.run_checked(tap, BNFOLD, argv, stdin=stdin, cwd=cwd, env=env, timeout=60)
    return r.rc, r.out, r.err


def load_entry(path):
    """The report's only input entry, with the run's options beside it."""
    doc = json.load(open(path))
    return dict(doc["inputs"][0], options=doc["options"])


def unit_roundoff(dtype):
    return {"float32": 2.0 ** -24, "float64": 2.0 ** -53, "float16": 2.0 ** -11, "bfloat16": 2.0 ** -8}[dtype]


tmp = tempfile.mkdtemp(prefix="bnfold-verify-")
try:
    out = os.path.join(tmp, "out.onnx")
    rep = os.path.join(tmp, "rep.json")

    # --- verification is on by default and lands in the report ---
    rc, _, err = run([DEMO, "-o", out, "--report", rep])
    r = load_entry(rep) if rc == 0 else {}
    fus = r.get("fusions", [])
    check(rc == 0 and r.get("options", {}).get("verify") is True and r["options"].get("tolerance") is None,
          "verification is on by default (options.verify true, tolerance null)", err)
    check(len(fus) == 3 and all(f.get("verify", {}).get("ok") is True for f in fus),
          "every fusion carries a passing verify object", json.dumps(fus)[:500])
    # Each fusion: tolerance = 2u + (terms + 8) 2^-52; a faithful float32 fold
    # stays within one unit roundoff; the demo's Convs are 3x3 over 8 or 3
    # input channels (27 or 72 terms), or 1x1 over 3 (3 terms).
    bad = []
    for f in fus:
        v = f["verify"]
        u = unit_roundoff(f["dtype"])
        want_tol = 2 * u + (v["terms"] + 8) * 2.0 ** -52
        if abs(v["tolerance"] - want_tol) > 1e-9 * want_tol:
            bad.append("%s: tolerance %r, expected %r" % (f["bn"], v["tolerance"], want_tol))
        if not 0 < v["max_rel_err"] <= u:
            bad.append("%s: max_rel_err %r not in (0, u = %r]" % (f["bn"], v["max_rel_err"], u))
        if v["outputs"] != 3 * f["channels"]:
            bad.append("%s: %d probe outputs for %d channels, expected 3 each" % (f["bn"], v["outputs"], f["channels"]))
    terms = sorted(f["verify"]["terms"] for f in fus)
    if terms != [3, 27, 72]:
        bad.append("terms %r, expected [3, 27, 72]" % terms)
    check(not bad, "verify numbers: tolerance 2u + (n + 8) 2^-52, 0 < max_rel_err <= u, 3 probes per channel, n from the kernels", bad)
    s = r.get("verify", {})
    check(s.get("checked") == 3 and s.get("failed") == 0 and
          s.get("max_rel_err") == max(f["verify"]["max_rel_err"] for f in fus) and
          s.get("max_abs_err") == max(f["verify"]["max_abs_err"] for f in fus) and 0 < s.get("worst_ratio", 2) <= 1,
          "report verify summary: checked 3, failed 0, the worst errors of the fusions", json.dumps(s))

    # --- -v prints the numbers of each fusion ---
    rc, _, err = run(["-v", DEMO, "-o", out])
    lines = re.findall(r"^  folded .*verify max_rel_err \S+ <= \S+, max_abs_err \S+, \d+ outputs\)$", err, re.M)
    check(rc == 0 and len(lines) == 3, "-v shows max_rel_err, tolerance and max_abs_err per fusion", err)

    # --- --no-verify: no check, no verify objects ---
    rc, _, err = run(["--no-verify", DEMO, "-o", out, "--report", rep])
    r = load_entry(rep) if rc == 0 else {}
    check(rc == 0 and r.get("options", {}).get("verify") is False and "verify" not in r and
          not any("verify" in f for f in r.get("fusions", [])), "--no-verify: report without verify", err)
    rc, _, err = run(["--no-verify", "--verify", DEMO, "-o", out, "--report", rep])
    r = load_entry(rep) if rc == 0 else {}
    check(rc == 0 and r.get("verify", {}).get("checked") == 3, "--verify after --no-verify turns it back on", err)

    # --- --tolerance ---
    rc, _, err = run(["--tolerance", "1e-3", DEMO, "-o", out, "--report", rep])
    r = load_entry(rep) if rc == 0 else {}
    check(rc == 0 and r.get("options", {}).get("tolerance") == 1e-3 and
          all(f["verify"]["tolerance"] == 1e-3 for f in r.get("fusions", [])),
          "--tolerance 1e-3 is used for every fusion and recorded", err)
    for bad_value in ("abc", "-1", "nan", "inf", ""):
        rc, _, err = run(["--tolerance", bad_value, DEMO, "-o", out])
        check(rc == 2 and re.search(r"--tolerance needs a number >= 0", err) and "--help" in err,
              "--tolerance %r is a usage error (exit 2)" % bad_value, err)
    rc, _, err = run([DEMO, "-o", out, "--tolerance"])
    check(rc == 2, "--tolerance without a value is a usage error", err)

    # --- a fusion over its tolerance: exit 4, one line, nothing written ---
    for p in (out, rep):
        if os.path.exists(p):
            os.remove(p)
    rc, so, err = run(["--tolerance", "0", DEMO, "-o", out, "--report", rep])
    lines = [l for l in err.splitlines() if l.strip()]
    check(rc == 4, "a fusion over its tolerance exits 4", "exit %d: %s" % (rc, err))
    check(len(lines) == 1 and re.match(
        r"bnfold: error: .*demo\.onnx: BatchNormalization '\w+' \(output '\w+'\) folded into Conv '\w+' "
        r"fails verification: max_rel_err \S+ > tolerance 0 \(max_abs_err \S+, channel \d+\); "
        r"3 fusions fail \(-v lists them\); nothing written$", lines[0]),
        "one error line naming the BN and the layer, the numbers, and how many fail", err)
    r = load_entry(rep) if os.path.exists(rep) else {}
    check(not os.path.exists(out) and so == b"" and r.get("output", "") is None and
          r.get("error", {}).get("code") == "verify_failed" and r.get("verify", {}).get("failed") == 3,
          "no model written; the report records the failed checks (tests/cli/test_report.py checks it whole)",
          json.dumps(r)[:500])
    check(not [f for f in os.listdir(tmp) if ".bnfold-" in f], "no temp file left", str(os.listdir(tmp)))
    rc, _, err = run(["-v", "--tolerance", "0", DEMO, "-o", out])
    check(rc == 4 and len(re.findall(r"^  not verified  BatchNormalization '(bn1|bn2|downsample_bn)'", err, re.M)) == 3,
          "-v lists every failing fusion", err)
    inpl = os.path.join(tmp, "inplace.onnx")
    shutil.copy(DEMO, inpl)
    before = open(inpl, "rb").read()
    rc, _, err = run(["--in-place", "--tolerance", "0", inpl])
    check(rc == 4 and open(inpl, "rb").read() == before, "--in-place with a failing check leaves the input as it was", err)
    rc, _, err = run(["--no-verify", "--tolerance", "0", DEMO, "-o", out])
    check(rc == 0 and os.path.exists(out), "--no-verify ignores --tolerance", err)

    # --- the same numbers from both builds of verify's sums ---
    # verify.c sums float32 weights in four lanes, with AVX2 where the CPU
    # has it and with baseline vectors elsewhere (BNFOLD_NO_AVX2=1 forces
    # those); the lanes and the order of every operation are the same, so
    # every fixture's report must be identical byte for byte.
    has_avx2 = any(" avx2" in l for l in open("/proc/cpuinfo") if l.startswith("flags")) \
        if os.path.exists("/proc/cpuinfo") else False
    differ, compared, verified = [], 0, 0
    for name in sorted(os.listdir(TESTDATA)):
        if not name.endswith(".onnx"):
            continue
        reps = []
        for env in ({}, {"BNFOLD_NO_AVX2": "1"}):
            path = os.path.join(tmp, "lanes%d.json" % len(reps))
            run(["-q", "--list", "--fold-overridable", "--report", path, os.path.join(TESTDATA, name)], env=env)
            reps.append(open(path, "rb").read() if os.path.exists(path) else b"")
            if os.path.exists(path):
                os.remove(path)
        compared += 1
        try:
            verified += any("verify" in f for f in json.loads(reps[0])["inputs"][0]["fusions"])
        except ValueError:
            pass
        if reps[0] != reps[1]:
            differ.append(name)
    check(verified > 40 and not differ,
          "verify's numbers are the same with and without AVX2: %d reports, %d with verified fusions "
          "(this CPU %s AVX2)" % (compared, verified, "has" if has_avx2 else "lacks"), " ".join(differ))

    # --- large weights: verify splits them into units of work, summed in two
    # sets (by two threads when there are two CPUs; BNFOLD_THREADS=1 makes it
    # one): the same numbers either way, and with the baseline code.
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper
    rng = np.random.default_rng(11)

    def bn(prefix, c):
        return [numpy_helper.from_array(a.astype(np.float32), prefix + n) for n, a in (
            ("s", rng.uniform(0.5, 1.5, c)), ("b", rng.uniform(-1, 1, c)), ("m", rng.uniform(-1, 1, c)),
            ("v", rng.uniform(0.5, 2, c)))]

    def bn_node(x, prefix, y):
        return helper.make_node("BatchNormalization", [x] + [prefix + n for n in "sbmv"], [y])

    inits = [numpy_helper.from_array(rng.standard_normal((512, 256, 3, 3)).astype(np.float32), "cw"),
             numpy_helper.from_array(rng.standard_normal((512, 128, 3, 3)).astype(np.float32), "tw"),
             numpy_helper.from_array(rng.standard_normal((1024, 512)).astype(np.float32), "gw")]
    inits += bn("c", 512) + bn("t", 256) + bn("g", 512)
    nodes = [helper.make_node("Conv", ["x", "cw"], ["c"], pads=[1, 1, 1, 1]), bn_node("c", "c", "cy"),
             helper.make_node("ConvTranspose", ["cy", "tw"], ["t"], group=2), bn_node("t", "t", "ty"),
             helper.make_node("Gemm", ["z", "gw"], ["g"]), bn_node("g", "g", "gy")]
    graph = helper.make_graph(nodes, "units", [
        helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 256, 4, 4]),
        helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, [2, 1024])], [
        helper.make_tensor_value_info("ty", onnx.TensorProto.FLOAT, [1, 256, 6, 6]),
        helper.make_tensor_value_info("gy", onnx.TensorProto.FLOAT, [2, 512])], inits)
    big = os.path.join(tmp, "units.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), big)
    reps = []
    for env in ({}, {"BNFOLD_THREADS": "1"}, {"BNFOLD_NO_AVX2": "1", "BNFOLD_THREADS": "1"}):
        path = os.path.join(tmp, "units%d.json" % len(reps))
        rc, _, _ = run(["-q", "--list", "--report", path, big], env=env)
        reps.append(open(path, "rb").read() if rc == 0 and os.path.exists(path) else b"")
    fus = json.loads(reps[0])["inputs"][0]["fusions"] if reps[0] else []
    check(len(fus) == 3 and all(f.get("verify", {}).get("ok") for f in fus),
          "Conv 512x256x3x3, ConvTranspose 512x128x3x3 (2 groups), Gemm 1024x512: all three fold and verify",
          reps[0][:300])
    check(reps[0] and reps[0] == reps[1] == reps[2],
          "... with the same numbers from one thread or two, and with the baseline code")
    # Writing it, the checks of weights read from the file run beside the
    # writer, after apply: the same numbers as --list's, which come first.
    out_big = os.path.join(tmp, "units_out.onnx")
    rep_big = os.path.join(tmp, "units_fold.json")
    rc, _, err = run([big, "-o", out_big, "--report", rep_big])
    got = [f.get("verify") for f in json.load(open(rep_big))["inputs"][0]["fusions"]] if rc == 0 else None
    check(got is not None and got == [f.get("verify") for f in fus],
          "folding it, each fusion's check gives the numbers --list gives", err)
    # ... and a failing one still writes nothing (the temp file goes)
    os.remove(out_big)
    rc, _, err = run(["--tolerance", "0", big, "-o", out_big])
    check(rc == 4 and not os.path.exists(out_big) and not [f for f in os.listdir(tmp) if ".bnfold-" in f]
          and "fails verification" in err,
          "--tolerance 0 on it: exit 4, nothing written, no temp file", err)

    # --- help and exit status ---
    rc, so, _ = run(["--help"])
    h = so.decode()
    check(rc == 0 and all(x in h for x in ("--verify", "--no-verify", "--tolerance")) and
          re.search(r"4 a fusion failed\s+verification", h), "--help documents the options and exit status 4", h)
finally:
    shutil.rmtree(tmp, ignore_errors=True)

sys.exit(tap.emit())
