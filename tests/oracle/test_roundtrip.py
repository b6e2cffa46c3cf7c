#!/usr/bin/python3
"""TAP driver: bnfold loses nothing of a model it folds.

    /usr/bin/python3 tests/oracle/test_roundtrip.py --bnfold build/bnfold \
        --testdata testdata [--workdir TMPDIR]

testdata/roundtrip_newer_schema.onnx (made by tools/gen_fixtures.py) carries
fields of a newer ONNX schema as unknown fields, each holding a marker string
RT-..., and doc strings, metadata_props, training_info, a sparse and a string
initializer, value_info, a custom-domain opset import and a function.  bnfold
folds conv2 <- bn2 and must leave bn1 (training_info assigns W1).  For the
streaming path and for --no-stream, this checks with the onnx package (which
keeps unknown fields, so re-serializing compares them too):

  - every marker occurs in the output as often as in the input;
  - the model without its graph (unknown fields, functions, training_info,
    metadata, opset imports, doc strings) is unchanged, byte for byte;
  - the graph without nodes, initializers and value_info is unchanged;
  - the nodes are the input's minus bn2, each unchanged except that conv2 now
    produces bn2's output;
  - the initializers are the input's minus the BN parameters bn2 alone read
    (bn2_mean stays: the training algorithm reads it), each unchanged except
    the data of W2 and B2, which differs;
  - value_info is the input's minus the entry for conv2's old output.
"""

import json
import os
import re
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle_common as oc  # noqa: E402

FIXTURE = "roundtrip_newer_schema.onnx"
FOLDED_DATA = {"W2", "B2"}
REMOVED_INITS = {"bn2_scale", "bn2_B", "bn2_var"}
REMOVED_NODES = {"bn2"}
RENAMED_OUTPUT = ("conv2", "c2", "Y")  # node, old output, new output
REMOVED_VALUE_INFO = {"c2"}
DATA_FIELDS = ("raw_data", "float_data", "double_data", "int32_data", "int64_data")


def copy_without(msg, *fields):
    c = type(msg)()
    c.CopyFrom(msg)
    for f in fields:
        c.ClearField(f)
    return c


def same(a, b):
    return a.SerializeToString() == b.SerializeToString()


def check_output(tap, label, src_bytes, out_path, rep):
    mi = oc.onnx.load_from_string(src_bytes)
    with open(out_path, "rb") as f:
        out_bytes = f.read()
    mo = oc.onnx.load_from_string(out_bytes)

    # report: what folded and what did not
    sk = [(s.get("bn"), s.get("reason")) for s in rep.get("skipped", [])]
    fu = [(f.get("layer"), f.get("bn")) for f in rep.get("fusions", [])]
    tap.add(fu == [("conv2", "bn2")] and sk == [("bn1", "weight_not_constant")],
            "%s: conv2 <- bn2 folded, bn1 left (training_info assigns W1)" % label, ["fusions %s" % fu, "skipped %s" % sk])

    markers = sorted(set(re.findall(rb"RT-[A-Za-z0-9_-]+", src_bytes)))
    lost = ["%s: %d in the input, %d in the output" % (m.decode(), src_bytes.count(m), out_bytes.count(m))
            for m in markers if src_bytes.count(m) != out_bytes.count(m)]
    tap.add(len(markers) >= 10 and not lost, "%s: all %d unknown-field markers kept" % (label, len(markers)), lost)

    tap.add(same(copy_without(mi, "graph"), copy_without(mo, "graph")),
            "%s: model fields other than the graph unchanged (unknown fields, functions, training_info, "
            "metadata_props, opset imports, doc)" % label)
    gi, go = mi.graph, mo.graph
    tap.add(same(copy_without(gi, "node", "initializer", "value_info"), copy_without(go, "node", "initializer", "value_info")),
            "%s: graph fields other than nodes, initializers and value_info unchanged (unknown fields, doc, "
            "inputs, outputs, sparse_initializer, quantization_annotation)" % label)

    # nodes
    diag = []
    want_names = [n.name for n in gi.node if n.name not in REMOVED_NODES]
    got_names = [n.name for n in go.node]
    if got_names != want_names:
        diag.append("nodes %s, expected %s" % (got_names, want_names))
    byname = {n.name: n for n in gi.node}
    for n in go.node:
        if n.name not in byname:
            continue
        m = type(n)()
        m.CopyFrom(n)
        if n.name == RENAMED_OUTPUT[0]:
            if list(n.output) != [RENAMED_OUTPUT[2]]:
                diag.append("%s outputs %s, expected ['%s']" % (n.name, list(n.output), RENAMED_OUTPUT[2]))
            m.output[0] = RENAMED_OUTPUT[1]
        if not same(m, byname[n.name]):
            diag.append("node %s changed" % n.name)
    tap.add(not diag, "%s: nodes unchanged (unknown fields, attributes, doc) but for bn2 removed and conv2 "
            "producing '%s'" % (label, RENAMED_OUTPUT[2]), diag)

    # initializers
    diag = []
    want_inits = [t.name for t in gi.initializer if t.name not in REMOVED_INITS]
    got_inits = [t.name for t in go.initializer]
    if got_inits != want_inits:
        diag.append("initializers %s, expected %s" % (got_inits, want_inits))
    tin = {t.name: t for t in gi.initializer}
    for t in go.initializer:
        if t.name not in tin:
            continue
        if t.name in FOLDED_DATA:
            if not same(copy_without(t, *DATA_FIELDS), copy_without(tin[t.name], *DATA_FIELDS)):
                diag.append("%s: fields other than its data changed" % t.name)
            if same(t, tin[t.name]):
                diag.append("%s: not folded" % t.name)
        elif not same(t, tin[t.name]):
            diag.append("%s changed" % t.name)
    tap.add(not diag, "%s: initializers unchanged but for the data of %s and bn2's parameters %s removed "
            "(bn2_mean kept: training_info reads it)" % (label, sorted(FOLDED_DATA), sorted(REMOVED_INITS)), diag)

    # value_info
    want_vi = [v for v in gi.value_info if v.name not in REMOVED_VALUE_INFO]
    ok = len(want_vi) == len(go.value_info) and all(same(a, b) for a, b in zip(want_vi, go.value_info))
    tap.add(ok, "%s: value_info unchanged but for '%s', which no longer exists" % (label, sorted(REMOVED_VALUE_INFO)[0]),
            None if ok else ["got %s" % [v.name for v in go.value_info]])


def main():
    ap, _root = oc.common_arg_parser(__doc__.split("\n")[0])
    args = ap.parse_args()
    tap = oc.Tap()
    if oc.onnx is None:
        tap.fail("python prerequisites", "need the onnx module (run with /usr/bin/python3)")
        return tap.emit()
    src = os.path.join(args.testdata, FIXTURE)
    work = oc.make_workdir(args.workdir, "roundtrip")
    with open(src, "rb") as f:
        src_bytes = f.read()
    for label, extra in (("streamed", []), ("--no-stream", ["--no-stream"])):
        out = os.path.join(work, "out%s.onnx" % ("_simple" if extra else ""))
        rep_path = out + ".json"
        try:
            r = oc.run_bnfold(args.bnfold, src, out, rep_path, extra)
            if not tap.add(r["rc"] == 0, "%s: bnfold %s exits 0" % (label, FIXTURE), None if r["rc"] == 0 else oc.describe_run(r)):
                continue
            with open(rep_path) as f:
                rep = oc.report_entry(json.load(f))
            check_output(tap, label, src_bytes, out, rep)
        except Exception:  # noqa: BLE001
            tap.fail("%s: driver error" % label, traceback.format_exc())
    if not args.keep and not args.workdir:
        import shutil
        shutil.rmtree(work, ignore_errors=True)
    return tap.emit()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:  # noqa: BLE001
        sys.stdout.write("TAP version 13\n1..1\nnot ok 1 - test_roundtrip.py crashed\n")
        for line in traceback.format_exc().splitlines():
            sys.stdout.write("# %s\n" % line)
        sys.exit(1)
