#!/usr/bin/python3
"""A model above 2 GB (its weights in external data) folds in bounded
memory.  Slow: generates about 2.2 GB; run by `tools/test --slow`.  TAP.

    test_huge_external.py --bnfold build/bnfold --gen tools/gen_big.py [--workdir DIR]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import onnx
from onnx import TensorProto
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import bnftest  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--bnfold", required=True)
ap.add_argument("--gen", required=True)
ap.add_argument("--workdir")
ap.add_argument("--limit-mib", type=float, default=64.0)
a = ap.parse_args()
tap = bnftest.Tap()
check = tap.check


work = tempfile.mkdtemp(prefix="bnfold-huge-", dir=a.workdir)
try:
    model = os.path.join(work, "huge.onnx")
    out = os.path.join(work, "huge.folded.onnx")
    subprocess.run(["/usr/bin/python3", a.gen, model, "--width-scale", "4.9", "--external"], check=True)
    data = model + ".data"
    total = os.path.getsize(model) + os.path.getsize(data)
    check(total > 2 * 2**30, "generated model with external data is above 2 GiB (%.2f GiB)" % (total / 2**30))
    p = subprocess.run(["/usr/bin/time", "-f", "%M", a.bnfold, "-q", model, "-o", out], capture_output=True)
    lines = p.stderr.decode(errors="replace").rstrip().splitlines()
    rss = int(lines[-1]) / 1024.0 if lines and lines[-1].isdigit() else float("nan")
    check(p.returncode == 0, "bnfold folds it", "\n".join(lines[:-1]))
    check(rss <= a.limit_mib, "peak RSS %.1f MiB <= %.0f MiB" % (rss, a.limit_mib))
    check(os.path.getsize(out + ".data") > 2 * 2**30 - 2**28, "output data file holds the weights (%.2f GiB)"
          % (os.path.getsize(out + ".data") / 2**30))
    m = onnx.load(out, load_external_data=False)
    check(sum(n.op_type == "BatchNormalization" for n in m.graph.node) == 0 and
          all(t.data_location == TensorProto.EXTERNAL for t in m.graph.initializer if len(t.raw_data) == 0),
          "no BN left, weights external")
    p = subprocess.run([a.bnfold, "-q", "--inline", model, "-o", os.path.join(work, "inline.onnx")], capture_output=True)
    err = p.stderr.decode(errors="replace")
    check(p.returncode == 1 and "2 GB" in err and not os.path.exists(os.path.join(work, "inline.onnx")),
          "--inline refuses to pass protobuf's 2 GB limit and writes nothing", err)
finally:
    shutil.rmtree(work, ignore_errors=True)

sys.exit(tap.emit())
