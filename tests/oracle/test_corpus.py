#!/usr/bin/python3
"""TAP driver: run bnfold --fold-overridable on every model of the shared
corpus (INDEX.tsv) and check the result with independent oracles.

    /usr/bin/python3 tests/oracle/test_corpus.py --bnfold build/bnfold \
        --schema src/lib/report.schema.json --equiv tests/oracle/equiv.mjs \
        --node-modules tests/node_modules --workdir TMPDIR \
        [--corpus ../shared/corpus]

Without the corpus folder it prints `1..0 # SKIP ...` and exits 0.

Per model (TAP lines):
  - bnfold exits 0 and the report is valid against the schema (+ consistent)
  - report bn_found == n_bn; BN nodes in the output == n_bn - folded;
    folded == conv_bn - producer_out_multi_use - producer_weight_not_const (from INDEX.tsv);
    the output defines no name twice and leaves no initializer without a reader
    that the input did not already have
  - output byte-identical to the input when nothing was folded
  - models whose BN parameters are initializers also listed as graph inputs
    (IR >= 4, INDEX.tsv bn_params_init_also_input: UltraFace): the folded
    ones left the graph inputs; without --fold-overridable those BNs are
    skipped with param_is_graph_input and the output is the input
  - onnx.checker passes on the output when it passes on the input
    (notes column has `[auto] checker=ok`)
  - ORT equivalence (rtol 1e-5, atol 1e-5; final outputs and every BN output
    tensor) when something was folded; SKIP when ORT cannot run the original
  - with test_data_set_0/: the folded model reproduces the stored output
    (rtol 1e-3, atol 1e-4); SKIP when ORT cannot run the model
A summary table is printed as `#` lines at the end.
"""

import csv
import json
import os
import shutil
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle_common as oc  # noqa: E402

ORIGINAL_STAGES = ("load_original", "run_original")


def parse_patterns(s):
    d = {}
    for part in (s or "").split(";"):
        if "=" in part:
            k, v = part.split("=", 1)
            d[k.strip()] = v.strip()
    return d


def as_int(v, default=0):
    try:
        return int(v)
    except (TypeError, ValueError):
        return default


def check_overridable(tap, bnfold, rel, src, out, rep, n_overridable, work, tag):
    """A model whose BN parameters are initializers also listed as graph inputs
    (IR >= 4; INDEX.tsv bn_params_init_also_input): with --fold-overridable
    (the run in rep) the folded entries left the graph inputs, as many as
    the report says; without it those BNs are skipped with
    param_is_graph_input, and when nothing else folds the output is the input."""
    mi, mo = oc.load_model(src), oc.load_model(out)
    dropped = len(mi.graph.input) - len(mo.graph.input)
    left = {i.name for i in mo.graph.input} & {t.name for t in mo.graph.initializer} & \
        {n for f in rep.get("fusions", []) for n in (f.get("weight"), f.get("bias"))}
    got = rep["counts"].get("graph_inputs_removed")
    ok = dropped > 0 and got == dropped and not left
    tap.add(ok, "%s: --fold-overridable removed %s folded initializers from the graph inputs" % (rel, got),
            None if ok else ["report graph_inputs_removed=%s, graph inputs %d -> %d; folded tensors still inputs: %s" % (
                got, len(mi.graph.input), len(mo.graph.input), sorted(left))])
    del mi, mo
    strict = os.path.join(work, tag + ".strict.onnx")
    rep_path = strict + ".json"
    r = oc.run_bnfold(bnfold, src, strict, rep_path)
    diag = oc.describe_run(r) if r["rc"] != 0 else []
    sk = {}
    if r["rc"] == 0:
        with open(rep_path) as f:
            srep = oc.report_entry(json.load(f))
        sk = oc.skipped_by_reason(srep)
        folded = srep["counts"]["folded"]
        ok = sk.get("param_is_graph_input") == n_overridable
        if ok and folded == 0 and not srep.get("affine_fusions"):
            ok = oc.files_identical(src, strict)
            if not ok:
                diag.append("nothing folded but the output differs from the input")
        diag.append("folded %d, skipped %s" % (folded, oc.fmt_reasons(sk)))
    else:
        ok = False
    tap.add(ok, "%s: without --fold-overridable, %d BN skipped param_is_graph_input" % (rel, n_overridable), diag)
    for p in (strict, rep_path):
        if os.path.exists(p):
            os.remove(p)


def main():
    ap, root = oc.common_arg_parser(__doc__.split("\n")[0])
    ap.add_argument("--corpus", default=None,
                    help="corpus folder (default: ../shared/corpus relative to the repository root)")
    ap.add_argument("--only", action="append", default=[], help="run only models whose path contains this")
    ap.add_argument("--rtol", type=float, default=1e-5)
    ap.add_argument("--atol", type=float, default=1e-5)
    args = ap.parse_args()
    corpus = args.corpus or os.path.join(root, "..", "shared", "corpus")
    corpus_shown = args.corpus or "../shared/corpus"
    index = os.path.join(corpus, "INDEX.tsv")
    if not os.path.isdir(corpus):
        sys.stdout.write("TAP version 13\n1..0 # SKIP corpus folder %s not found\n" % corpus_shown)
        return 0
    tap = oc.Tap()
    t_start = time.monotonic()
    if oc.onnx is None or oc.jsonschema is None:
        tap.fail("python prerequisites", "need the onnx and jsonschema modules (run with /usr/bin/python3); "
                 "python is %s" % sys.executable)
        return tap.emit()
    try:
        with open(index, newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    except OSError as e:
        tap.fail("read %s" % index, str(e))
        return tap.emit()
    try:
        schema = oc.load_schema(args.schema)
    except (OSError, ValueError) as e:
        tap.fail("read report schema %s" % args.schema, str(e))
        return tap.emit()
    if not os.path.isfile(args.bnfold) or not os.access(args.bnfold, os.X_OK):
        tap.fail("bnfold binary present", "no executable at %s (build with: meson setup build && ninja -C build)" % args.bnfold)
        return tap.emit()
    if args.only:
        rows = [r for r in rows if any(s in r["path"] for s in args.only)]

    work = oc.make_workdir(args.workdir, "corpus")
    ort_err = oc.ort_problem(args.equiv, args.node_modules)
    jobs = []
    pending = {}   # id -> dict(equiv=idx or None, ref=idx or None)
    table = {}     # path -> dict(...)
    outputs = []
    fold_seconds = 0.0

    for k, row in enumerate(rows):
        rel = row["path"]
        src = os.path.join(corpus, rel)
        pat = parse_patterns(row.get("patterns"))
        n_bn = as_int(row.get("n_bn"))
        conv_bn = as_int(pat.get("conv_bn"))
        checker_in_ok = "[auto] checker=ok" in (row.get("notes") or "")
        tag = "%02d_%s" % (k, rel.replace("/", "__").replace(".onnx", ""))
        out = os.path.join(work, tag + ".folded.onnx")
        rep_path = os.path.join(work, tag + ".report.json")
        info = dict(bn=n_bn, found="-", folded="-", left="-", affine="-", reasons="-", conv_bn=conv_bn, err="-",
                    verify="-", seconds=None)
        table[rel] = info
        oc.progress("corpus %s" % rel)
        try:
            if not os.path.isfile(src):
                tap.fail("%s: model file exists" % rel, "missing %s" % src)
                continue
            before = oc.sha256(src)
            r = oc.run_bnfold(args.bnfold, src, out, rep_path, ["--fold-overridable"])
            fold_seconds += r["seconds"]
            info["seconds"] = r["seconds"]
            rep, errs, probs = None, [], []
            if r["rc"] == 0:
                try:
                    with open(rep_path) as f:
                        rep = json.load(f)
                    errs = oc.schema_errors(rep, schema)
                    probs = oc.report_consistency(rep) if not errs else []
                    rep = oc.report_entry(rep) if not errs else rep
                except (OSError, ValueError) as e:
                    errs = ["report unreadable: %s" % e]
            unchanged = oc.sha256(src) == before
            ok = r["rc"] == 0 and rep is not None and not errs and not probs and unchanged
            diag = []
            if r["rc"] != 0:
                diag += oc.describe_run(r)
            diag += errs[:10] + probs
            if not unchanged:
                diag.append("bnfold modified its INPUT file")
            tap.add(ok, "%s: bnfold --fold-overridable exits 0, report schema-valid (%.2fs)" % (rel, r["seconds"]), diag)
            if r["rc"] == 0:
                same, sdiag = oc.same_as_simple_path(args.bnfold, src, out, ["--fold-overridable"])
                tap.add(same, "%s: streamed output byte-identical to --no-stream" % rel, sdiag)
            if r["rc"] != 0 or rep is None or errs:
                continue

            c = rep["counts"]
            reasons = oc.skipped_by_reason(rep)
            info.update(found=c["bn_found"], folded=c["folded"], affine=c.get("affine_folded", 0),
                        reasons=oc.fmt_reasons(reasons))
            if isinstance(rep.get("verify"), dict) and rep["verify"].get("checked"):
                info["verify"] = oc.fmt_e(rep["verify"].get("max_rel_err"))

            # ---- counts
            diag = ["folded %d of conv_bn=%d (gemm_bn=%s convtranspose_bn=%s matmul_bn=%s); skipped %s" % (
                c["folded"], conv_bn, pat.get("gemm_bn"), pat.get("convtranspose_bn"), pat.get("matmul_bn"),
                oc.fmt_reasons(reasons))]
            bad = []
            if c["bn_found"] != n_bn:
                bad.append("report bn_found=%d but INDEX n_bn=%d" % (c["bn_found"], n_bn))
            n_out = None
            if os.path.isfile(out):
                try:
                    mo = oc.load_model(out)
                    mi = oc.load_model(src)
                    n_out = oc.count_ops(mo.graph)
                    # what the files show against what the report claims
                    removed = oc.count_ops(mi.graph) - n_out
                    if removed != c["folded"]:
                        bad.append("%d BatchNormalization nodes removed, the report claims %d folded" % (removed, c["folded"]))
                    aff = oc.affine_removed(mi, mo)
                    if aff != c.get("affine_folded", 0):
                        bad.append("%d Mul/Add nodes removed, the report claims %s affine_folded" % (aff, c.get("affine_folded", 0)))
                except Exception as e:  # noqa: BLE001
                    bad.append("output does not parse: %s: %s" % (type(e).__name__, str(e)[:300]))
            else:
                bad.append("no output model written")
            if n_out is not None:
                mi = oc.load_model(src)
                bad += ["new name problem: %s" % p for p in sorted(oc.name_problems(mo) - oc.name_problems(mi))[:5]]
                bad += ["initializer left without a reader: graph '%s': '%s'" % o
                        for o in sorted(oc.unused_initializers(mo) - oc.unused_initializers(mi))[:5]]
                del mi, mo
            info["left"] = n_out if n_out is not None else "-"
            if n_out is not None and n_out != n_bn - c["folded"]:
                bad.append("output has %d BatchNormalization nodes, expected n_bn - folded = %d" % (n_out, n_bn - c["folded"]))
            # INDEX.tsv (written by another tool) counts Conv->BN pairs; the ones
            # that must stay are those whose Conv output has another reader or
            # whose weight is not constant.  Every other pair must fold.
            # Layer -> Add(constant) -> BN folds too (the Add becomes the bias).
            # BNs folded into the Conv after them (bn_conv) are counted apart.
            must_fold = (conv_bn + as_int(pat.get("convtranspose_bn")) + as_int(pat.get("gemm_bn"))
                         + as_int(pat.get("matmul_bn")) + as_int(pat.get("producer_add_bn"))
                         - as_int(pat.get("producer_out_multi_use")) - as_int(pat.get("producer_weight_not_const")))
            after_layer = sum(1 for f in rep.get("fusions", []) if f.get("pattern") != "bn_conv")
            # BNs that reach their layer through Transposes undoing each other
            # (INDEX.tsv counts only direct pairs), told apart in the original
            g0 = oc.load_model(src).graph
            prod = {o: n.op_type for n in g0.node for o in n.output}
            bn_in = {n.output[0]: n.input[0] for n in g0.node if n.op_type == "BatchNormalization" and n.output}
            via = sum(1 for f in rep.get("fusions", []) if f.get("pattern") != "bn_conv" and
                      prod.get(bn_in.get(f.get("bn_output"), "")) in ("Transpose", "Identity"))
            del g0
            after_layer -= via
            if after_layer != must_fold:
                bad.append("folded %d into the layer before, INDEX.tsv says %d layer->BN pairs can fold"
                           % (after_layer, must_fold))
            tap.add(not bad, "%s: bn_found=%d folded=%d (conv_bn=%d) BN left=%s, removed = report's folded" % (
                rel, c["bn_found"], c["folded"], conv_bn, n_out), bad + diag)
            if not os.path.isfile(out):
                continue
            outputs.append(out)

            # ---- overridable initializers: folded with the flag, left without it
            overridable = as_int(pat.get("bn_params_init_also_input"))
            if overridable and as_int(row.get("ir_version")) >= 4:
                check_overridable(tap, args.bnfold, rel, src, out, rep, overridable, work, tag)

            # ---- nothing folded: bytes identical
            if c["folded"] == 0:
                same = oc.files_identical(src, out)
                tap.add(same, "%s: output byte-identical to input (nothing folded)" % rel,
                        None if same else "sizes %d vs %d" % (os.path.getsize(src), os.path.getsize(out)))

            # ---- checker
            if checker_in_ok:
                err = oc.run_checker(out)
                tap.add(err is None, "%s: onnx.checker passes on output" % rel, err)
            else:
                note = (row.get("notes") or "")
                note = note[note.find("[auto]"):] if "[auto]" in note else "no checker note"
                tap.skip("%s: onnx.checker on output" % rel, "input does not pass the checker either (%s)" % note[:120])

            # ---- ORT
            job = dict(id=rel)
            ids = {}
            if c["folded"] > 0:
                job.update(original=os.path.abspath(src), folded=os.path.abspath(out), rtol=args.rtol, atol=args.atol)
                ids["equiv"] = len(tap.results)
                tap.fail("%s: ORT equivalent" % rel, "(placeholder)")
            ref_dir = os.path.join(os.path.dirname(src), "test_data_set_0")
            if os.path.isdir(ref_dir):
                job.update(ref=os.path.abspath(ref_dir), ref_rtol=1e-3, ref_atol=1e-4)
                if "folded" not in job:
                    job.update(original=os.path.abspath(src), folded=os.path.abspath(out), compare=False)
                ids["ref"] = len(tap.results)
                tap.fail("%s: folded output matches test_data_set_0" % rel, "(placeholder)")
            if ids:
                jobs.append(job)
                pending[rel] = ids
        except Exception:  # noqa: BLE001
            tap.fail("%s: driver error" % rel, traceback.format_exc())

    # ---- ORT batch
    t_equiv = time.monotonic()
    if pending:
        if ort_err:
            results, err = {}, ort_err
        else:
            extra = ["--seed", str(args.seed)] + ([] if args.no_expose_bn else ["--expose-bn"])
            results, err = oc.run_equiv_batch(args.equiv, args.node_modules, jobs, work, extra)
        for rel, ids in pending.items():
            r = results.get(rel)
            if "equiv" in ids:
                idx = ids["equiv"]
                if r is None:
                    tap.results[idx] = (False, oc.clean("%s: ORT equivalent" % rel), None,
                                        [err or "equiv.mjs gave no result for this pair"])
                elif r.get("error") and r.get("stage") in ORIGINAL_STAGES:
                    why = r["error"].split("\n")[0][:160]
                    tap.results[idx] = (True, oc.clean("%s: ORT equivalent" % rel),
                                        "SKIP ORT 1.30 cannot run the original (%s)" % oc.clean(why), [])
                    table[rel]["err"] = "ORT n/a"
                else:
                    ok, text, diag = oc.equiv_summary(r)
                    desc = "%s: ORT %s (%s)" % (rel, "equivalent" if ok else "NOT equivalent", text)
                    tap.results[idx] = (ok, oc.clean(desc), None, diag if not ok else [])
                    if r.get("error"):
                        table[rel]["err"] = "ORT error (%s)" % r.get("stage")
                    else:
                        table[rel]["err"] = "%s / %s%s" % (oc.fmt_e(oc.worst(r, "max_abs_err")),
                                                           oc.fmt_e(oc.worst(r, "max_rel_err")), "" if ok else " DIFF")
            if "ref" in ids:
                idx = ids["ref"]
                desc = "%s: folded output matches test_data_set_0" % rel
                rf, ro = (r or {}).get("ref_folded"), (r or {}).get("ref_original")
                if r is None or rf is None:
                    tap.results[idx] = (False, oc.clean(desc), None, [err or "equiv.mjs gave no reference result"])
                elif rf.get("error") and (ro is None or ro.get("error")) and rf.get("stage") in ("load", "run") \
                        and (ro is None or ro.get("stage") in ("load", "run")):
                    why = rf["error"].split("\n")[0][:160]
                    tap.results[idx] = (True, oc.clean(desc), "SKIP ORT 1.30 cannot run this model (%s)" % oc.clean(why), [])
                else:
                    ok, text, diag = oc.equiv_summary(rf)
                    if ro is not None and not ro.get("error"):
                        diag.append("original vs reference: %s (max_abs %s)" % (
                            "ok" if ro.get("ok") else "DIFF", oc.fmt_e(oc.worst(ro, "max_abs_err"))))
                    tap.results[idx] = (ok, oc.clean("%s (%s)" % (desc, text)), None, diag if not ok else [])
    t_end = time.monotonic()

    # ---- table
    trailer = ["", "corpus summary (%d models; bnfold %.1fs total, ORT %.1fs, wall %.1fs)" % (
        len(rows), fold_seconds, t_end - t_equiv, t_end - t_start)]
    trailer.append("BN: in the model (INDEX.tsv), found by bnfold, folded, left in the output; Mul/Add: folded "
                   "per-channel Mul/Add; verify: worst max_rel_err of bnfold's own check; ORT: worst error "
                   "of the folded model's outputs")
    head = ("model", "BN", "found", "folded", "left", "Mul/Add", "conv_bn", "skipped", "verify",
            "ORT max_abs / max_rel", "bnfold s")
    body = [(rel, str(i["bn"]), str(i["found"]), str(i["folded"]), str(i["left"]), str(i["affine"]), str(i["conv_bn"]),
             i["reasons"], i["verify"], i["err"], "%.2f" % i["seconds"] if i["seconds"] is not None else "-")
            for rel, i in table.items()]
    widths = [max(len(x[j]) for x in [head] + body) for j in range(len(head))]
    for line in [head] + body:
        trailer.append("  ".join(x.ljust(widths[j]) for j, x in enumerate(line)).rstrip())
    if not args.keep:
        for o in outputs:
            try:
                os.remove(o)
            except OSError:
                pass
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return tap.emit(trailer)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:  # noqa: BLE001
        sys.stdout.write("TAP version 13\n1..1\nnot ok 1 - test_corpus.py crashed\n")
        for line in traceback.format_exc().splitlines():
            sys.stdout.write("# %s\n" % line)
        sys.exit(1)
