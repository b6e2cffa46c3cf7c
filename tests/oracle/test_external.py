#!/usr/bin/python3
"""External data: models whose tensors live in separate files.  Prints TAP.

Small models are made here, at test time, with onnx's own external-data
writer.  Checks: folding keeps the weights external (a new OUTPUT.data
beside the output, the input's files untouched), the folded weights equal
a numpy computation from the original values, onnx.checker and onnxruntime
accept the output and agree with the original, --inline and --no-stream,
--in-place, and refusals (paths leaving the model's folder, past the end of
the file, missing files, stdout without --inline) that write nothing.

    test_external.py --bnfold build/bnfold --equiv tests/oracle/equiv.mjs
"""
import argparse
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import bnftest  # noqa: E402
from bnftest import sha  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--bnfold", required=True)
ap.add_argument("--equiv", required=True)
ap.add_argument("--node-modules")
ap.add_argument("--workdir")
a, _ = ap.parse_known_args()
BNFOLD = os.path.abspath(a.bnfold)
tap = bnftest.Tap()
check = tap.check


def run(argv, cwd=None, stdin=None, env=None):
    r = bnftest.run_checked(tap, BNFOLD, argv, stdin=stdin, cwd=cwd, env=env, timeout=120)
    return r.rc, r.out, r.err


def build(rng):
    """X -> Conv(no bias) -> BN -> Relu -> Conv(bias) -> BN -> Y; returns model and params."""
    p = {}
    p["w1"] = rng.normal(0, 0.5, (6, 3, 3, 3)).astype(np.float32)
    p["w2"] = rng.normal(0, 0.5, (5, 6, 3, 3)).astype(np.float32)
    p["b2"] = rng.normal(0, 0.3, 5).astype(np.float32)
    for k, c in (("1", 6), ("2", 5)):
        p["g" + k] = rng.uniform(0.5, 1.5, c).astype(np.float32)
        p["be" + k] = rng.normal(0, 0.5, c).astype(np.float32)
        p["m" + k] = rng.normal(0, 0.5, c).astype(np.float32)
        p["v" + k] = rng.uniform(0.2, 2.0, c).astype(np.float32)
    inits = [numpy_helper.from_array(v, k) for k, v in p.items()]
    nodes = [
        helper.make_node("Conv", ["X", "w1"], ["c1"], name="conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "g1", "be1", "m1", "v1"], ["bn1"], name="bn1"),
        helper.make_node("Relu", ["bn1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c2", "g2", "be2", "m2", "v2"], ["Y"], name="bn2"),
    ]
    g = helper.make_graph(nodes, "ext", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2, 3, 6, 6])],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2, 5, 6, 6])], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="bnfold-tests")
    m.ir_version = 7
    return m, p


def save_external(model, path, location):
    model = copy.deepcopy(model)  # onnx's writer edits the model it saves
    onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location=location, size_threshold=0)


def expected_weights(p):
    """Folded values computed with numpy in float64 from the originals (independent of bnfold)."""
    out = {}
    for k, w, b in (("1", p["w1"], None), ("2", p["w2"], p["b2"])):
        s = p["g" + k].astype(np.float64) / np.sqrt(p["v" + k].astype(np.float64) + 1e-5)
        out["w" + k] = (w.astype(np.float64) * s[:, None, None, None]).astype(np.float32)
        bb = np.zeros_like(s) if b is None else b.astype(np.float64)
        out["b" + k] = ((bb - p["m" + k]) * s + p["be" + k]).astype(np.float32)
    return out


def conv_tensors(path):
    m = onnx.load(path)  # loads external data relative to path
    t = {x.name: numpy_helper.to_array(x) for x in m.graph.initializer}
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    return m, [(t[c.input[1]], t[c.input[2]]) for c in convs]


def external_locations(path):
    m = onnx.load(path, load_external_data=False)
    locs = set()
    for t in m.graph.initializer:
        if t.data_location == TensorProto.EXTERNAL:
            locs.add({e.key: e.value for e in t.external_data}["location"])
    return m, locs


def equivalent(orig, folded):
    env = dict(os.environ)
    p = subprocess.run(["node", a.equiv, orig, folded, "--json"], capture_output=True, env=env, timeout=300)
    try:
        r = json.loads(p.stdout)
    except ValueError:
        return False, p.stderr.decode(errors="replace")[-500:]
    return bool(r.get("ok")), json.dumps(r.get("outputs"))[:300] + (r.get("error") or "")


def no_debris(d):
    return [f for f in os.listdir(d) if ".bnfold-" in f]


work = tempfile.mkdtemp(prefix="bnfold-ext-", dir=a.workdir)
try:
    rng = np.random.RandomState(7)
    model, params = build(rng)
    want = expected_weights(params)
    src = os.path.join(work, "in")
    dst = os.path.join(work, "out")
    os.mkdir(src)
    os.mkdir(dst)
    inp = os.path.join(src, "model.onnx")
    save_external(model, inp, "weights.bin")
    in_sha = (sha(inp), sha(os.path.join(src, "weights.bin")))

    out = os.path.join(dst, "folded.onnx")
    rc, _, err = run([inp, "-o", out, "--report", os.path.join(work, "r.json")])
    check(rc == 0, "fold a model with external data", err)
    check((sha(inp), sha(os.path.join(src, "weights.bin"))) == in_sha, "input model and its data file untouched")
    m, locs = external_locations(out)
    check(locs == {"folded.onnx.data"} and os.path.isfile(out + ".data"),
          "folded weights stay external, in folded.onnx.data beside the output", str(locs))
    check(sum(n.op_type == "BatchNormalization" for n in m.graph.node) == 0, "no BN left")
    try:
        onnx.checker.check_model(out)
        check(True, "onnx.checker accepts the output with its data file")
    except Exception as e:  # noqa: BLE001
        check(False, "onnx.checker accepts the output with its data file", str(e)[:300])
    _, got = conv_tensors(out)
    diffs = [float(np.max(np.abs(g.astype(np.float64) - w))) for (g, _), w in zip(got, (want["w1"], want["w2"]))]
    diffs += [float(np.max(np.abs(g.astype(np.float64) - b))) for (_, g), b in zip(got, (want["b1"], want["b2"]))]
    check(max(diffs) == 0.0, "folded weights and biases equal numpy's float64 fold rounded to float32", str(diffs))
    ok, diag = equivalent(inp, out)
    check(ok, "onnxruntime: original and folded outputs agree", diag)

    inl = os.path.join(dst, "inline.onnx")
    rc, _, err = run(["--inline", inp, "-o", inl])
    m, locs = external_locations(inl)
    check(rc == 0 and not locs and not os.path.exists(inl + ".data"), "--inline puts every tensor in the model", err)
    _, got_inl = conv_tensors(inl)
    check(all(np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1]) for x, y in zip(got, got_inl)),
          "--inline holds the same values")

    simple = os.path.join(dst, "simple.onnx")
    rc, _, err = run(["--no-stream", inp, "-o", simple])
    check(rc == 0 and sha(simple + ".data") == sha(out + ".data"), "--no-stream writes the same data file", err)

    # in place: the model and its data file are replaced together
    ip = os.path.join(work, "inplace")
    os.mkdir(ip)
    ipm = os.path.join(ip, "model.onnx")
    save_external(model, ipm, "model.onnx.data")
    rc, _, err = run(["--in-place", ipm])
    _, got_ip = conv_tensors(ipm)
    check(rc == 0 and all(np.array_equal(x[0], y[0]) for x, y in zip(got, got_ip)),
          "--in-place replaces the model and its data file", err)
    check(not no_debris(ip), "--in-place leaves no temp files", str(no_debris(ip)))

    # refusals: one line, exit 1, nothing written
    def refused(desc, model_path, pattern, extra=()):
        o = os.path.join(dst, "refused.onnx")
        rc, _, err = run(list(extra) + [model_path, "-o", o])
        ok = rc == 1 and re.search(pattern, err) and not os.path.exists(o) and not os.path.exists(o + ".data")
        check(ok and not no_debris(dst), desc, "exit %d: %s" % (rc, err.strip()[:300]))

    def variant(name, location, offset=None, length=None):
        d = os.path.join(work, name)
        os.mkdir(d)
        path = os.path.join(d, "model.onnx")
        save_external(model, path, "weights.bin")
        m = onnx.load(path, load_external_data=False)
        t = next(x for x in m.graph.initializer if x.name == "w2")
        kv = {e.key: e for e in t.external_data}
        kv["location"].value = location
        if offset is not None:
            kv["offset"].value = str(offset)
        if length is not None:
            kv["length"].value = str(length)
        with open(path, "wb") as f:
            f.write(m.SerializeToString())
        return path, d

    outside = os.path.join(work, "outside.bin")
    shutil.copy(os.path.join(src, "weights.bin"), outside)
    p, _ = variant("dotdot", "../outside.bin")
    refused("location with '..' is refused", p, r"tensor 'w2'.*leaves the model's directory")
    p, _ = variant("absolute", outside)
    refused("absolute location is refused", p, r"tensor 'w2'.*is absolute")
    p, d = variant("symlink", "link.bin")
    os.symlink(outside, os.path.join(d, "link.bin"))
    refused("symlink leading out of the model's folder is refused", p, r"tensor 'w2'.*resolves outside")
    size = os.path.getsize(os.path.join(src, "weights.bin"))
    p, _ = variant("pasteof", "weights.bin", offset=size - 8)
    refused("data past the end of the file is refused", p, r"tensor 'w2'.*past the end")
    p, _ = variant("missing", "nothere.bin")
    refused("missing data file is refused", p, r"tensor 'w2'.*nothere\.bin.*No such file")
    # an output whose data file would be the input's own data file
    cl = os.path.join(work, "clash")
    os.mkdir(cl)
    save_external(model, os.path.join(cl, "model.onnx"), "folded.onnx.data")
    before = sha(os.path.join(cl, "folded.onnx.data"))
    rc, _, err = run([os.path.join(cl, "model.onnx"), "-o", os.path.join(cl, "folded.onnx")])
    check(rc == 1 and re.search(r"which the input reads its weights from", err) and
          sha(os.path.join(cl, "folded.onnx.data")) == before and not os.path.exists(os.path.join(cl, "folded.onnx")),
          "an output that would replace the input's data file is refused", err)
    rc, so, err = run([inp, "-o", "-"])
    check(rc == 1 and re.search(r"--inline", err) and not so, "stdout output needs --inline", err)
    rc, so, err = run(["--inline", inp, "-o", "-"])
    check(rc == 0 and len(so) > 1000, "--inline writes the whole model to stdout", err)
finally:
    shutil.rmtree(work, ignore_errors=True)

sys.exit(tap.emit())
