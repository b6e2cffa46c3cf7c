#!/usr/bin/python3
"""TAP driver: bnfold's shape inference (src/lib/shapes*.c, printed by the
test program dump_shapes) against onnx's own, on every fixture of testdata/,
every model of the shared corpus and the small models of cases.py.

    /usr/bin/python3 tests/shapes/test_shapes.py --dump build/tests/shapes/dump_shapes \
        --testdata testdata --workdir TMPDIR [--corpus ../shared/corpus]

onnx.shape_inference.infer_shapes(strict_mode=True) is the truth (non-strict
when strict raises, said in a comment; a model onnx cannot process at all is
skipped with the reason).  Per model, two TAP lines:
  agree:    for every value both know the rank of, the ranks are equal; every
            dim where both have a size has the same size; element types
            agree where both know them.  A conflict bnfold reports counts as
            an unknown shape.
  coverage: every output onnx knows the full static shape of, made by a node
            whose op bnfold has a rule for (dump_shapes --covers), whose inputs
            bnfold knows at least as well as onnx, and whose list inputs
            (Reshape's shape, Slice's starts...) are constants onnx also reads
            (initializers that no caller overrides, Constant outputs), bnfold
            knows too, with the same dims.  An initializer that is also a
            graph input (IR >= 4) is not a constant to bnfold: a caller may
            override it, so a Reshape reading one stays unknown.
A `# counts` comment gives per model: values compared, full static shapes
onnx knows, bnfold knows, outputs the coverage rule applied to.  The small
models also carry expectations of their own (names kept, conflicts, values
left unknown on purpose).
"""

import argparse
import csv
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "oracle"))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
import oracle_common as oc  # noqa: E402
import bnftest  # noqa: E402

# Inputs that must be constants for a rule to give sizes, per op (index
# lists; the opset decides for the ops whose lists moved to inputs).
LIST_INPUTS = {
    "Reshape": (1,), "Expand": (1,), "Tile": (1,), "ConstantOfShape": (0,),
    "Squeeze": (1,), "Unsqueeze": (1,), "Slice": (1, 2, 3, 4), "Pad": (1, 3),
    "Resize": (1, 2, 3), "Upsample": (1,),
}
# What the rules must cover at least (the brief of the inference).
REQUIRED_OPS = """Relu Sigmoid Tanh LeakyRelu Elu Selu HardSigmoid HardSwish Softplus Softsign Gelu Erf Abs
Neg Exp Log Sqrt Reciprocal Floor Ceil Round Sign Sin Cos Not Clip Softmax LogSoftmax Celu Mish PRelu
IsNaN Add Sub Mul Div Pow Max Min Sum Mean Equal Less Greater And Or Where BitShift BatchNormalization
Conv ConvTranspose Gemm MatMul Reshape Transpose Squeeze Unsqueeze Flatten Concat Expand Slice Gather
Shape Size MaxPool AveragePool LpPool GlobalAveragePool GlobalMaxPool GlobalLpPool Pad Resize Upsample
Identity Cast Dropout ConstantOfShape Constant Tile""".split()


def dims_of(tt):
    """[int|str|None] of a TypeProto.Tensor, or None when it has no shape."""
    if not tt.HasField("shape"):
        return None
    out = []
    for d in tt.shape.dim:
        if d.HasField("dim_value") and d.dim_value >= 0:
            out.append(d.dim_value)
        elif d.HasField("dim_param") and d.dim_param:
            out.append(d.dim_param)
        else:
            out.append(None)
    return out


def static(dims):
    return dims is not None and all(isinstance(d, int) for d in dims)


def onnx_values(model):
    """{name: (dims or None, elem_type)} of the main graph after inference."""
    g = model.graph
    vals = {}
    for t in g.initializer:
        vals[t.name] = (list(t.dims) if all(d >= 0 for d in t.dims) else None, t.data_type)
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        if vi.type.HasField("tensor_type"):
            vals[vi.name] = (dims_of(vi.type.tensor_type), vi.type.tensor_type.elem_type)
    return vals


def infer_onnx(path):
    """(inferred model, how) or (None, why not)."""
    onnx = oc.onnx
    try:
        m = onnx.load(path, load_external_data=False)
    except Exception as e:  # noqa: BLE001 - onnx raises many kinds
        return None, "onnx cannot load it: %s" % str(e).splitlines()[0][:200]
    try:
        return onnx.shape_inference.infer_shapes(m, strict_mode=True), "strict"
    except Exception as e:  # noqa: BLE001
        strict_err = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
    try:
        return onnx.shape_inference.infer_shapes(m, strict_mode=False), "non-strict (strict: %s)" % strict_err
    except Exception as e:  # noqa: BLE001
        return None, "onnx shape inference fails: %s" % str(e).splitlines()[0][:200]


def run_dump(dump, argv):
    r = bnftest.run(dump, argv, timeout=300)
    return r


def bnfold_values(dump, path):
    """({name: record}, problem or '')."""
    r = run_dump(dump, [path])
    if r.crashed():
        return None, "dump_shapes crashed: %s; %s" % (r.crashed(), r.diag())
    if r.rc != 0:
        return None, "dump_shapes failed: %s" % r.diag()
    vals = {}
    for line in r.out.decode().splitlines():
        rec = json.loads(line)
        vals[rec["name"]] = rec
    return vals, ""


def covered_ops(dump, ops):
    r = run_dump(dump, ["--covers"] + sorted(ops))
    if r.rc != 0 or r.crashed():
        raise RuntimeError("dump_shapes --covers: %s" % r.diag())
    return set(r.out.decode().split())


def compare(onx, bnf):
    """(n compared, problems) for the values both know the rank of."""
    problems, n = [], 0
    for name, (od, oet) in sorted(onx.items()):
        b = bnf.get(name)
        if b is None or b["conflict"] or od is None:
            continue
        n += 1
        bd = b["dims"]
        if len(od) != len(bd):
            problems.append("%s: rank %d, onnx says %d (%s vs %s)" % (name, len(bd), len(od), bd, od))
            continue
        for k, (x, y) in enumerate(zip(od, bd)):
            if isinstance(x, int) and isinstance(y, int) and x != y:
                problems.append("%s: dim %d is %d, onnx says %d (%s vs %s)" % (name, k, y, x, bd, od))
        if oet and b["elem_type"] and oet != b["elem_type"]:
            problems.append("%s: elem_type %d, onnx says %d" % (name, b["elem_type"], oet))
    return n, problems


def const_names(model):
    """Names whose values onnx reads for inference and bnfold resolves:
    Constant outputs and initializers no caller may override."""
    g = model.graph
    inputs = {i.name for i in g.input}
    names = {t.name for t in g.initializer if model.ir_version < 4 or t.name not in inputs}
    for n in g.node:
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx"):
            names.update(n.output)
    return names


def knows_as_well(onx_dims, rec):
    """bnfold's record rec knows at least what onnx's dims say."""
    if onx_dims is None:
        return True
    if rec is None or rec["conflict"] or len(rec["dims"]) != len(onx_dims):
        return False
    return all(not isinstance(x, int) or y == x for x, y in zip(onx_dims, rec["dims"]))


def coverage(model, onx, bnf, covers, excused=()):
    """(n outputs the rule applied to, problems)."""
    consts = const_names(model)
    problems, n = [], 0
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx") or node.op_type not in covers:
            continue
        if any(i and not knows_as_well(onx.get(i, (None, 0))[0], bnf.get(i)) for i in node.input):
            continue
        # onnx keeps a declared shape where it cannot infer one; bnfold takes
        # no sizes from declarations (nothing checks them at run time), so
        # only outputs of inputs onnx knows in full are owed
        if any(i and not static(onx.get(i, (None, 0))[0]) for i in node.input):
            continue
        lists = LIST_INPUTS.get(node.op_type, ())
        if any(k < len(node.input) and node.input[k] and node.input[k] not in consts for k in lists):
            continue
        for o in node.output:
            od = onx.get(o, (None, 0))[0]
            if not o or not static(od) or o in excused or (bnf.get(o) or {}).get("conflict"):
                continue
            n += 1
            b = bnf.get(o)
            if b is None or b["dims"] != od:
                problems.append("%s (%s %s): bnfold %s, onnx %s" % (o, node.op_type, node.name,
                                                                   b["dims"] if b else "unknown", od))
    return n, problems


# Values of testdata/ and corpus models that onnx gives a shape and bnfold
# rightly does not, with the reason.
EXCUSED = {
    "conv_bn_bad_weight_shape.onnx": {"conv_out": "its Conv weight has rank 2: not a valid Conv"},
}


def check_model(tap, dump, label, path, expect=None, excused=()):
    """The agree and coverage lines for one model file (and its own
    expectations: {name: dims | "unknown" | "conflict"})."""
    inferred, how = infer_onnx(path)
    bnf, problem = bnfold_values(dump, path)
    if bnf is None:
        tap.fail("%s: dump_shapes runs" % label, problem)
        return None
    check_expectations(tap, label, bnf, expect)
    if inferred is None:
        tap.skip("%s: compared with onnx" % label, how)
        return None
    onx = onnx_values(inferred)
    ops = {n.op_type for n in inferred.graph.node if n.domain in ("", "ai.onnx")}
    covers = covered_ops(dump, ops) if ops else set()
    n, problems = compare(onx, bnf)
    diag = problems[:20]
    if how != "strict":  # printed whether or not the line passes
        diag.insert(0, "onnx inference in mode %s" % how)
    tap.add(not problems, "%s: shapes agree with onnx (%s)" % (label, how.split(" (")[0]), diag)
    n_cov, cov_problems = coverage(inferred, onx, bnf, covers, excused)
    tap.add(not cov_problems, "%s: bnfold knows every shape its rules cover" % label, cov_problems[:20])
    o_known = sum(1 for d, _ in onx.values() if static(d))
    b_known = sum(1 for r in bnf.values() if not r["conflict"] and all(isinstance(x, int) for x in r["dims"]))
    return (label, n, o_known, b_known, n_cov, how)


def check_expectations(tap, label, bnf, expect):
    """A line per value of expect ({name: dims | "unknown" | "conflict"})."""
    for name, want in sorted((expect or {}).items()):
        rec = bnf.get(name)
        if want == "unknown":
            ok = rec is None
        elif want == "conflict":
            ok = rec is not None and rec["conflict"]
        else:
            ok = rec is not None and not rec["conflict"] and rec["dims"] == want
        tap.add(ok, "%s: %s is %s" % (label, name, want), None if ok else "bnfold: %s" % (rec,))


def corpus_models(corpus):
    with open(os.path.join(corpus, "INDEX.tsv"), newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [r["path"] for r in rows if r.get("path")]


def find_corpus(arg):
    if arg:
        return arg
    root = os.path.abspath(os.path.join(HERE, "..", ".."))
    for c in (os.path.join(root, "..", "shared", "corpus"), os.path.join(root, "..", "..", "shared", "corpus")):
        if os.path.isdir(c):
            return os.path.normpath(c)
    return os.path.join(root, "..", "shared", "corpus")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dump", required=True, help="the dump_shapes test program")
    ap.add_argument("--testdata", required=True)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--corpus", default=None, help="corpus folder (default: ../shared/corpus beside the repository)")
    ap.add_argument("--only", action="append", default=[], help="only models whose label contains this")
    args = ap.parse_args()
    tap = oc.Tap()
    if oc.onnx is None:
        tap.fail("python prerequisites", "need the onnx module (run with /usr/bin/python3)")
        return tap.emit()
    import cases
    table = []

    def wanted(label):
        return not args.only or any(o in label for o in args.only)

    missing = sorted(set(REQUIRED_OPS) - covered_ops(args.dump, REQUIRED_OPS))
    tap.add(not missing, "the rules cover every op of the required list",
            "missing: %s" % " ".join(missing) if missing else None)
    os.makedirs(args.workdir, exist_ok=True) if args.workdir else None
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for case in cases.CASES:
            if not wanted("case " + case.name):
                continue
            path = os.path.join(tmp, case.name + ".onnx")
            oc.onnx.save(case.model(), path)
            table.append(check_model(tap, args.dump, "case " + case.name, path, case.expect, case.excused))
    for f in sorted(os.listdir(args.testdata)):
        if f.endswith(".onnx") and wanted(f):
            table.append(check_model(tap, args.dump, f, os.path.join(args.testdata, f), excused=EXCUSED.get(f, ())))
    corpus = find_corpus(args.corpus)
    if not os.path.isdir(corpus):
        tap.skip("corpus models", "corpus folder %s not found" % corpus)
    else:
        for rel in corpus_models(corpus):
            if wanted(rel):
                table.append(check_model(tap, args.dump, rel, os.path.join(corpus, rel)))
    trailer = ["counts: model | compared | onnx static | bnfold static | coverage applied | onnx mode"]
    trailer += ["counts: %s | %d | %d | %d | %d | %s" % t for t in table if t]
    return tap.emit(trailer)


if __name__ == "__main__":
    sys.exit(main())
