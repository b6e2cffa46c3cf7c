#!/usr/bin/python3
"""End-to-end cases of --report: one JSON document for any number of inputs,
with an entry for every input (failed ones and verify failures included) and
totals that add up.  Prints TAP.

Every report is validated against src/lib/report.schema.json, and its totals
are recomputed here from its entries.  What each case expects (exit status,
which inputs fail and with what code, the names for people of unnamed nodes)
is written here by hand.
"""
import argparse
import json
import os
import re
import shutil
import sys
import tempfile

import jsonschema

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import bnftest  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--bnfold", required=True)
ap.add_argument("--testdata", required=True)
ap.add_argument("--schema", required=True)
args = ap.parse_args()

BNFOLD = os.path.abspath(args.bnfold)
TESTDATA = os.path.abspath(args.testdata)
VALIDATOR = jsonschema.Draft7Validator(json.load(open(args.schema)))
SUMMED = ("bn_found", "folded", "affine_folded", "skipped", "affine_skipped", "nodes_before", "nodes_after",
          "graph_inputs_removed")
tap = bnftest.Tap()
check = tap.check


def run(argv, cwd=None):
    r = bnftest.run_checked(tap, BNFOLD, argv, cwd=cwd, timeout=120)
    return r.rc, r.out, r.err


def totals_problems(doc):
    """The totals as the entries make them: the inputs, the errors by exit
    status, the counts summed over the inputs without an error."""
    ins = doc["inputs"]
    want = {"inputs": len(ins),
            "failed": sum(e.get("error", {}).get("exit") == 1 for e in ins),
            "verify_failed": sum(e.get("error", {}).get("exit") == 4 for e in ins)}
    for k in SUMMED:
        want[k] = sum(e["counts"][k] for e in ins if "error" not in e)
    return ["totals.%s = %s, the entries make %s" % (k, doc["totals"].get(k), v)
            for k, v in want.items() if doc["totals"].get(k) != v]


def load(path=None, text=None):
    """The report at path (or in text), its schema violations and wrong
    totals.  A report that is not one JSON document is one problem."""
    try:
        doc = json.loads(text) if text is not None else json.load(open(path))
    except (OSError, ValueError) as e:
        return None, ["not one JSON document: %s" % e]
    probs = ["/".join(map(str, e.absolute_path)) + ": " + e.message[:200] for e in VALIDATOR.iter_errors(doc)]
    return doc, probs or totals_problems(doc)


def error_lines(err):
    return [l[len("bnfold: error: "):] for l in err.splitlines() if l.startswith("bnfold: error: ")]


def fixture(name):
    return os.path.join(TESTDATA, name)


work = tempfile.mkdtemp(prefix="bnfold-report-")
try:
    demo = os.path.join(work, "demo.onnx")
    shutil.copy(fixture("demo.onnx"), demo)
    rep = os.path.join(work, "r.json")

    # --- one input: the same document, one entry ---
    out = os.path.join(work, "demo.out.onnx")
    rc, _, err = run([demo, "-o", out, "--report", rep])
    doc, probs = load(rep)
    check(rc == 0 and doc and not probs, "one input: a valid document, totals add up", "exit %d %s %s" % (rc, probs, err))
    if doc and not probs:
        e = doc["inputs"][0]
        check(doc["tool"]["name"] == "bnfold" and
              doc["job"] == "fold" and doc["options"] == {"fold_overridable": False, "verify": True, "tolerance": None} and
              len(doc["inputs"]) == 1 and e["input"] == demo and e["output"] == out and "error" not in e,
              "one input: tool, job fold, the options, one entry naming input and output", json.dumps(doc)[:400])
        check(doc["totals"] == {"inputs": 1, "failed": 0, "verify_failed": 0, "bn_found": 3, "folded": 3,
                                "affine_folded": 0, "skipped": 0, "affine_skipped": 0, "nodes_before": 12,
                                "nodes_after": 9, "graph_inputs_removed": 0},
              "one input: totals are demo.onnx's counts (3 BN folded, nodes 12 -> 9)", json.dumps(doc["totals"]))
        check(sorted((f["bn"], f["bn_label"], f["layer"], f["layer_label"]) for f in e["fusions"]) ==
              [("bn1", "bn1", "conv1", "conv1"), ("bn2", "bn2", "conv2", "conv2"),
               ("downsample_bn", "downsample_bn", "downsample_conv", "downsample_conv")],
              "named nodes: the label is the name", json.dumps(e["fusions"])[:400])
    rc, so, err = run(["--version"])
    check(rc == 0 and doc and so.decode().strip() == "bnfold " + doc["tool"]["version"],
          "tool.version is the version bnfold prints", so)

    # --- three inputs, all fine (-O DIR) ---
    od = os.path.join(work, "out3")
    os.mkdir(od)
    three = [demo, fixture("conv_mul_add.onnx"), fixture("conv_add_spatial.onnx")]
    rc, _, err = run(["-O", od, "--report", rep] + three)
    doc, probs = load(rep)
    check(rc == 0 and doc and not probs, "three inputs: one valid document, totals add up", "exit %d %s %s" % (rc, probs, err))
    if doc and not probs:
        check([(e["input"], e["output"]) for e in doc["inputs"]] ==
              [(p, os.path.join(od, os.path.basename(p))) for p in three] and
              sorted(os.listdir(od)) == sorted(os.path.basename(p) for p in three),
              "three inputs: an entry per input, in order, naming each output written", json.dumps(doc["inputs"])[:300])
        t = doc["totals"]
        check((t["inputs"], t["failed"], t["folded"], t["affine_folded"], t["affine_skipped"]) == (3, 0, 3, 2, 1),
              "three inputs: totals 3 inputs, 3 BN and 2 Mul/Add folded, 1 Mul/Add left", json.dumps(t))
        aff = doc["inputs"][1]["affine_fusions"]
        check(sorted((f["node"], f["node_label"], f["node_op"]) for f in aff) == [("add1", "add1", "Add"), ("mul0", "mul0", "Mul")],
              "Mul/Add entries carry node_label beside node", json.dumps(aff)[:300])
        ask = doc["inputs"][2]["affine_skipped"]
        check(len(ask) == 1 and ask[0]["node_label"] == "add0" and ask[0]["layer_label"] == "conv",
              "a Mul/Add left in place carries node_label and layer_label", json.dumps(ask))

    # --- --report - with several inputs: one document on stdout ---
    rc, so, err = run(["--check", "--report", "-", demo, fixture("nothing_to_fold.onnx")])
    doc, probs = load(text=so.decode(errors="replace"))
    check(rc == 3 and doc and not probs and len(doc["inputs"]) == 2 and doc["job"] == "check" and
          all(e["output"] is None for e in doc["inputs"]) and doc["totals"]["folded"] == 3,
          "--check over two inputs, --report -: one document on stdout, job check, outputs null, exit 3",
          "exit %d %s %s" % (rc, probs, so[:300]))

    # --- inputs that fail: not ONNX, missing, refused; exit 1 ---
    text = os.path.join(work, "notes.onnx")
    with open(text, "w") as f:
        f.write("not a model\n")
    missing = os.path.join(work, "missing.onnx")
    od = os.path.join(work, "out-fail")
    os.mkdir(od)
    rc, _, err = run(["-O", od, "--report", rep, demo, text, missing])
    doc, probs = load(rep)
    check(rc == 1 and doc and not probs, "a not-ONNX and a missing input: exit 1, a valid report, totals add up",
          "exit %d %s %s" % (rc, probs, err))
    if doc and not probs:
        ins = doc["inputs"]
        check([e["input"] for e in ins] == [demo, text, missing] and "error" not in ins[0] and
              ins[0]["output"] == os.path.join(od, "demo.onnx") and os.listdir(od) == ["demo.onnx"],
              "every input has its entry, in order; the good one is written and reported as such",
              json.dumps(ins)[:400])
        check([(set(e), e["error"]["code"], e["error"]["exit"]) for e in ins[1:]] ==
              [({"input", "error"}, "not_onnx", 1), ({"input", "error"}, "io_error", 1)],
              "failed inputs: {input, error} with codes not_onnx and io_error, exit 1", json.dumps(ins[1:]))
        check([e["error"]["message"] for e in ins[1:]] == error_lines(err) and
              re.match(r".*notes\.onnx: not an ONNX model", ins[1]["error"]["message"]) and
              re.match(r".*missing\.onnx: cannot open", ins[2]["error"]["message"]),
              "each error's message is the line bnfold printed for it", json.dumps(ins[1:]) + err)
        t = doc["totals"]
        check((t["inputs"], t["failed"], t["verify_failed"], t["folded"]) == (3, 2, 0, 3),
              "totals: 3 inputs, 2 failed, the counts of the one that went well", json.dumps(t))
    rc, _, err = run(["-O", od, "--report", rep, demo])
    doc, probs = load(rep)
    e = doc["inputs"][0] if doc and not probs else {}
    check(rc == 1 and e.get("error", {}).get("code") == "refused" and "already exists" in e["error"]["message"] and
          doc["totals"]["failed"] == 1,
          "an output that exists (no -f): the input is refused, code refused, exit 1", "exit %d %s %s" % (rc, probs, err))

    # --- a verify failure: exit 4, the entry keeps its checks ---
    vout = os.path.join(work, "v.onnx")
    rc, _, err = run(["--tolerance", "0", demo, "-o", vout, "--report", rep])
    doc, probs = load(rep)
    check(rc == 4 and doc and not probs and not os.path.exists(vout),
          "--tolerance 0: exit 4, no model, a valid report with totals that add up", "exit %d %s %s" % (rc, probs, err))
    if doc and not probs:
        e = doc["inputs"][0]
        check(list(e)[:3] == ["input", "output", "error"] and e["output"] is None and
              e["error"]["code"] == "verify_failed" and e["error"]["exit"] == 4 and
              e["error"]["message"] == error_lines(err)[0] and "fails verification" in e["error"]["message"],
              "the entry: output null, then the error (verify_failed, exit 4, the line printed)", json.dumps(e)[:500])
        check(e["verify"]["failed"] == 3 and e["verify"]["checked"] == 3 and len(e["fusions"]) == 3 and
              all(f["verify"]["ok"] is False and f["verify"]["tolerance"] == 0 for f in e["fusions"]),
              "... and keeps every fusion's failed check and the verify summary", json.dumps(e.get("verify")))
        t = doc["totals"]
        check((t["inputs"], t["failed"], t["verify_failed"], t["folded"], t["bn_found"]) == (1, 0, 1, 0, 0),
              "totals: one verify failure, nothing counted as folded", json.dumps(t))
    rc, _, err = run(["--check", "--tolerance", "0", "--report", rep, demo, missing])
    doc, probs = load(rep)
    check(rc == 1 and doc and not probs and [e.get("error", {}).get("exit") for e in doc["inputs"]] == [4, 1] and
          (doc["totals"]["failed"], doc["totals"]["verify_failed"]) == (1, 1),
          "--check with a verify failure and a missing input: exit 1 (1 wins over 4), both recorded",
          "exit %d %s %s" % (rc, probs, err))

    # --- --list ---
    rc, so, err = run(["--list", "-q", "--report", rep, fixture("conv_bn_mixed.onnx"), missing])
    doc, probs = load(rep)
    check(rc == 1 and doc and not probs and doc["job"] == "list" and doc["inputs"][0]["output"] is None and
          doc["inputs"][0]["counts"]["skipped"] == 2 and doc["inputs"][1]["error"]["code"] == "io_error",
          "--list: job list, output null, skips, the missing input an error", "exit %d %s %s" % (rc, probs, err))

    # --- unnamed nodes: the report keeps the empty name and adds the label ---
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    c = 2
    inits = [numpy_helper.from_array(np.ones((c, c, 1, 1), np.float32), "W")]
    for p in ("a", "b"):
        inits += [numpy_helper.from_array(np.full(c, v, np.float32), p + n) for n, v in
                  (("s", 1.5), ("o", 0.25), ("m", 0.5), ("v", 2.0))]
    g = helper.make_graph([helper.make_node("Conv", ["x", "W"], ["y"]),
                           helper.make_node("BatchNormalization", ["y", "as", "ao", "am", "av"], ["z"]),
                           helper.make_node("BatchNormalization", ["x", "bs", "bo", "bm", "bv"], ["w"])],
                          "unnamed", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 2, 2])],
                          [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, c, 2, 2]),
                           helper.make_tensor_value_info("w", TensorProto.FLOAT, [1, c, 2, 2])], inits)
    unnamed = os.path.join(work, "unnamed.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), unnamed)
    rc, _, err = run(["--check", "--report", rep, unnamed])
    doc, probs = load(rep)
    e = doc["inputs"][0] if doc and not probs else {}
    f, s = (e.get("fusions") or [{}])[0], (e.get("skipped") or [{}])[0]
    check(rc == 3 and f.get("bn") == "" and f.get("bn_label") == "(unnamed BatchNormalization, output z)" and
          f.get("layer") == "" and f.get("layer_label") == "(unnamed Conv, output y)",
          "an unnamed fusion: bn and layer stay empty, bn_label and layer_label name the op and its output",
          "exit %d %s %s" % (rc, probs, json.dumps(e)[:500]))
    check(s.get("bn") == "" and s.get("bn_label") == "(unnamed BatchNormalization, output w)" and
          s.get("layer") is None and s.get("layer_label") is None,
          "an unnamed skip: bn_label names it; no layer, no layer_label", json.dumps(s))

    # --- a path that is not UTF-8: the report stays valid JSON ---
    odd = os.path.join(work.encode(), b"caf\xe9.onnx")
    rc, _, err = run(["--check", "--report", rep, odd])
    doc, probs = load(rep)
    check(rc == 1 and doc and not probs and doc["inputs"][0]["input"].endswith("caf\ufffd.onnx") and
          doc["inputs"][0]["error"]["code"] == "io_error",
          "a missing input whose name is not UTF-8: U+FFFD in its place, valid JSON", "exit %d %s" % (rc, probs))

    # --- docs/report.md: its example is what the command it shows prints ---
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    page = open(os.path.join(root, "docs", "report.md")).read()
    m = re.search(r"^`bnfold (--check --report - [^`]+)`.*?^```json\n(.*?)^```$", page.split("## An example", 1)[1],
                  re.S | re.M)
    if check(m, "docs/report.md has an example: a command and its JSON"):
        rc, so, err = run(m.group(1).split(), cwd=root)
        doc, probs = load(text=so.decode(errors="replace"))
        shown = json.loads(m.group(2))
        if doc:
            doc["tool"]["version"] = shown["tool"]["version"]
        check(rc == 1 and not probs and doc == shown, "docs/report.md: the example is what bnfold prints (exit 1)",
              "exit %d %s\n%s" % (rc, probs, so.decode(errors="replace")[:1500]))

    # --- the report cannot be written: exit 1, and nothing half-written ---
    rc, _, err = run(["--check", demo, "--report", os.path.join(work, "no", "dir", "r.json")])
    check(rc == 1 and re.search(r"r\.json: cannot create", err) and not bnftest.debris(work),
          "a report that cannot be written: exit 1 naming it, no temp file", err)
finally:
    shutil.rmtree(work, ignore_errors=True)

sys.exit(tap.emit())
