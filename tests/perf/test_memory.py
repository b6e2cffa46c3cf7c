#!/usr/bin/python3
"""Memory stays bounded whatever the model size: fold a generated ResNet-50
shaped model of about 260 MB and check the peak RSS (from /usr/bin/time)
stays under 64 MiB, that the output has no BN left, and that it is byte for
byte what the in-memory path (--no-stream) writes.  Read from stdin, the
model is held in memory once, and nothing more grows with it: the peak
stays under its size + 64 MiB.  Prints TAP.

    test_memory.py --bnfold build/bnfold --gen tools/gen_big.py [--workdir DIR] [--limit-mib 64]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import onnx
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import bnftest  # noqa: E402
from bnftest import sha  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--bnfold", required=True)
ap.add_argument("--gen", required=True)
ap.add_argument("--workdir")
ap.add_argument("--limit-mib", type=float, default=64.0)
ap.add_argument("--width-scale", type=float, default=1.65)
a = ap.parse_args()

tap = bnftest.Tap()
check = tap.check


def timed(cmd, stdin=None):
    p = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, capture_output=True, stdin=stdin)
    lines = p.stderr.decode(errors="replace").rstrip().splitlines()
    try:
        return p.returncode, int(lines[-1]) / 1024.0, "\n".join(lines[:-1])
    except (IndexError, ValueError):
        return p.returncode, float("nan"), "\n".join(lines)


work = tempfile.mkdtemp(prefix="bnfold-mem-", dir=a.workdir)
try:
    model = os.path.join(work, "big.onnx")
    out = os.path.join(work, "big.folded.onnx")
    simple = os.path.join(work, "big.simple.onnx")
    subprocess.run(["/usr/bin/python3", a.gen, model, "--width-scale", str(a.width_scale)], check=True)
    size = os.path.getsize(model)
    check(size >= 256 * 10**6, "generated model is at least 256 MB (%.0f MB)" % (size / 1e6))

    rc, rss, err = timed([a.bnfold, "-q", model, "-o", out])
    check(rc == 0, "bnfold folds the %.0f MB model" % (size / 1e6), err)
    check(rss <= a.limit_mib, "fold + write peak RSS %.1f MiB <= %.0f MiB" % (rss, a.limit_mib), err)
    rc, rss, err = timed([a.bnfold, "-q", "--list", model])
    check(rc == 0 and rss <= a.limit_mib, "--list peak RSS %.1f MiB <= %.0f MiB" % (rss, a.limit_mib), err)

    m = onnx.load(out, load_external_data=False)
    n_bn = sum(1 for n in m.graph.node if n.op_type == "BatchNormalization")
    n_conv = sum(1 for n in m.graph.node if n.op_type == "Conv")
    check(n_bn == 0 and n_conv == 53, "output has 53 Conv and no BN (onnx: %d Conv, %d BN)" % (n_conv, n_bn))
    del m

    from_stdin = os.path.join(work, "big.stdin.onnx")
    with open(model, "rb") as f:
        rc, rss_stdin, err = timed([a.bnfold, "-q", "-", "-o", from_stdin], stdin=f)
    check(rc == 0 and rss_stdin <= size / 2**20 + a.limit_mib,
          "from stdin: peak RSS %.1f MiB <= the model's %.1f MiB + %.0f MiB" % (rss_stdin, size / 2**20, a.limit_mib),
          err)
    check(rc == 0 and sha(from_stdin) == sha(out), "from stdin: the same bytes as from the file")
    os.unlink(from_stdin)

    rc, rss_simple, err = timed([a.bnfold, "-q", "--no-stream", model, "-o", simple])
    check(rc == 0 and sha(out) == sha(simple), "streamed output equals --no-stream output byte for byte", err)
    check(rss_simple > rss, "the in-memory path needs more (%.1f MiB), so the bound is the streaming's doing"
          % rss_simple)
finally:
    shutil.rmtree(work, ignore_errors=True)

sys.exit(tap.emit())
