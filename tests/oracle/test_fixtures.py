#!/usr/bin/python3
"""TAP driver: run bnfold on every fixture of testdata/expected.json and check
the result with independent oracles (JSON schema, onnx, onnxruntime).

    /usr/bin/python3 tests/oracle/test_fixtures.py --bnfold build/bnfold \
        --testdata testdata --schema src/lib/report.schema.json \
        --equiv tests/oracle/equiv.mjs --node-modules tests/node_modules \
        --workdir TMPDIR

expected.json: {"fixtures": [{"file", "desc", "args": [...], "bn_before",
"bn_after", "folded", "skipped": {reason: count}, "equivalence": bool,
"checker": bool (default true), "full_check": bool (default false),
"byte_identical": bool (default folded == 0), "ir_version", "opset",
optional "exit" (default 0), "rtol"/"atol" (default 1e-5), "rtol16"/"atol16"
(float16/bfloat16 outputs; default equiv.mjs's 1e-2), "numeric": bool,
"fusion_names": {bn: {"weight", "bias"}}}]}

Per fixture it prints TAP lines for: bnfold exit status, report schema,
report consistency, report counts, model facts (ir_version/opset), BN nodes
left in the output, onnx.checker, input unchanged, output byte-identical
(when nothing folded), and ORT equivalence (when "equivalence" is true; the
pairs run in one equiv.mjs batch, comparing final outputs and every BN output
tensor). Exit status 0 only when every line is ok.
"""

import json
import os
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle_common as oc  # noqa: E402
import numeric  # noqa: E402


def make_perturbed(src, dst, dtypes, factor):
    """Copy of model src whose first Conv or Gemm weight initializer of one
    of the numpy dtypes is scaled by factor; returns (dst, weight name) or
    None when there is none."""
    from onnx import numpy_helper
    m = oc.onnx.load(src)
    if oc.count_nodes(m.graph) != oc.count_nodes(m.graph, recursive=False):
        return None  # the perturbed Conv might sit on a branch that does not run
    inits = {t.name: t for t in m.graph.initializer}
    for node in m.graph.node:
        if node.op_type in ("Conv", "Gemm") and len(node.input) > 1 and node.input[1] in inits:
            t = inits[node.input[1]]
            a = numpy_helper.to_array(t)
            if a.dtype not in dtypes:
                continue
            t.CopyFrom(numpy_helper.from_array((a * a.dtype.type(factor)).astype(a.dtype), t.name))
            oc.onnx.save(m, dst)
            return dst, t.name
    return None


def numeric_control_line(name, src, out, rep):
    """(ok, desc, diag): change the first folded weight of out by one unit in
    the last place (bit 0 of its first element) and expect the numpy oracle
    to reject it."""
    mi, mo = oc.load_model(src), oc.load_model(out)
    fu = rep["fusions"][0]
    layer = [n for n in mo.graph.node if n.name == fu["layer"]][0]
    t = [t for t in mo.graph.initializer if t.name == layer.input[1]][0]
    if t.raw_data:
        raw = bytearray(t.raw_data)
        raw[0] ^= 1
        t.raw_data = bytes(raw)
    elif t.int32_data:
        t.int32_data[0] ^= 1
    elif t.float_data:
        import numpy as np
        t.float_data[0] = float(np.nextafter(np.float32(t.float_data[0]), np.float32(np.inf)))
    else:
        t.double_data[0] = float(__import__("numpy").nextafter(t.double_data[0], float("inf")))
    checks = numeric.check(mi, mo, rep)
    flagged = any(not c[0] for c in checks)
    desc = "numpy oracle control: flags %s with one ulp changed in folded weight '%s'" % (name, t.name)
    return flagged, desc, [] if flagged else ["the oracle accepted a wrong value"]


# Negative controls: the oracle must flag a slightly wrong fold.  float16
# outputs are compared at 1e-2, so their weight is scaled by 1.05, float32
# and float64 by 1.001.
CONTROLS = (("__control__", ("float32", "float64"), 1.001), ("__control16__", ("float16",), 1.05))


def main():
    ap, _root = oc.common_arg_parser(__doc__.split("\n")[0])
    ap.add_argument("--only", action="append", default=[], help="run only fixtures whose file contains this")
    args = ap.parse_args()
    tap = oc.Tap()

    def finish(trailer=None):
        return tap.emit(trailer)

    # ---- prerequisites: failures, never silent skips
    if oc.onnx is None or oc.jsonschema is None:
        tap.fail("python prerequisites", "need the onnx and jsonschema modules (run with /usr/bin/python3); "
                 "python is %s" % sys.executable)
        return finish()
    expected_path = os.path.join(args.testdata, "expected.json")
    try:
        with open(expected_path) as f:
            fixtures = json.load(f)["fixtures"]
    except (OSError, ValueError, KeyError) as e:
        tap.fail("read %s" % expected_path, str(e))
        return finish()
    try:
        schema = oc.load_schema(args.schema)
    except (OSError, ValueError) as e:
        tap.fail("read report schema %s" % args.schema, str(e))
        return finish()
    if args.only:
        fixtures = [fx for fx in fixtures if any(s in fx["file"] for s in args.only)]
    if not os.path.isfile(args.bnfold) or not os.access(args.bnfold, os.X_OK):
        tap.fail("bnfold binary present", "no executable at %s (build with: meson setup build && ninja -C build)" % args.bnfold)
        return finish()

    work = oc.make_workdir(args.workdir, "fixtures")
    ort_err = oc.ort_problem(args.equiv, args.node_modules)
    jobs, equiv_lines = [], []  # equiv_lines: (index in tap.results, fixture name)
    table = []
    numeric_worst = {}  # dtype -> [worst ulps, worst relative error, fixture]
    numeric_control = None  # (fixture, input, output, report) of a fixture the numpy oracle passed

    for fx in fixtures:
        name = fx["file"]
        stem = os.path.splitext(os.path.basename(name))[0]
        src = os.path.join(args.testdata, name)
        out = os.path.join(work, stem + ".folded.onnx")
        rep_path = os.path.join(work, stem + ".report.json")
        want_exit = fx.get("exit", 0)
        oc.progress("fixture %s" % name)
        try:
            if not os.path.isfile(src):
                tap.fail("%s: fixture file exists" % name, "missing %s" % src)
                continue
            before = oc.sha256(src)
            r = oc.run_bnfold(args.bnfold, src, out, rep_path, fx.get("args", []))
            ran_ok = r["rc"] == want_exit
            tap.add(ran_ok, "%s: bnfold %sexits %d (%s)" % (
                name, " ".join(fx.get("args", [])) + (" " if fx.get("args") else ""), want_exit,
                fx.get("desc", "")[:80]), None if ran_ok else oc.describe_run(r))
            tap.add(oc.sha256(src) == before, "%s: input file unchanged" % name)
            if want_exit != 0:
                continue
            if ran_ok:
                same, diag = oc.same_as_simple_path(args.bnfold, src, out, fx.get("args", []))
                tap.add(same, "%s: streamed output byte-identical to --no-stream" % name, diag)

            # ---- report
            rep = None
            try:
                with open(rep_path) as f:
                    rep = json.load(f)
            except (OSError, ValueError) as e:
                tap.fail("%s: report is valid JSON" % name, str(e))
            if rep is not None:
                errs = oc.schema_errors(rep, schema)
                tap.add(not errs, "%s: report valid against schema" % name, errs[:10])
                probs = oc.report_consistency(rep) if not errs else ["(schema invalid)"]
                tap.add(not probs, "%s: report internally consistent" % name, probs)
                rep = oc.report_entry(rep) if not errs else {}
                c = rep.get("counts", {}) if isinstance(rep.get("counts"), dict) else {}
                got_sk = oc.skipped_by_reason(rep)
                want_sk = {k: v for k, v in (fx.get("skipped") or {}).items() if v}
                cmp_ok = (c.get("bn_found") == fx["bn_before"] and c.get("folded") == fx["folded"] and got_sk == want_sk)
                got_pat = {}
                for f in (rep.get("fusions") or []) + (rep.get("affine_fusions") or []):
                    got_pat[f.get("pattern")] = got_pat.get(f.get("pattern"), 0) + 1
                want_aff = fx.get("affine_folded", 0)
                got_aff_sk = oc.skipped_by_reason(rep, "affine_skipped")
                want_aff_sk = fx.get("affine_skipped", {})
                pat_ok = c.get("affine_folded", 0) == want_aff and got_aff_sk == want_aff_sk and (
                    "patterns" not in fx or got_pat == fx["patterns"])
                tap.add(pat_ok, "%s: fusion patterns %s, Mul/Add folded %s, Mul/Add left %s" % (
                    name, oc.fmt_reasons(got_pat), c.get("affine_folded", 0), oc.fmt_reasons(got_aff_sk)),
                    None if pat_ok else ["expected patterns %s, Mul/Add folded %s, Mul/Add left %s" % (
                        oc.fmt_reasons(fx.get("patterns", {})), want_aff, oc.fmt_reasons(want_aff_sk))] +
                    ["affine_skipped: %s %s: %s" % (s.get("node"), s.get("reason"), s.get("message"))
                     for s in rep.get("affine_skipped", [])[:10]])
                tap.add(cmp_ok, "%s: report counts bn_found=%s folded=%s skipped=%s" % (
                    name, c.get("bn_found"), c.get("folded"), oc.fmt_reasons(got_sk)),
                    None if cmp_ok else ["expected bn_found=%s folded=%s skipped=%s" % (
                        fx["bn_before"], fx["folded"], oc.fmt_reasons(want_sk))] +
                    ["skipped: %s %s: %s" % (s.get("bn"), s.get("reason"), s.get("message")) for s in rep.get("skipped", [])[:10]])
                m = rep.get("model", {}) if isinstance(rep.get("model"), dict) else {}
                facts = []
                if "ir_version" in fx and m.get("ir_version") != fx["ir_version"]:
                    facts.append("report ir_version %s, expected %s" % (m.get("ir_version"), fx["ir_version"]))
                if "opset" in fx and m.get("opset") != fx["opset"]:
                    facts.append("report opset %s, expected %s" % (m.get("opset"), fx["opset"]))
                if rep.get("output") not in (out,):
                    facts.append("report output %r, expected %r" % (rep.get("output"), out))
                tap.add(not facts, "%s: report model facts ir_version=%s opset=%s" % (
                    name, m.get("ir_version"), m.get("opset")), facts)
                table.append((name, c.get("bn_found"), c.get("folded"), oc.fmt_reasons(got_sk)))

            # ---- output model
            if not os.path.isfile(out):
                tap.fail("%s: output model written" % name, "no file %s" % out)
                if fx.get("equivalence"):
                    tap.fail("%s: ORT equivalent" % name, "no output model")
                continue
            try:
                mo = oc.load_model(out)
                mi = oc.load_model(src)
            except Exception as e:  # noqa: BLE001
                tap.fail("%s: output model parses" % name, "%s: %s" % (type(e).__name__, e))
                if fx.get("equivalence"):
                    tap.fail("%s: ORT equivalent" % name, "output model does not parse")
                continue
            n_bn = oc.count_ops_model(mo)
            nodes = oc.count_nodes_model(mo), oc.count_nodes(mo.graph, recursive=False)
            diag = []
            if rep is not None and isinstance(rep.get("counts"), dict):
                na = rep["counts"].get("nodes_after")
                nb = rep["counts"].get("nodes_before")
                # what the files show against what the report claims
                removed = oc.count_ops_model(mi) - n_bn
                if removed != rep["counts"].get("folded"):
                    diag.append("%d BatchNormalization nodes removed, the report claims %s folded"
                                % (removed, rep["counts"].get("folded")))
                aff = oc.affine_removed(mi, mo)
                if aff != rep["counts"].get("affine_folded", 0):
                    diag.append("%d Mul/Add nodes removed, the report claims %s affine_folded"
                                % (aff, rep["counts"].get("affine_folded", 0)))
                if na not in nodes:
                    diag.append("report nodes_after=%s but output has %d nodes (%d in main graph)" % (na, nodes[0], nodes[1]))
                if nb not in (oc.count_nodes_model(mi), oc.count_nodes(mi.graph, recursive=False)):
                    diag.append("report nodes_before=%s but input has %d nodes" % (nb, oc.count_nodes_model(mi)))
            if mo.ir_version != mi.ir_version:
                diag.append("output ir_version %d != input %d" % (mo.ir_version, mi.ir_version))
            if oc.default_opset(mo) != oc.default_opset(mi):
                diag.append("output opset %s != input %s" % (oc.default_opset(mo), oc.default_opset(mi)))
            tap.add(n_bn == fx["bn_after"] and not diag,
                    "%s: output has %d BatchNormalization nodes (expected %d), removed = report's folded" % (
                        name, n_bn, fx["bn_after"]), diag)
            new_probs = sorted(oc.name_problems(mo) - oc.name_problems(mi))
            tap.add(not new_probs, "%s: output names unique, no subgraph shadows an enclosing graph" % name,
                    new_probs[:10])
            orphans = sorted(oc.unused_initializers(mo) - oc.unused_initializers(mi))
            tap.add(not orphans, "%s: no initializer left without a reader by the fold" % name,
                    ["graph '%s': '%s'" % o for o in orphans[:10]])
            if fx.get("fusion_names"):
                got = {f.get("bn"): dict(weight=f.get("weight"), bias=f.get("bias"))
                       for f in (rep or {}).get("fusions", [])}
                bad = ["%s: expected %s, report says %s" % (bn, want, got.get(bn))
                       for bn, want in sorted(fx["fusion_names"].items()) if got.get(bn) != want]
                tap.add(not bad, "%s: folded layers read the expected new tensors %s" % (
                    name, sorted(fx["fusion_names"].items())), bad)
            if fx.get("numeric"):
                checks = numeric.check(mi, mo, rep or {}) if rep is not None else []
                if numeric_control is None and checks and all(c[0] for c in checks) and \
                        rep["fusions"][0].get("dtype") != "float64" and \
                        any(n.name == rep["fusions"][0].get("layer") for n in mo.graph.node):
                    # float64 allows a few ulps; the control edits the main graph
                    numeric_control = (name, src, out, rep)
                if not checks:
                    tap.fail("%s: numpy oracle" % name, "no fusion to check (report missing or empty)")
                for ok, label, ndiag, worst in checks:
                    tap.add(ok, "%s: numpy oracle: %s folded tensors correctly rounded" % (name, label), ndiag)
                    for dt, (u, rel) in worst.items():
                        w = numeric_worst.setdefault(dt, [0.0, 0.0, ""])
                        if u >= w[0]:
                            w[0], w[2] = u, name
                        w[1] = max(w[1], rel)
            del mo, mi
            if fx.get("checker", True):
                full = bool(fx.get("full_check", False))
                err = oc.run_checker(out, full_check=full)
                tap.add(err is None, "%s: onnx.checker%s passes on output" % (name, " (full_check)" if full else ""), err)
            else:
                tap.skip("%s: onnx.checker on output" % name, "fixture says checker=false")
            if fx.get("byte_identical", fx["folded"] == 0 and fx.get("affine_folded", 0) == 0):
                same = oc.files_identical(src, out)
                tap.add(same, "%s: output byte-identical to input (nothing folded)" % name,
                        None if same else "sizes %d vs %d" % (os.path.getsize(src), os.path.getsize(out)))
            if fx.get("equivalence"):
                idx = len(tap.results)
                tap.fail("%s: ORT equivalent" % name, "(placeholder)")
                equiv_lines.append((idx, name))
                job = dict(id=name, original=os.path.abspath(src), folded=os.path.abspath(out),
                           rtol=fx.get("rtol", 1e-5), atol=fx.get("atol", 1e-5))
                job.update({k: fx[k] for k in ("rtol16", "atol16") if k in fx})
                jobs.append(job)
        except Exception:  # noqa: BLE001
            tap.fail("%s: driver error" % name, traceback.format_exc())

    # ---- negative controls
    import numpy as np
    controls = {}
    for cid, dts, factor in CONTROLS:
        for j in list(jobs):
            try:
                made = make_perturbed(j["folded"], os.path.join(work, cid + ".perturbed.onnx"),
                                      tuple(np.dtype(d) for d in dts), factor)
            except Exception:  # noqa: BLE001
                made = None
            if made:
                idx = len(tap.results)
                tap.fail("oracle control", "(placeholder)")
                equiv_lines.append((idx, cid))
                jobs.append(dict(id=cid, original=j["original"], folded=made[0], rtol=1e-5, atol=1e-5))
                controls[cid] = (j["id"], made[1], factor)
                break

    # ---- negative control: the numpy oracle must flag a folded value one ulp off
    if numeric_control:
        try:
            tap.add(*numeric_control_line(*numeric_control))
        except Exception:  # noqa: BLE001
            tap.fail("numpy oracle control", traceback.format_exc())

    # ---- equivalence batch
    if equiv_lines:
        if ort_err:
            results, err = {}, ort_err
        else:
            extra = ["--seed", str(args.seed)] + ([] if args.no_expose_bn else ["--expose-bn"])
            results, err = oc.run_equiv_batch(args.equiv, args.node_modules, jobs, work, extra)
        for idx, name in equiv_lines:
            r = results.get(name)
            if name in controls:
                desc = "oracle control: equiv.mjs flags %s with weight %s scaled by %g" % controls[name]
                good = r is not None and not r.get("ok") and not r.get("error")
                tap.results[idx] = (good, oc.clean(desc), None, [] if good else [
                    "expected DIFF, got: %s" % (json.dumps(r)[:1500] if r else (err or "no result"))])
                continue
            if r is None:
                tap.results[idx] = (False, oc.clean("%s: ORT equivalent" % name), None,
                                    [err or "equiv.mjs gave no result for this pair"])
                continue
            ok, text, diag = oc.equiv_summary(r)
            desc = "%s: ORT %s (%s)" % (name, "equivalent" if ok else "NOT equivalent", text)
            tap.results[idx] = (ok, oc.clean(desc), None, diag if not ok else [])

    trailer = ["", "fixture | BN found | folded | skipped"]
    trailer += ["%s | %s | %s | %s" % row for row in table]
    if numeric_worst:
        trailer += ["", "numpy oracle, worst folded value per type: ulps of the type | relative error | fixture"]
        trailer += ["%s | %.3g | %.3g | %s" % (dt, w[0], w[1], w[2]) for dt, w in sorted(numeric_worst.items())]
    if not args.keep and not args.workdir:
        import shutil
        shutil.rmtree(work, ignore_errors=True)
    return finish(trailer)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:  # noqa: BLE001
        sys.stdout.write("TAP version 13\n1..1\nnot ok 1 - test_fixtures.py crashed\n")
        for line in traceback.format_exc().splitlines():
            sys.stdout.write("# %s\n" % line)
        sys.exit(1)
