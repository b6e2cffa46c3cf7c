#!/usr/bin/python3
"""What --verify costs: bnfold with and without it, runs interleaved.

    /usr/bin/python3 tools/bench_verify.py [--bnfold build/bnfold] [--reps 9]
        [--corpus ../shared/corpus] [--layers 11] [--float16] [--keep DIR]

Generates a large model in a temporary folder (LAYERS x Conv 512->512 3x3
with bias -> BatchNormalization -> Relu, float32: about 9.4 MB of weights
per layer, 104 MB for 11; with --float16 a float16 copy too), and times `bnfold MODEL -o OUT -f -q` with
--no-verify and with --verify, REPS times each, alternating so that load
from other processes hits both alike.  Then the same over every model of
the corpus (INDEX.tsv).  Prints medians and minima of wall-clock time and
of CPU time (user + system), and the cost of verification in percent.
"""
import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

MODES = ("--no-verify", "--verify")


def gen_big(path, layers, c=512, dtype="float32"):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    elem = TensorProto.FLOAT16 if dtype == "float16" else TensorProto.FLOAT
    rng = np.random.default_rng(0)
    nodes, inits, x = [], [], "x"
    for i in range(layers):
        inits.append(numpy_helper.from_array((rng.standard_normal((c, c, 3, 3)) * 0.02).astype(dtype), "w%d" % i))
        inits.append(numpy_helper.from_array((rng.standard_normal(c) * 0.1).astype(dtype), "b%d" % i))
        for name, v in (("g", rng.uniform(0.5, 1.5, c)), ("be", rng.standard_normal(c) * 0.1),
                        ("m", rng.standard_normal(c) * 0.1), ("v", rng.uniform(0.5, 2, c))):
            inits.append(numpy_helper.from_array(v.astype(dtype), "%s%d" % (name, i)))
        nodes.append(helper.make_node("Conv", [x, "w%d" % i, "b%d" % i], ["c%d" % i], name="conv%d" % i,
                                      pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("BatchNormalization", ["c%d" % i] + ["%s%d" % (n, i) for n in ("g", "be", "m", "v")],
                                      ["n%d" % i], name="bn%d" % i))
        nodes.append(helper.make_node("Relu", ["n%d" % i], ["r%d" % i], name="relu%d" % i))
        x = "r%d" % i
    g = helper.make_graph(nodes, "big", [helper.make_tensor_value_info("x", elem, [1, c, 8, 8])],
                          [helper.make_tensor_value_info(x, elem, [1, c, 8, 8])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 15)])
    m.ir_version = 8
    onnx.save(m, path)


def run_once(bnfold, mode, model, out, extra):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.run([bnfold, mode, model, "-o", out, "-f", "-q"] + extra, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    t1 = time.monotonic()
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise SystemExit("%s %s %s: exit %d: %s" % (bnfold, mode, model, p.returncode, p.stderr.decode()[-500:]))
    return t1 - t0, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def bench(bnfold, models, reps, out, extra=()):
    """{mode: [(wall, cpu) summed over models, per rep]}"""
    res = {m: [] for m in MODES}
    for _ in range(reps):
        for mode in MODES:
            w = c = 0.0
            for model in models:
                dw, dc = run_once(bnfold, mode, model, out, list(extra))
                w += dw
                c += dc
            res[mode].append((w, c))
    return res


def report(title, res):
    print(title)
    stats = {}
    for mode in MODES:
        wall = [x[0] for x in res[mode]]
        cpu = [x[1] for x in res[mode]]
        stats[mode] = (statistics.median(wall), min(wall), statistics.median(cpu), min(cpu))
        print("  %-12s wall median %7.3f s  min %7.3f s   cpu median %7.3f s  min %7.3f s" % ((mode,) + stats[mode]))
    a, b = stats["--no-verify"], stats["--verify"]
    print("  cost of --verify: wall median %+.1f%%, min %+.1f%%; cpu median %+.1f%%, min %+.1f%%" % tuple(
        100.0 * (b[i] / a[i] - 1.0) for i in range(4)))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bnfold", default=os.path.join(root, "build", "bnfold"))
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--corpus", default=os.path.join(root, "..", "shared", "corpus"))
    ap.add_argument("--layers", type=int, default=11)
    ap.add_argument("--float16", action="store_true", help="also time a float16 copy of the large model")
    ap.add_argument("--keep", default=None, help="generate into (and keep) this folder")
    args = ap.parse_args()

    work = args.keep or tempfile.mkdtemp(prefix="bnfold-bench-")
    os.makedirs(work, exist_ok=True)
    try:
        big = os.path.join(work, "big_conv_bn.onnx")
        if not os.path.exists(big):
            gen_big(big, args.layers)
        out = os.path.join(work, "out.onnx")
        print("bnfold %s, %d runs of each mode, interleaved; load average %s" % (
            args.bnfold, args.reps, " ".join("%.2f" % x for x in os.getloadavg())))
        report("large model: %s (%.1f MB, %d x Conv 512x512x3x3 -> BN)" % (
            big, os.path.getsize(big) / 1e6, args.layers), bench(args.bnfold, [big], args.reps, out))
        if args.float16:
            big16 = os.path.join(work, "big_conv_bn_fp16.onnx")
            if not os.path.exists(big16):
                gen_big(big16, args.layers, dtype="float16")
            report("large model, float16: %s (%.1f MB)" % (big16, os.path.getsize(big16) / 1e6),
                   bench(args.bnfold, [big16], args.reps, out))
        index = os.path.join(args.corpus, "INDEX.tsv")
        if os.path.isfile(index):
            with open(index) as f:
                rows = [l.split("\t")[0] for l in f.read().splitlines()[1:] if l.strip()]
            models = [os.path.join(args.corpus, r) for r in rows]
            size = sum(os.path.getsize(m) for m in models)
            report("corpus: %d models, %.1f MB, times summed over the models (--fold-overridable)" % (
                len(models), size / 1e6), bench(args.bnfold, models, args.reps, out, ["--fold-overridable"]))
        else:
            print("corpus: %s not found, skipped" % index)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
