#!/usr/bin/python3
"""Constants the model computes from others, end to end.  Prints TAP.

Models built here with onnx.helper:
- Conv -> Mul(Unsqueeze(k [C], axes 1,2)) -> Add(Unsqueeze(b [C])): both
  fold (conv_mul, conv_add), opset 11 (axes attribute) and 13 (axes input);
- a Conv whose weight is Sub(W1, W2) -> BatchNormalization: folds (conv_bn)
  into a new weight.
Each output: the computing nodes and the initializers they read are gone,
onnx.checker passes, and onnxruntime agrees with the input
(tests/oracle/equiv.mjs).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import bnftest  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--bnfold", required=True)
ap.add_argument("--equiv", required=True)
ap.add_argument("--node-modules", required=True)
args = ap.parse_args()
tap = bnftest.Tap()
check = tap.check

try:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError as e:
    print("1..0 # SKIP %s" % e)
    sys.exit(0)

C = 4


def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name)


def conv_affine(opset):
    rng = np.random.default_rng(opset)
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1])]
    inits = [init("W", rng.standard_normal((C, 3, 3, 3))), init("B", rng.standard_normal(C)),
             init("k", rng.uniform(0.5, 2, C)), init("b", rng.standard_normal(C))]
    for src, out in (("k", "ku"), ("b", "bu")):
        if opset >= 13:
            nodes.append(helper.make_node("Unsqueeze", [src, "axes12"], [out]))
        else:
            nodes.append(helper.make_node("Unsqueeze", [src], [out], axes=[1, 2]))
    if opset >= 13:
        inits.append(numpy_helper.from_array(np.array([1, 2], dtype=np.int64), "axes12"))
    nodes += [helper.make_node("Mul", ["c", "ku"], ["m"]), helper.make_node("Add", ["m", "bu"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, C, 8, 8])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=7)


def conv_sub_weight():
    rng = np.random.default_rng(5)
    nodes = [helper.make_node("Sub", ["W1", "W2"], ["W"]),
             helper.make_node("Conv", ["x", "W"], ["c"]),
             helper.make_node("BatchNormalization", ["c", "s", "bb", "mu", "var"], ["y"])]
    inits = [init("W1", rng.standard_normal((C, 3, 1, 1))), init("W2", rng.standard_normal((C, 3, 1, 1))),
             init("s", rng.uniform(0.5, 2, C)), init("bb", rng.standard_normal(C)),
             init("mu", rng.standard_normal(C)), init("var", rng.uniform(0.5, 2, C))]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, C, 8, 8])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=7)


def equiv(orig, folded):
    env = dict(os.environ, NODE_PATH=args.node_modules)
    p = subprocess.run(["node", args.equiv, orig, folded], capture_output=True, env=env, timeout=300)
    return p.returncode == 0, (p.stdout + p.stderr).decode(errors="replace")[-1500:]


def fold(work, name, model, want_patterns, gone_nodes, gone_inits):
    src, out, rep = (os.path.join(work, name + s) for s in (".onnx", ".folded.onnx", ".json"))
    onnx.save(model, src)
    r = bnftest.run_checked(tap, args.bnfold, [src, "-o", out, "--report", rep])
    if not check(r.rc == 0, "%s: bnfold exits 0" % name, r.diag()):
        return
    report = json.load(open(rep))["inputs"][0]
    patterns = sorted(f["pattern"] for f in report["fusions"] + report["affine_fusions"])
    check(patterns == sorted(want_patterns), "%s: folds as %s" % (name, ", ".join(want_patterns)),
          json.dumps(report)[:1500])
    m = onnx.load(out)
    ops = [n.op_type for n in m.graph.node]
    names = [t.name for t in m.graph.initializer]
    check(not set(gone_nodes) & set(ops), "%s: no %s node is left" % (name, "/".join(gone_nodes)), str(ops))
    check(not set(gone_inits) & set(names), "%s: initializers %s are gone" % (name, ", ".join(gone_inits)), str(names))
    try:
        onnx.checker.check_model(m)
        check(True, "%s: onnx.checker passes on the output" % name)
    except Exception as e:  # noqa: BLE001 - the checker's verdict is the test
        check(False, "%s: onnx.checker passes on the output" % name, str(e))
    ok, why = equiv(src, out)
    check(ok, "%s: onnxruntime gives the same outputs" % name, why)


work = tempfile.mkdtemp(prefix="bnfold-consteval-")
try:
    for opset in (11, 13):
        gone = ["k", "b"] + (["axes12"] if opset >= 13 else [])
        fold(work, "unsqueeze%d" % opset, conv_affine(opset), ["conv_mul", "conv_add"], ["Unsqueeze", "Mul", "Add"], gone)
    fold(work, "subweight", conv_sub_weight(), ["conv_bn"], ["Sub", "BatchNormalization"], ["W1", "W2"])
finally:
    shutil.rmtree(work, ignore_errors=True)
sys.exit(tap.emit())
