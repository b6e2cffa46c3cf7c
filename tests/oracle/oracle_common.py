"""Shared helpers for the bnfold TAP test drivers (test_fixtures.py, test_corpus.py).

Run with /usr/bin/python3 (needs onnx, numpy, jsonschema). Nothing here imports
bnfold code: these are independent oracles.
"""

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

try:
    import onnx
except ImportError:  # reported by the drivers as a failure, never a silent skip
    onnx = None
try:
    import jsonschema
except ImportError:
    jsonschema = None


# --------------------------------------------------------------------- TAP

class Tap:
    """Collects TAP results and prints them (plan first) at the end."""

    def __init__(self):
        self.results = []  # (ok, desc, directive, diag_lines)

    def add(self, ok, desc, diag=None, skip=None, todo=None):
        directive = None
        if skip is not None:
            ok, directive = True, "SKIP " + skip
        elif todo is not None:
            directive = "TODO " + todo
        lines = []
        if diag:
            for d in (diag if isinstance(diag, (list, tuple)) else [diag]):
                lines.extend(str(d).splitlines() or [""])
        self.results.append((bool(ok), clean(desc), directive, lines))
        return bool(ok)

    def ok(self, desc, diag=None):
        return self.add(True, desc, diag)

    def fail(self, desc, diag=None):
        return self.add(False, desc, diag)

    def skip(self, desc, reason):
        return self.add(True, desc, skip=reason)

    def emit(self, trailer=None, out=sys.stdout):
        w = out.write
        w("TAP version 13\n")
        w("1..%d\n" % len(self.results))
        for k, (ok, desc, directive, lines) in enumerate(self.results, 1):
            w("%s %d - %s%s\n" % ("ok" if ok else "not ok", k, desc,
                                  (" # " + directive) if directive else ""))
            for line in lines:
                w("# %s\n" % line if line else "#\n")
        for line in trailer or []:
            w("# %s\n" % line if line else "#\n")
        n_fail = sum(1 for ok, _, d, _ in self.results if not ok and not (d or "").startswith("TODO"))
        n_skip = sum(1 for _, _, d, _ in self.results if (d or "").startswith("SKIP"))
        w("# %d passed, %d failed, %d skipped\n" % (len(self.results) - n_fail - n_skip, n_fail, n_skip))
        out.flush()
        return 0 if n_fail == 0 else 1


def clean(desc):
    # '#' would start a TAP directive; newlines would break the line.
    return " ".join(str(desc).replace("#", "No.").split())


def progress(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


# --------------------------------------------------------------------- files

def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def files_identical(a, b):
    if os.path.getsize(a) != os.path.getsize(b):
        return False
    return sha256(a) == sha256(b)


def fmt_e(x):
    if x is None:
        return "-"
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if x == 0:
        return "0"
    return "%.1e" % x


# --------------------------------------------------------------------- bnfold

def run_bnfold(bnfold, inp, out, report, extra_args=(), timeout=300):
    """Run bnfold; returns dict(rc, stdout, stderr, seconds, error)."""
    # BNFOLD_WRAPPER: set by the valgrind test setup (tests/meson.build).
    cmd = shlex.split(os.environ.get("BNFOLD_WRAPPER", "")) + [bnfold, inp, "-o", out, "--report", report] + list(extra_args)
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(rc=None, stdout="", stderr="", seconds=time.monotonic() - t0, cmd=cmd,
                    error="timed out after %ds" % timeout)
    except OSError as e:
        return dict(rc=None, stdout="", stderr="", seconds=time.monotonic() - t0, cmd=cmd,
                    error="cannot run %s: %s" % (bnfold, e))
    return dict(rc=p.returncode, stdout=p.stdout.decode("utf-8", "replace"),
                stderr=p.stderr.decode("utf-8", "replace"), seconds=time.monotonic() - t0,
                cmd=cmd, error=None)


def same_as_simple_path(bnfold, inp, out, extra_args=()):
    """Fold inp again with --no-stream (every payload in memory, the simple
    path) and compare with the streamed output `out`.  Returns (ok, diag)."""
    simple = out + ".simple.onnx"
    rep = out + ".simple.json"
    r = run_bnfold(bnfold, inp, simple, rep, list(extra_args) + ["--no-stream"])
    if r["rc"] != 0:
        return False, describe_run(r)
    a, b = sha256(out), sha256(simple)
    os.unlink(simple)
    os.unlink(rep)
    return a == b, [] if a == b else ["streamed %s != --no-stream %s" % (a[:16], b[:16])]


def tail(text, n=15):
    lines = (text or "").rstrip().splitlines()
    if len(lines) > n:
        lines = ["... (%d lines)" % (len(lines) - n)] + lines[-n:]
    return lines


def describe_run(r):
    d = ["cmd: " + " ".join(r["cmd"]), "exit: %s (%.2fs)" % (r["rc"], r["seconds"])]
    if r.get("error"):
        d.append("error: " + r["error"])
    if r.get("stderr"):
        d.append("stderr:")
        d.extend("  " + x for x in tail(r["stderr"]))
    return d


# --------------------------------------------------------------------- report

def load_schema(path):
    with open(path) as f:
        return json.load(f)


def schema_errors(report, schema):
    """List of readable schema violations (empty when valid)."""
    if jsonschema is None:
        return ["python module jsonschema is not installed"]
    v = jsonschema.Draft7Validator(schema)
    errs = []
    for e in sorted(v.iter_errors(report), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in e.absolute_path) or "(root)"
        errs.append("%s: %s" % (where, e.message[:300]))
    return errs


REPORT_SUMMED = ("bn_found", "folded", "affine_folded", "skipped", "affine_skipped",
                 "nodes_before", "nodes_after", "graph_inputs_removed")


def report_entry(doc, i=0):
    """Entry i of a report's inputs (the only one for a run over one input)."""
    return doc["inputs"][i]


def totals_problems(doc):
    """The totals of a report against its entries: inputs counted, errors
    counted by exit status, counts summed over the inputs without an error."""
    probs = []
    ins, t = doc.get("inputs", []), doc.get("totals", {})
    ok = [e for e in ins if "error" not in e]
    want = {"inputs": len(ins),
            "failed": sum(1 for e in ins if e.get("error", {}).get("exit") == 1),
            "verify_failed": sum(1 for e in ins if e.get("error", {}).get("exit") == 4)}
    for k in REPORT_SUMMED:
        want[k] = sum(e["counts"][k] for e in ok)
    for k, v in want.items():
        if t.get(k) != v:
            probs.append("totals.%s=%s but the inputs make %s" % (k, t.get(k), v))
    for e in ins:
        err = e.get("error")
        if err and (err["exit"] == 4) != (err["code"] == "verify_failed"):
            probs.append("%s: error %s with exit %s" % (e["input"], err["code"], err["exit"]))
        if err and "counts" in e and (err["code"] != "verify_failed" or e.get("output") is not None):
            probs.append("%s: only a verify failure keeps its details, with output null" % e["input"])
    return probs


def report_consistency(doc):
    """Internal consistency checks of a schema-valid report: its totals,
    and each entry that has details."""
    probs = totals_problems(doc)
    opts = doc.get("options") or {}
    for e in doc.get("inputs", []):
        if "counts" in e:
            probs.extend("%s: %s" % (e["input"], p) for p in entry_consistency(e, opts))
    return probs


def entry_consistency(rep, opts):
    """Internal consistency checks of one input's entry."""
    probs = []
    c = rep.get("counts", {})
    fus, sk = rep.get("fusions", []), rep.get("skipped", [])
    if c.get("folded") != len(fus):
        probs.append("counts.folded=%s but %d fusions[]" % (c.get("folded"), len(fus)))
    if c.get("skipped") != len(sk):
        probs.append("counts.skipped=%s but %d skipped[]" % (c.get("skipped"), len(sk)))
    if c.get("affine_skipped") != len(rep.get("affine_skipped", [])):
        probs.append("counts.affine_skipped=%s but %d affine_skipped[]" % (
            c.get("affine_skipped"), len(rep.get("affine_skipped", []))))
    if c.get("affine_folded") != len(rep.get("affine_fusions", [])):
        probs.append("counts.affine_folded=%s but %d affine_fusions[]" % (
            c.get("affine_folded"), len(rep.get("affine_fusions", []))))
    if c.get("bn_found") != c.get("folded", 0) + c.get("skipped", 0):
        probs.append("bn_found=%s != folded %s + skipped %s" % (c.get("bn_found"), c.get("folded"), c.get("skipped")))
    if isinstance(c.get("nodes_before"), int) and isinstance(c.get("nodes_after"), int):
        if c["nodes_after"] > c["nodes_before"] - c.get("folded", 0):
            probs.append("nodes_after=%d > nodes_before %d - folded %d" % (c["nodes_after"], c["nodes_before"], c.get("folded", 0)))
    outs = [f.get("bn_output") for f in fus]
    if len(set(outs)) != len(outs):
        probs.append("duplicate bn_output in fusions[]")
    probs.extend(label_problems(rep))
    if "error" not in rep:
        probs.extend(verify_problems(rep, opts))
    return probs


def label_problems(rep):
    """Each node's name for people: its name when it has one, else the op
    and its output ("(unnamed OP, output NAME)")."""
    probs = []

    def want(name, op, output):
        return name if name else "(unnamed %s, output %s)" % (op, output) if output else "(unnamed %s)" % op

    for f in rep.get("fusions", []):
        if f.get("bn_label") != want(f.get("bn"), "BatchNormalization", f.get("bn_output")):
            probs.append("fusion %r: bn_label %r" % (f.get("bn_output"), f.get("bn_label")))
    for f in rep.get("affine_fusions", []):
        if f.get("node_label") != want(f.get("node"), f.get("node_op"), f.get("output")):
            probs.append("affine fusion %r: node_label %r" % (f.get("output"), f.get("node_label")))
    for s in rep.get("skipped", []):
        if s.get("bn_label") != want(s.get("bn"), "BatchNormalization", s.get("bn_output")):
            probs.append("skip %r: bn_label %r" % (s.get("bn_output"), s.get("bn_label")))
    for f in rep.get("fusions", []) + rep.get("affine_fusions", []) + rep.get("skipped", []) + rep.get("affine_skipped", []):
        if f.get("layer") and f.get("layer_label") != f.get("layer"):
            probs.append("%r: layer_label %r for layer %r" % (f.get("bn_output", f.get("output")), f.get("layer_label"), f.get("layer")))
        if f.get("layer") is None and f.get("layer_label") is not None:
            probs.append("%r: a layer_label without a layer" % (f.get("bn_output", f.get("output")),))
    return probs


UNIT_ROUNDOFF = {"float32": 2.0 ** -24, "float64": 2.0 ** -53, "float16": 2.0 ** -11, "bfloat16": 2.0 ** -8}


def verify_problems(rep, opts):
    """Checks of bnfold's per-fusion numeric verification in a report (none
    when the run had --no-verify): every fusion verified and within its
    tolerance; the default tolerance is 2u + (n + 8) 2^-52 for the dtype's
    unit roundoff u and n terms per output; and, from the rounding analysis
    (each stored value rounded once), max_rel_err <= u + (n + 8) 2^-52."""
    probs = []
    every = (rep.get("fusions") or []) + (rep.get("affine_fusions") or [])
    if not opts.get("verify"):
        if "verify" in rep or any("verify" in f for f in every):
            probs.append("verify results in a report made without verification")
        return probs
    s = rep.get("verify")
    if not isinstance(s, dict):
        return ["options.verify is true but the report has no verify summary"]
    if s.get("checked") != len(every):
        probs.append("verify.checked=%s but %d fusions" % (s.get("checked"), len(every)))
    if s.get("failed") != 0:
        probs.append("verify.failed=%s in a report of a written model" % s.get("failed"))
    rels, abss = [], []
    for f in every:
        v = f.get("verify")
        name = "%s %s" % (f.get("pattern"), f.get("bn", f.get("node")))
        if not isinstance(v, dict):
            probs.append("%s: no verify object" % name)
            continue
        rel, tol, n = v.get("max_rel_err"), v.get("tolerance"), v.get("terms")
        if not v.get("ok") or rel is None or not rel <= tol:
            probs.append("%s: verify not ok (max_rel_err %s, tolerance %s, problem %s)" % (name, rel, tol, v.get("problem")))
            continue
        rels.append(rel)
        abss.append(v.get("max_abs_err"))
        u = UNIT_ROUNDOFF.get(f.get("dtype"))
        if u is None:
            probs.append("%s: unknown dtype %s" % (name, f.get("dtype")))
            continue
        slack = (n + 8) * 2.0 ** -52
        if opts.get("tolerance") is None and abs(tol - (2 * u + slack)) > 1e-12 * tol:
            probs.append("%s: tolerance %r, expected 2u + (n + 8) 2^-52 = %r" % (name, tol, 2 * u + slack))
        if rel > u + slack:
            probs.append("%s: max_rel_err %r exceeds one rounding of %s (%r)" % (name, rel, f.get("dtype"), u + slack))
    if rels and (s.get("max_rel_err") != max(rels) or s.get("max_abs_err") != max(abss)):
        probs.append("verify summary max_rel_err/max_abs_err are not the fusions' worst")
    return probs


def skipped_by_reason(rep, key="skipped"):
    d = {}
    for s in rep.get(key, []) or []:
        d[s.get("reason")] = d.get(s.get("reason"), 0) + 1
    return d


def fmt_reasons(d):
    return ",".join("%s:%d" % (k, v) for k, v in sorted(d.items())) or "-"


# --------------------------------------------------------------------- models

def subgraphs(node):
    for a in node.attribute:
        if a.type == onnx.AttributeProto.GRAPH:
            yield a.g
        elif a.type == onnx.AttributeProto.GRAPHS:
            for g in a.graphs:
                yield g


def count_ops(graph, op_type="BatchNormalization"):
    n = 0
    for node in graph.node:
        if node.op_type == op_type and node.domain in ("", "ai.onnx"):
            n += 1
        for g in subgraphs(node):
            n += count_ops(g, op_type)
    return n


def count_ops_model(model, op_type="BatchNormalization"):
    """count_ops over the main graph (subgraphs included) and every function body."""
    n = count_ops(model.graph, op_type)
    for f in model.functions:
        n += count_ops(f, op_type)
    return n


def affine_removed(mi, mo):
    """Mul/Add nodes of the main graph that the fold removed, not counting
    those that only computed a constant (their inputs all initializers or
    Constant outputs): bnfold evaluates those and drops them once unread."""
    def n_affine(m):
        consts = {t.name for t in m.graph.initializer}
        consts |= {o for n in m.graph.node if n.op_type == "Constant" for o in n.output}
        return sum(1 for n in m.graph.node
                   if n.op_type in ("Mul", "Add") and not all(i in consts for i in n.input))
    return n_affine(mi) - n_affine(mo)


def count_nodes_model(model):
    """Nodes of the main graph, its subgraphs and every function body."""
    return count_nodes(model.graph) + sum(count_nodes(f) for f in model.functions)


def count_nodes(graph, recursive=True):
    n = len(graph.node)
    if recursive:
        for node in graph.node:
            for g in subgraphs(node):
                n += count_nodes(g, True)
    return n


def name_problems(model):
    """Set of value names defined twice in one graph, or defined in a subgraph
    although an enclosing graph defines them (a subgraph may not shadow)."""
    probs = set()

    def walk(g, outer):
        here = set()
        io = {i.name for i in g.input} | {t.name for t in g.initializer} | \
            {sp.values.name for sp in g.sparse_initializer}
        defs = [(n, "graph input or initializer") for n in sorted(io)] + \
            [(o, "node output") for node in g.node for o in node.output if o]
        for name, what in defs:
            if name in here:
                probs.add("'%s' defined twice in graph '%s'" % (name, g.name))
            elif name in outer:
                probs.add("'%s' (%s) in graph '%s' shadows a name of an enclosing graph" % (name, what, g.name))
            here.add(name)
        for node in g.node:
            for sg in subgraphs(node):
                walk(sg, outer | here)

    walk(model.graph, set())
    return probs


def unused_initializers(model):
    """Set of (graph name, initializer name) that nothing reads: no node input
    of the graph or of a subgraph nested in it, no graph output (and for the
    main graph, no training_info graph or binding)."""
    found = set()
    training = set()
    for ti in model.training_info:
        for tg in (ti.initialization, ti.algorithm):
            training |= {i for n in tg.node for i in n.input}
        training |= {b.key for b in list(ti.initialization_binding) + list(ti.update_binding)}

    def reads(g):
        r = {o.name for o in g.output}
        for node in g.node:
            r.update(node.input)
            for sg in subgraphs(node):
                r |= reads(sg)
        return r

    def walk(g, extra=frozenset()):
        r = reads(g) | extra
        found.update((g.name, t.name) for t in g.initializer if t.name not in r)
        for node in g.node:
            for sg in subgraphs(node):
                walk(sg)

    walk(model.graph, training)
    return found


def default_opset(model):
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return o.version
    return None


def load_model(path):
    return onnx.load(path, load_external_data=False)


def run_checker(path, full_check=False):
    """None when onnx.checker passes, else the error text.

    Never pass the path itself: onnx 1.12 check_model(PATH, full_check=True)
    runs infer_shapes_path(PATH), which REWRITES the file in place with the
    inferred value_info. Checking the bytes leaves the file alone."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        onnx.checker.check_model(data, full_check=full_check)
        return None
    except Exception as e:  # noqa: BLE001
        return "%s: %s" % (type(e).__name__, str(e)[:500])


# --------------------------------------------------------------------- equivalence

def ort_problem(equiv, node_modules):
    """Why equiv.mjs cannot run (None when it can)."""
    node = shutil.which("node")
    if not node:
        return "node is not on PATH (needed for the onnxruntime oracle)"
    if not os.path.isfile(equiv):
        return "equivalence oracle %s not found" % equiv
    pkg = os.path.join(node_modules, "onnxruntime-node", "package.json")
    if not os.path.isfile(pkg):
        return ("onnxruntime-node is not installed in %s: run "
                "`cd tests && ONNXRUNTIME_NODE_INSTALL=skip npm ci`" % node_modules)
    return None


def run_equiv_batch(equiv, node_modules, jobs, workdir, extra_args=(), timeout=1800):
    """Run equiv.mjs --pairs on jobs (list of dicts with 'id', 'original',
    'folded', ...). Returns ({id: result}, error_text)."""
    if not jobs:
        return {}, None
    pairs = os.path.join(workdir, "equiv_pairs.jsonl")
    with open(pairs, "w") as f:
        for j in jobs:
            f.write(json.dumps(j) + "\n")
    cmd = ["node", equiv, "--pairs", pairs, "--node-modules", node_modules] + list(extra_args)
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {}, "equiv.mjs timed out after %ds" % timeout
    except OSError as e:
        return {}, "cannot run node: %s" % e
    results = {}
    bad = []
    for line in p.stdout.decode("utf-8", "replace").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            r = json.loads(line)
        except ValueError:
            bad.append(line[:200])
            continue
        if r.get("stage") == "ort_missing":
            return {}, r.get("error")
        if "id" in r:
            results[r["id"]] = r
    err = None
    if p.returncode not in (0, 1, 2) or (not results and jobs):
        err = "equiv.mjs exit %s after %.1fs; stderr: %s %s" % (
            p.returncode, time.monotonic() - t0,
            p.stderr.decode("utf-8", "replace")[-2000:], ("; unparsable: " + " | ".join(bad[:3])) if bad else "")
    progress("equiv.mjs: %d pairs in %.1fs" % (len(results), time.monotonic() - t0))
    return results, err


def worst(result, key):
    vals = [o.get(key) or 0 for o in (result or {}).get("outputs", [])]
    return max(vals) if vals else None


def equiv_summary(r):
    """(ok, short text, diag lines) for one equiv.mjs result."""
    diag = []
    if r.get("error"):
        return False, "ORT error at %s" % r.get("stage"), [r["error"][:1500]]
    outs = r.get("outputs", [])
    exposed = [o for o in outs if o.get("exposed")]
    finals = [o for o in outs if not o.get("exposed")]
    if r.get("inputs"):
        diag.append("inputs: " + r["inputs"])
    for o in finals:
        diag.append("%s %s: n=%s max_abs=%s max_rel=%s margin=%s%s" % (
            "ok  " if o.get("ok") else "DIFF", o.get("name"), o.get("n"), fmt_e(o.get("max_abs_err")),
            fmt_e(o.get("max_rel_err")), fmt_e(o.get("margin")),
            ("  " + o["problem"]) if o.get("problem") else ""))
    if exposed:
        nbad = sum(1 for o in exposed if not o.get("ok"))
        diag.append("%d intermediate BN-output tensors compared, %d differ; worst max_abs=%s max_rel=%s margin=%s" % (
            len(exposed), nbad, fmt_e(max(o.get("max_abs_err", 0) for o in exposed)),
            fmt_e(max(o.get("max_rel_err", 0) for o in exposed)), fmt_e(max(o.get("margin", 0) for o in exposed))))
        for o in [o for o in exposed if not o.get("ok")][:8]:
            diag.append("DIFF %s: n=%s max_abs=%s max_rel=%s margin=%s %s" % (
                o.get("name"), o.get("n"), fmt_e(o.get("max_abs_err")), fmt_e(o.get("max_rel_err")),
                fmt_e(o.get("margin")), o.get("problem", "")))
    if r.get("problem"):
        diag.append("problem: " + r["problem"])
    text = "max_abs %s, max_rel %s, margin %s" % (fmt_e(worst(r, "max_abs_err")), fmt_e(worst(r, "max_rel_err")),
                                                 fmt_e(worst(r, "margin")))
    if exposed:
        text += ", %d outputs + %d BN tensors" % (len(finals), len(exposed))
    return bool(r.get("ok")), text, diag


def common_arg_parser(description):
    import argparse
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--bnfold", default=os.path.join(root, "build", "bnfold"))
    ap.add_argument("--testdata", default=os.path.join(root, "testdata"))
    ap.add_argument("--schema", default=os.path.join(root, "src", "lib", "report.schema.json"))
    ap.add_argument("--equiv", default=os.path.join(here, "equiv.mjs"))
    ap.add_argument("--node-modules", default=os.path.join(root, "tests", "node_modules"))
    ap.add_argument("--workdir", default=None, help="scratch folder (default: a new temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep outputs in workdir")
    ap.add_argument("--no-expose-bn", action="store_true",
                    help="compare final outputs only (default also compares every BN output tensor)")
    ap.add_argument("--seed", type=int, default=1)
    return ap, root


def make_workdir(path, name):
    import tempfile
    if path:
        d = os.path.join(os.path.abspath(path), name)
        if os.path.isdir(d):
            shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d, exist_ok=True)
        return d
    return tempfile.mkdtemp(prefix=name + "-")
