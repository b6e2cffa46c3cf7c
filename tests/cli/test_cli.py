#!/usr/bin/python3
"""End-to-end CLI cases: exit code, stderr, files written or not.  Prints TAP.

Each case runs the real binary; expected outcomes are written here by hand.
"""
import argparse
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile

import onnx
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import bnftest  # noqa: E402
from bnftest import sha  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--bnfold", required=True)
ap.add_argument("--testdata", required=True)
args = ap.parse_args()

BNFOLD = os.path.abspath(args.bnfold)
DEMO = os.path.join(os.path.abspath(args.testdata), "demo.onnx")
NOTHING = os.path.join(os.path.abspath(args.testdata), "nothing_to_fold.onnx")
tap = bnftest.Tap()
check = tap.check


def run(argv, stdin=None, cwd=None, env=None):
    r = bnftest.run_checked(tap, BNFOLD, argv, stdin=stdin, cwd=cwd, env=env, timeout=60)
    return r.rc, r.out, r.err


def bn_count(model):
    return sum(1 for n in model.graph.node if n.op_type == "BatchNormalization")


def case(desc, argv, code, err_re=None, stdin=None, cwd=None, must_not_exist=()):
    rc, out, err = run(argv, stdin=stdin, cwd=cwd)
    diag = f"exit {rc}, stderr: {err.strip()[:300]}"
    ok = rc == code
    if err_re is not None:
        ok = ok and re.search(err_re, err) is not None
        lines = [l for l in err.splitlines() if l.strip()]
        if code != 0:  # a failure is one clear line
            ok = ok and len(lines) <= 3 and lines[0].startswith("bnfold: error: ")
    for p in must_not_exist:
        if os.path.exists(p):
            ok = False
            diag += f"; {p} was written"
    check(ok, desc, diag)
    return rc, out, err


def debris(d):
    return [f for f in os.listdir(d) if ".bnfold-" in f]


os.umask(0o022)
tmp = tempfile.mkdtemp(prefix="bnfold-cli-")
try:
    out = os.path.join(tmp, "out.onnx")
    demo = os.path.join(tmp, "demo.onnx")
    shutil.copy(DEMO, demo)
    demo_sha = sha(demo)

    # --- usage errors: exit 2 ---
    case("no arguments is a usage error", [], 2, r"no input file")
    case("unknown option is a usage error", ["--frobnicate", demo], 2, r"unknown option '--frobnicate'")
    case("-o with two inputs is a usage error", [demo, NOTHING, "-o", out], 2, r"-o takes one input")
    case("--in-place with -o is a usage error", ["--in-place", demo, "-o", out], 2, r"cannot be used together")
    case("model and report both on stdout is a usage error", [demo, "-o", "-", "--report", "-"], 2, r"both go to stdout")

    # --- bad input: exit 1, one line naming the file, nothing written ---
    case("missing input file", [os.path.join(tmp, "nope.onnx"), "-o", out], 1, r"nope\.onnx: cannot open: No such file", must_not_exist=[out])
    empty = os.path.join(tmp, "empty.onnx")
    open(empty, "wb").close()
    case("empty input file", [empty, "-o", out], 1, r"empty\.onnx: file is empty", must_not_exist=[out])
    case("directory as input", [tmp, "-o", out], 1, r"is a directory", must_not_exist=[out])
    text = os.path.join(tmp, "text.onnx")
    with open(text, "w") as f:
        f.write("this is not a model\n" * 10)
    case("text file as input", [text, "-o", out], 1, r"text\.onnx: not an ONNX model", must_not_exist=[out])
    data = open(DEMO, "rb").read()
    for frac in (0.3, 0.5, 0.97):
        trunc = os.path.join(tmp, f"trunc{int(frac*100)}.onnx")
        with open(trunc, "wb") as f:
            f.write(data[: int(len(data) * frac)])
        case(f"model truncated to {int(frac*100)}%", [trunc, "-o", out], 1, r"trunc\d+\.onnx: not an ONNX model", must_not_exist=[out])
    # a Conv weight whose raw_data is shorter than its dims say
    m = onnx.load(DEMO)
    conv = next(n for n in m.graph.node if n.op_type == "Conv")
    w = next(t for t in m.graph.initializer if t.name == conv.input[1])
    if not w.raw_data:
        w.raw_data = onnx.numpy_helper.to_array(w).tobytes()
        del w.float_data[:]
    w.raw_data = w.raw_data[:-4]
    bad = os.path.join(tmp, "badlen.onnx")
    onnx.save(m, bad)
    case("weight raw_data shorter than its dims", [bad, "-o", out], 1,
         re.escape(f"badlen.onnx: tensor '{w.name}'") + r".*raw_data has", must_not_exist=[out])
    if os.geteuid() != 0:
        unread = os.path.join(tmp, "unreadable.onnx")
        shutil.copy(DEMO, unread)
        os.chmod(unread, 0)
        case("unreadable input", [unread, "-o", out], 1, r"Permission denied", must_not_exist=[out])
    case("output directory missing", [demo, "-o", os.path.join(tmp, "no", "such", "dir", "x.onnx")], 1,
         r"cannot create a file in")
    check(not debris(tmp), "no temp files left after failures", str(debris(tmp)))

    # --- refusing to overwrite ---
    case("output equal to input is refused", [demo, "-o", demo], 1, r"refusing to overwrite the input")
    check(sha(demo) == demo_sha, "input unchanged after refusal")
    link = os.path.join(tmp, "alias.onnx")
    os.symlink(demo, link)
    case("output that is a symlink to the input is refused", [demo, "-o", link], 1, r"refusing to overwrite the input")
    os.unlink(link)

    # --- success paths ---
    rep = os.path.join(tmp, "rep.json")
    rc, _, err = case("fold demo with report", [demo, "-o", out, "--report", rep], 0)
    check(sha(demo) == demo_sha, "input file untouched by a fold")
    check(re.search(r"folded 3 of 3 BatchNormalization, skipped 0; nodes 12 -> 9", err), "one-line summary on stderr", err)
    fm = onnx.load(out)
    check(bn_count(fm) == 0, "folded demo has no BN")
    doc = json.load(open(rep))
    r = doc["inputs"][0]
    check(r["counts"] == {"bn_found": 3, "folded": 3, "affine_folded": 0, "skipped": 0, "affine_skipped": 0, "nodes_before": 12, "nodes_after": 9, "graph_inputs_removed": 0},
          "report counts", json.dumps(r["counts"]))
    check(sorted(f["bn"] for f in r["fusions"]) == ["bn1", "bn2", "downsample_bn"] and
          all(f["pattern"] == "conv_bn" and f["layer_op"] == "Conv" and f["dtype"] == "float32" for f in r["fusions"]),
          "report lists each fusion with names, pattern and dtype", json.dumps(r["fusions"])[:400])
    check(r["input"] == demo and r["output"] == out and doc["tool"]["name"] == "bnfold", "report names input and output")
    check(stat.S_IMODE(os.stat(out).st_mode) == 0o644, "a new output file gets 0666 minus umask 022",
          oct(stat.S_IMODE(os.stat(out).st_mode)))

    case("-q prints nothing", ["-q", demo, "-o", out], 0)
    rc, _, err = run(["-q", demo, "-o", out])
    check(rc == 0 and err == "", "-q is silent", err)
    rc, _, err = run(["-v", demo, "-o", out])
    check(rc == 0 and len(re.findall(r"^  folded ", err, re.M)) == 3, "-v lists each fusion", err)

    # what shape inference found, per row: written by hand from the fixtures
    rc, so, err = run(["--list", "-v", os.path.join(args.testdata, "mlp_bn_deep.onnx")])
    so = so.decode()
    check(rc == 0 and "shapes: layer input [4,6], layer output [4,8], input [4,8], parameter [8]" in so and
          "shapes: layer input [4,5], layer output [4,3], input [4,3], parameter [3]" in so,
          "--list -v shows the shapes of the layer's input and output and of the BN's input and parameter", so)
    rc, so, err = run(["--list", "-v", os.path.join(args.testdata, "matmul_reshape_moves_channel_bn.onnx")])
    so = so.decode()
    check(rc == 0 and re.search(r"channel_axis_mismatch .*splits or merges the 8 channels; shapes: layer input "
                                r"\[4,6\], layer output \[4,8\], input \[2,8,2\], parameter \[8\]", so),
          "--list -v says why a chain does not fold and what it inferred", so)

    rc, so, err = run([demo, "-o", "-"])
    ok = rc == 0
    try:
        ok = ok and bn_count(onnx.load_from_string(so)) == 0
    except Exception as e:  # noqa: BLE001
        ok = False
        err += str(e)
    check(ok, "-o - writes the folded model to stdout", err[:200])
    rc, so, err = run([demo, "-o", out, "--report", "-"])
    try:
        ok = rc == 0 and json.loads(so)["inputs"][0]["counts"]["folded"] == 3
    except Exception:  # noqa: BLE001
        ok = False
    check(ok, "--report - writes JSON to stdout", so[:200])
    rc, so, err = run(["-", "-o", out], stdin=open(DEMO, "rb").read())
    check(rc == 0 and bn_count(onnx.load(out)) == 0, "input - reads stdin", err)

    # default output name and --force
    d2 = os.path.join(tmp, "d2")
    os.mkdir(d2)
    shutil.copy(DEMO, os.path.join(d2, "net.onnx"))
    case("default output is NAME.folded.onnx", ["net.onnx"], 0, cwd=d2)
    check(os.path.exists(os.path.join(d2, "net.folded.onnx")), "net.folded.onnx exists")
    case("default output is not replaced without -f", ["net.onnx"], 1, r"already exists; use -f", cwd=d2)
    case("-f replaces the default output", ["-f", "net.onnx"], 0, cwd=d2)

    # in place
    inpl = os.path.join(tmp, "inplace.onnx")
    shutil.copy(DEMO, inpl)
    ino = os.stat(inpl).st_ino
    case("--in-place replaces the input", ["--in-place", inpl], 0)
    check(bn_count(onnx.load(inpl)) == 0 and os.stat(inpl).st_ino != ino, "--in-place wrote a new file over the input by rename")

    # nothing to fold: byte-identical
    case("model without BN", [NOTHING, "-o", out], 0)
    check(sha(out) == sha(NOTHING), "nothing to fold gives a byte-identical copy")

    # special outputs are written into, never replaced
    fifo = os.path.join(tmp, "fifo")
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", fifo], stdout=subprocess.PIPE)
    rc, _, err = run([demo, "-o", fifo])
    got = reader.communicate(timeout=30)[0]
    check(rc == 0 and stat.S_ISFIFO(os.stat(fifo).st_mode), "FIFO output stays a FIFO", err)
    check(bn_count(onnx.load_from_string(got)) == 0, "model arrives through the FIFO")
    target = os.path.join(tmp, "target.onnx")
    open(target, "wb").close()
    slink = os.path.join(tmp, "slink.onnx")
    os.symlink(target, slink)
    case("output through a symlink", [demo, "-o", slink], 0)
    check(os.path.islink(slink) and bn_count(onnx.load(target)) == 0, "symlink kept, its target replaced")
    check(not debris(tmp), "no temp files left after successes", str(debris(tmp)))

    rc, so, _ = run(["--version"])
    check(rc == 0 and re.match(rb"bnfold \d+\.\d+\.\d+\n$", so), "--version", so)
    rc, so, _ = run(["--help"])
    helptext = so.decode()
    flags = ["--output", "--report", "--fold-overridable", "--in-place", "--force", "--quiet", "--verbose", "--version", "--help"]
    missing = [f for f in flags if f not in helptext]
    check(rc == 0 and not missing, "--help mentions every flag", f"missing {missing}")
finally:
    shutil.rmtree(tmp, ignore_errors=True)

# A weight folded without the scan first (deferred) that overflows late in
# the model: into a file the fold is taken back and done again with the
# scan; into stdout nothing can be taken back, so the scan comes first and
# stdout gets the same bytes as the file, once.
import numpy as np  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

work = tempfile.mkdtemp(prefix="bnfold-late-overflow-")
try:
    c, k = 600, 1000  # 2.4 MB of weight: several output buffers before the last channel
    w = np.full((c, k, 1, 1), 0.5, np.float32)
    w[-1] = 3.0e38
    scale = np.ones(c, np.float32)
    scale[-1] = 10.0
    inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(scale, "s"),
             numpy_helper.from_array(np.zeros(c, np.float32), "b"), numpy_helper.from_array(np.zeros(c, np.float32), "m"),
             numpy_helper.from_array(np.ones(c, np.float32), "v")]
    g = helper.make_graph([helper.make_node("Conv", ["x", "W"], ["y"], name="conv"),
                           helper.make_node("BatchNormalization", ["y", "s", "b", "m", "v"], ["z"], name="bn")],
                          "late", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, k, 2, 2])],
                          [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, c, 2, 2])], inits)
    late = os.path.join(work, "late.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), late)
    as_file = os.path.join(work, "late.out.onnx")
    rc_f, _, err_f = run(["-q", "--no-verify", "--report", os.path.join(work, "r.json"), late, "-o", as_file])
    rc_s, out_s, err_s = run(["-q", "--no-verify", late, "-o", "-"])
    rep = json.load(open(os.path.join(work, "r.json")))["inputs"][0] if rc_f == 0 else {}
    check(rc_f == 0 and [s["reason"] for s in rep.get("skipped", [])] == ["overflow"],
          "a weight that overflows late: skipped as overflow when written to a file", err_f)
    check(rc_s == 0 and os.path.exists(as_file) and out_s == open(as_file, "rb").read(),
          "... and stdout gets the same bytes as the file, once (%d bytes)" % len(out_s), err_s)
finally:
    shutil.rmtree(work, ignore_errors=True)

sys.exit(tap.emit())
