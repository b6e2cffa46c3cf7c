#!/usr/bin/python3
"""End-to-end cases for the habits users bring: 'bnfold IN OUT', the strict
gate, re-runs over bnfold's own outputs, unnamed nodes, the op-type table,
terminals, and the small things (singular "channel", the NODE column, -O
creating DIR, --in-place leaving an unchanged file alone).  Prints TAP.

Expected outcomes are written here by hand or computed from the models with
the onnx package (node counts, names), never taken from bnfold's output.
"""
import argparse
import os
import pty
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import tty

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import bnftest  # noqa: E402
from bnftest import sha, tree  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--bnfold", required=True)
ap.add_argument("--testdata", required=True)
args = ap.parse_args()

BNFOLD = os.path.abspath(args.bnfold)
TESTDATA = os.path.abspath(args.testdata)
tap = bnftest.Tap()
check = tap.check


def fixture(name):
    return os.path.join(TESTDATA, name)


def run(argv, stdin=None, cwd=None):
    r = bnftest.run_checked(tap, BNFOLD, argv, stdin=stdin, cwd=cwd, timeout=60)
    return r.rc, r.out, r.err


def graphs(m):
    """The model's graph, every subgraph and every function body."""
    todo = [m.graph] + list(m.functions)
    while todo:
        g = todo.pop()
        yield g
        for n in g.node:
            for a in n.attribute:
                if a.HasField("g"):
                    todo.append(a.g)
                todo.extend(a.graphs)


def op_counts(path):
    """{(domain, op_type): count} over graph, subgraphs and functions."""
    counts = {}
    for g in graphs(onnx.load(path, load_external_data=False)):
        for n in g.node:
            key = ("" if n.domain in ("", "ai.onnx") else n.domain, n.op_type)
            counts[key] = counts.get(key, 0) + 1
    return counts


def bn_count(path):
    return sum(c for (d, op), c in op_counts(path).items() if op == "BatchNormalization" and d == "")


def one_error(err, pattern):
    """err is one usage error line matching pattern, plus the pointer to --help."""
    lines = [l for l in err.splitlines() if l.strip()]
    return (len(lines) == 2 and lines[0].startswith("bnfold: error: ") and re.search(pattern, lines[0]) is not None
            and lines[1] == "Try 'bnfold --help' for more information.")


os.umask(0o022)
tmp = tempfile.mkdtemp(prefix="bnfold-habits-")
try:
    demo_src = fixture("demo.onnx")

    # ------------------------------------------------ 1. bnfold IN OUT
    d = os.path.join(tmp, "habit")
    os.mkdir(d)
    inp, outp = os.path.join(d, "in.onnx"), os.path.join(d, "out.onnx")
    shutil.copy(demo_src, inp)
    before = tree(d)
    rc, _, err = run([inp, outp])
    check(rc == 2 and one_error(err, r"two models given without -o: to fold IN into OUT, run: bnfold IN -o OUT "
                                     r"\(to fold both, give -O DIR or --in-place\)") and tree(d) == before,
          "bnfold IN OUT, OUT missing: usage error with the -o hint, nothing written", err)
    shutil.copy(demo_src, outp)  # OUT exists (an unfolded model, as a stale output would be)
    before = tree(d)
    rc, _, err = run([inp, outp])
    check(rc == 2 and one_error(err, r"two models given without -o") and tree(d) == before,
          "bnfold IN OUT, OUT existing: usage error, OUT untouched, no NAME.folded.onnx", err)
    rc, _, err = run(["-f", inp, outp])
    check(rc == 2 and tree(d) == before, "bnfold -f IN OUT is refused too", err)
    rc, _, err = run([inp, "-o", outp])
    check(rc == 0 and bn_count(outp) == 0 and bn_count(inp) == 3, "bnfold IN -o OUT folds IN into OUT", err)
    rc, _, err = run(["--check", inp, outp])
    check(rc == 3 and err.count(": foldable Conv") == 3, "--check takes two models", err)
    rc, out, err = run(["--list", inp, outp])
    check(rc == 0 and out.count(b"LAYER") == 2, "--list takes two models", err)
    # the name bnfold would give the output: IN is folded into it, in either order
    named = os.path.join(d, "in.folded.onnx")
    rc, _, err = run([inp, named])
    check(rc == 0 and bn_count(named) == 0 and not os.path.exists(os.path.join(d, "in.folded.folded.onnx")),
          "bnfold NAME.onnx NAME.folded.onnx folds the first into the second", err)
    rc, _, err = run(["-f", named, inp])
    check(rc == 0 and bn_count(named) == 0 and "skipped: already a bnfold output" in err and
          not os.path.exists(os.path.join(d, "in.folded.folded.onnx")),
          "... in either order (-f replaces it)", err)
    rc, help_text, _ = run(["--help"])
    help_text = help_text.decode()
    check(rc == 0 and "'bnfold IN OUT'" in help_text and "bnfold IN -o OUT" in help_text,
          "--help says that 'bnfold IN OUT' is refused and shows the -o form", help_text)

    # ------------------------------------------------ 2. the gate
    gate = os.path.join(tmp, "gate")
    os.mkdir(gate)
    for f in ["conv_bn_overridable.onnx", "bn_standalone.onnx", "conv_bn_basic.onnx", "nothing_to_fold.onnx",
              "conv_bn_mixed.onnx"]:
        shutil.copy(fixture(f), gate)
    over, standalone, basic, nothing, mixed = (os.path.join(gate, f) for f in [
        "conv_bn_overridable.onnx", "bn_standalone.onnx", "conv_bn_basic.onnx", "nothing_to_fold.onnx",
        "conv_bn_mixed.onnx"])
    before = tree(gate)
    n_over = bn_count(over)
    rc, _, err = run(["--check", over])
    lines = [l for l in err.splitlines() if l.startswith(over + ": skipped BatchNormalization")]
    check(rc == 0 and len(lines) == n_over and
          all(re.search(r": param_is_graph_input: .*; --fold-overridable folds it$", l) for l in lines) and
          re.search(r"^bnfold: %s: foldable 0 of %d BatchNormalization, skipped %d \(param_is_graph_input %d\); "
                    r"%d more would fold with --fold-overridable$" % (re.escape(over), n_over, n_over, n_over, n_over),
                    err, re.M),
          "--check names each BN left only because it is overridable, and the flag that folds it", err)
    rc, _, err = run(["--check", standalone])
    check(rc == 0 and "--fold-overridable" not in err and "skipped BatchNormalization" not in err,
          "--check does not mention --fold-overridable when it would not help", err)
    rc, _, err = run(["--check", "--strict", over])
    check(rc == 3 and len(re.findall(r"^%s: skipped BatchNormalization '\w+' \(output '\w+', \w+\): "
                                     r"param_is_graph_input: " % re.escape(over), err, re.M)) == n_over,
          "--check --strict: overridable BNs fail the gate (exit 3), each listed", err)
    rc, _, err = run(["--check", "--strict", standalone])
    check(rc == 3 and re.search(r"^%s: skipped BatchNormalization 'bn' \(output 'Y', \w+\): no_linear_producer: "
                                % re.escape(standalone), err, re.M),
          "--check --strict: a BN that cannot fold fails the gate with its reason", err)
    rc, _, err = run(["--check", "--strict", basic])
    check(rc == 3 and ": foldable Conv" in err, "--check --strict: a foldable BN fails the gate", err)
    rc, _, err = run(["--check", "--strict", nothing])
    check(rc == 0 and bn_count(nothing) == 0, "--check --strict: a model without BN passes (exit 0)", err)
    rc, _, err = run(["--check", "--strict", mixed])
    listed = re.findall(r"^%s: (foldable|skipped) .*BatchNormalization" % re.escape(mixed), err, re.M)
    check(rc == 3 and len(listed) == bn_count(mixed) and "foldable" in listed and "skipped" in listed,
          "--check --strict lists every BN of the model once, foldable or not", err)
    rc, _, err = run(["--check", "--strict", "-q", nothing, standalone])
    check(rc == 3 and err == "", "--check --strict -q: the exit status alone", err)
    rc, _, err = run(["--check", "--strict", "--fold-overridable", over])
    check(rc == 3 and ": foldable Conv" in err, "--check --strict --fold-overridable: the overridable BN would fold", err)
    rc, _, err = run(["--strict", basic])
    check(rc == 2 and one_error(err, r"--strict is an option of --check"), "--strict without --check is a usage error",
          err)
    check(tree(gate) == before, "the gate wrote nothing", sorted(set(tree(gate)) ^ set(before)))

    # ------------------------------------------------ 3. re-runs
    rr = os.path.join(tmp, "rerun")
    os.mkdir(rr)
    for name, src in [("a", "demo.onnx"), ("b", "nothing_to_fold.onnx"), ("c", "conv_bn_mixed.onnx")]:
        shutil.copy(fixture(src), os.path.join(rr, name + ".onnx"))

    def glob_rr():
        return sorted(os.path.join(rr, f) for f in os.listdir(rr) if f.endswith(".onnx"))

    rc, _, err = run(glob_rr())
    first = tree(rr)
    check(rc == 0 and sorted(first) == sorted(["a.onnx", "b.onnx", "c.onnx", "a.folded.onnx", "b.folded.onnx",
                                               "c.folded.onnx"]),
          "bnfold dir/*.onnx: NAME.folded.onnx for each", err)
    rc, _, err = run(glob_rr())
    notes = re.findall(r"^bnfold: (.*): skipped: already a bnfold output \(NAME\.folded\.onnx\); "
                       r"give -o to fold it anyway$", err, re.M)
    check(rc == 1 and sorted(notes) == [os.path.join(rr, x + ".folded.onnx") for x in "abc"] and
          err.count("already exists; use -f") == 3 and tree(rr) == first,
          "second run: bnfold's outputs skipped with a note, the models' outputs exist (exit 1), nothing written", err)
    rc, _, err = run(["-f"] + glob_rr())
    n_bn = sum(bn_count(os.path.join(rr, x + ".onnx")) for x in "abc")
    n_folded = n_bn - sum(bn_count(os.path.join(rr, x + ".folded.onnx")) for x in "abc")
    check(rc == 0 and err.count("skipped: already a bnfold output") == 3 and sorted(tree(rr)) == sorted(first) and
          re.search(r"^bnfold: 3 files: folded %d of %d BatchNormalization; 3 bnfold outputs skipped$" % (n_folded, n_bn),
                    err, re.M),
          "second run with -f: -f does not fold bnfold's outputs; no NAME.folded.folded.onnx", err)
    again = os.path.join(tmp, "again.onnx")
    rc, _, err = run([os.path.join(rr, "c.folded.onnx"), "-o", again])
    check(rc == 0 and os.path.exists(again) and "skipped" not in err.split(":")[0], "an explicit -o folds a bnfold output",
          err)
    rc, _, err = run([os.path.join(rr, "a.folded.onnx")])
    check(rc == 0 and "skipped: already a bnfold output" in err and sorted(tree(rr)) == sorted(first),
          "one bnfold output alone: skipped, exit 0", err)
    one = os.path.join(tmp, "one")
    os.mkdir(one)
    shutil.copy(demo_src, os.path.join(one, "m.onnx"))
    for i in range(2):
        rc, _, err = run(["-f"] + sorted(os.path.join(one, f) for f in os.listdir(one)))
        check(rc == 0 and sorted(os.listdir(one)) == ["m.folded.onnx", "m.onnx"] and
              bn_count(os.path.join(one, "m.folded.onnx")) == 0,
              "bnfold -f dir/*.onnx over one model, run %d: m.folded.onnx, never m.folded.folded.onnx" % (i + 1), err)

    # ------------------------------------------------ 4. names
    unnamed = fixture("conv_bn_empty_names.onnx")
    m = onnx.load(unnamed)
    expect = []
    for i, n in enumerate(m.graph.node):
        if n.op_type == "BatchNormalization":
            conv = next(p for p in m.graph.node if n.input[0] in p.output)
            assert not n.name and not conv.name
            expect.append("Conv (unnamed Conv, output %s) <- BatchNormalization (unnamed BatchNormalization, output %s)"
                          % (conv.output[0], n.output[0]))
    rc, _, err = run(["--check", unnamed])
    got = [l.split(": foldable ", 1)[1].split(" (conv_bn")[0] for l in err.splitlines() if ": foldable " in l and
           "<-" in l]
    check(rc == 3 and got == expect and "''" not in err, "--check names unnamed nodes by op and output", err)
    rc, out, err = run(["--list", "-v", unnamed])
    check(rc == 0 and "''" not in out.decode() and "(unnamed Conv, output" in out.decode(),
          "--list -v: no empty names", out)
    rc, _, err = run(["-v", unnamed, "-o", os.path.join(tmp, "unnamed_out.onnx")])
    check(rc == 0 and "''" not in err and sum(e in err for e in expect) == len(expect), "-v lines name unnamed nodes",
          err)
    rc, _, err = run(["--tolerance", "0", unnamed, "-o", os.path.join(tmp, "unnamed_out2.onnx")])
    check(rc == 4 and "''" not in err and re.search(r"BatchNormalization \(unnamed BatchNormalization, output \w+\) "
                                                    r"\(output '\w+'\) folded into Conv \(unnamed Conv, output \w+\) ",
                                                    err) and not os.path.exists(os.path.join(tmp, "unnamed_out2.onnx")),
          "a verify failure names unnamed nodes", err)

    # ------------------------------------------------ 6. the op-type table
    def stats_rows(err):
        lines = err.splitlines()
        start = next(i for i, l in enumerate(lines) if l.strip().startswith("OP TYPE"))
        rows = {}
        for l in lines[start + 1:]:
            if not l.startswith("  "):
                break
            name, before, after = re.split(r"  +", l.strip())
            rows[name] = (before, after)
        return rows

    def key_name(key):
        dom, op = key
        return "%s (%s)" % (op, dom) if dom else op

    stats_dir = os.path.join(tmp, "stats")
    os.mkdir(stats_dir)
    bad = []
    for f in ["demo.onnx", "conv_bn_loop.onnx", "conv_bn_function.onnx", "conv_mul_add.onnx", "conv_bn_mixed.onnx",
              "nothing_to_fold.onnx", "matmul_bn.onnx", "matmul_add.onnx"]:
        src, dst = fixture(f), os.path.join(stats_dir, f)
        rc, _, err = run(["--stats", src, "-o", dst])
        try:
            rows = stats_rows(err)
        except (StopIteration, ValueError):
            bad.append("%s: no table: %s" % (f, err))
            continue
        cb, ca = op_counts(src), op_counts(dst)
        want = {key_name(k): (str(cb.get(k, 0)), str(ca.get(k, 0))) for k in set(cb) | set(ca)}
        want["model file (bytes)"] = (str(os.path.getsize(src)), str(os.path.getsize(dst)))
        if rc != 0 or rows != want:
            bad.append("%s: exit %d, table %s, onnx says %s" % (f, rc, rows, want))
    check(not bad, "--stats: one row per op type, counts before and after as onnx counts them, file sizes", bad)

    # external data: the model file and its data file, before and after
    ext = os.path.join(tmp, "ext")
    os.mkdir(ext)
    m = onnx.load(demo_src)
    onnx.save(m, os.path.join(ext, "m.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="m.weights", size_threshold=0)
    rc, _, err = run(["--stats", os.path.join(ext, "m.onnx"), "-o", os.path.join(ext, "out.onnx")])
    rows = stats_rows(err) if "OP TYPE" in err else {}
    check(rc == 0 and rows.get("external data (bytes)") == (str(os.path.getsize(os.path.join(ext, "m.weights"))),
                                                             str(os.path.getsize(os.path.join(ext, "out.onnx.data")))) and
          rows.get("model file (bytes)") == (str(os.path.getsize(os.path.join(ext, "m.onnx"))),
                                              str(os.path.getsize(os.path.join(ext, "out.onnx")))),
          "--stats: the sizes of the external data read and written", err)
    rc, _, err = run(["-v", demo_src, "-o", os.path.join(stats_dir, "v.onnx")])
    check(rc == 0 and "OP TYPE" in err and stats_rows(err)["BatchNormalization"] == ("3", "0"), "-v prints the table", err)
    rc, _, err = run([demo_src, "-o", os.path.join(stats_dir, "plain.onnx")])
    check(rc == 0 and "OP TYPE" not in err, "no table without --stats or -v", err)
    rc, _, err = run(["-q", "--stats", demo_src, "-o", os.path.join(stats_dir, "quiet.onnx")])
    check(rc == 0 and err == "", "-q: no table", err)
    rc, _, err = run(["--check", "--stats", demo_src])
    rows = stats_rows(err) if "OP TYPE" in err else {}
    check(rc == 3 and rows.get("BatchNormalization") == ("3", "0") and
          rows.get("model file (bytes)") == (str(os.path.getsize(demo_src)), "-"),
          "--check --stats: what a fold would leave; no size after", err)

    # ------------------------------------------------ 7. terminals
    def run_tty(argv, tty_in=False, tty_out=False, stdin_file=None):
        """Run bnfold with a pseudo-terminal as stdin and/or stdout: (exit,
        bytes that reached the terminal, stderr)."""
        master, slave = pty.openpty()
        tty.setraw(slave)  # bytes as they are, no \n -> \r\n
        got = bytearray()

        def drain():
            while True:
                try:
                    b = os.read(master, 65536)
                except OSError:
                    return
                if not b:
                    return
                got.extend(b)

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        fin = open(stdin_file, "rb") if stdin_file else subprocess.DEVNULL
        try:
            p = subprocess.run(bnftest.WRAPPER + [BNFOLD] + argv, stdin=slave if tty_in else fin,
                               stdout=slave if tty_out else subprocess.DEVNULL, stderr=subprocess.PIPE,
                               timeout=60 * (10 if bnftest.WRAPPER else 1))
            rc, err = p.returncode, p.stderr.decode(errors="replace")
        except subprocess.TimeoutExpired:
            rc, err = -1, "timed out (waiting on the terminal?)"
        finally:
            if stdin_file:
                fin.close()
            os.close(slave)
            reader.join(5)
            os.close(master)
        return rc, bytes(got), err

    term = os.path.join(tmp, "term")
    os.mkdir(term)
    shutil.copy(demo_src, os.path.join(term, "m.onnx"))
    before = tree(term)
    rc, got, err = run_tty([os.path.join(term, "m.onnx"), "-o", "-"], tty_out=True)
    check(rc == 2 and got == b"" and one_error(err, r"refusing to write a model to a terminal") and tree(term) == before,
          "-o - to a terminal: refused (exit 2), nothing written", err)
    rc, got, err = run_tty(["-"], tty_out=True, stdin_file=os.path.join(term, "m.onnx"))
    check(rc == 2 and got == b"" and one_error(err, r"refusing to write a model to a terminal"),
          "bnfold - < m.onnx to a terminal: refused", err)
    rc, got, err = run_tty(["-", "-o", os.path.join(term, "out.onnx")], tty_in=True)
    check(rc == 2 and one_error(err, r"refusing to read a model from a terminal") and tree(term) == before,
          "- from a terminal: refused at once (exit 2), nothing written", err)
    rc, got, err = run_tty(["--check", "-"], tty_in=True)
    check(rc == 2 and one_error(err, r"refusing to read a model from a terminal"), "--check - from a terminal: refused",
          err)
    ref = os.path.join(term, "ref.onnx")
    run([os.path.join(term, "m.onnx"), "-o", ref])
    rc, got, err = run_tty(["-f", os.path.join(term, "m.onnx"), "-o", "-"], tty_out=True)
    check(rc == 0 and got == open(ref, "rb").read(), "-f writes the model to a terminal all the same", err)
    rc, got, err = run_tty(["--check", os.path.join(term, "m.onnx")], tty_out=True)
    check(rc == 3, "--check with a terminal on stdout is fine (no model written)", err)

    # ------------------------------------------------ 8. small things
    # one channel: a Conv with one output channel, then a BN
    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "W"], ["c"], name="conv"),
         helper.make_node("BatchNormalization", ["c", "s", "b", "mu", "var"], ["y"], name="bn")],
        "one_channel", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 3, 3])],
        [numpy_helper.from_array(np.ones((1, 2, 1, 1), np.float32), "W")] +
        [numpy_helper.from_array(np.array([v], np.float32), n) for n, v in
         [("s", 2.0), ("b", 0.5), ("mu", 0.25), ("var", 1.0)]])
    one_ch = os.path.join(tmp, "one_channel.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), one_ch)
    rc, _, err = run(["--check", one_ch])
    rc2, _, err2 = run(["-v", one_ch, "-o", os.path.join(tmp, "one_channel_out.onnx")])
    check(rc == 3 and rc2 == 0 and "1 channel, float32" in err and "1 channel, float32" in err2 and
          "1 channels" not in err + err2, "one channel is '1 channel'", err + err2)

    rc, out, err = run(["--list", fixture("conv_mul_add.onnx")])
    text = out.decode()
    header = text.splitlines()[0].split()
    nodes = [re.split(r"  +", l.strip())[1] for l in text.splitlines()[1:]]
    muls = [n.name for n in onnx.load(fixture("conv_mul_add.onnx")).graph.node if n.op_type in ("Mul", "Add")]
    check(rc == 0 and header[:2] == ["LAYER", "NODE"] and "BN" not in header and sorted(nodes) == sorted(muls),
          "--list: the NODE column holds the Mul and Add names", text)

    od = os.path.join(tmp, "newdir")
    rc, _, err = run(["-O", od, demo_src])
    check(rc == 0 and os.path.isdir(od) and os.listdir(od) == ["demo.onnx"] and bn_count(os.path.join(od, "demo.onnx")) == 0,
          "-O DIR creates a missing DIR", err)
    rc, _, err = run(["-O", os.path.join(tmp, "nope", "sub"), demo_src])
    check(rc == 1 and re.search(r"^bnfold: error: .*nope/sub: cannot create the output directory: No such file or "
                                r"directory$", err, re.M) and not os.path.exists(os.path.join(tmp, "nope")),
          "-O DIR/SUB with DIR missing: exit 1, nothing created", err)
    rc, _, err = run(["-O", os.path.join(tmp, "one_channel.onnx"), demo_src])
    check(rc == 1 and "not a directory" in err, "-O over a file: exit 1", err)

    ip = os.path.join(tmp, "inplace")
    os.mkdir(ip)
    same, changed = os.path.join(ip, "same.onnx"), os.path.join(ip, "changed.onnx")
    shutil.copy(fixture("nothing_to_fold.onnx"), same)
    shutil.copy(demo_src, changed)
    for p in (same, changed):
        os.utime(p, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))  # an old mtime any rewrite would change
    st_same, st_changed, sha_same = os.stat(same), os.stat(changed), sha(same)
    rc, _, err = run(["--in-place", same, changed])
    a, b = os.stat(same), os.stat(changed)
    check(rc == 0 and (a.st_ino, a.st_mtime_ns) == (st_same.st_ino, st_same.st_mtime_ns) and sha(same) == sha_same,
          "--in-place leaves a model where nothing folds as it was (same inode, same mtime)", err)
    check(rc == 0 and (b.st_ino, b.st_mtime_ns) != (st_changed.st_ino, st_changed.st_mtime_ns) and bn_count(changed) == 0,
          "--in-place replaces a model where something folds", err)
    check(sorted(os.listdir(ip)) == ["changed.onnx", "same.onnx"], "--in-place leaves no other file", os.listdir(ip))

    rc, help_text, _ = run(["--help"])
    tagline = " ".join(help_text.decode().split("\n\n")[0].splitlines()[4:])
    check(re.search(r"before", tagline) and re.search(r"Conv after", tagline),
          "--help's tagline names the layer before and the Conv after", tagline)
finally:
    shutil.rmtree(tmp, ignore_errors=True)

sys.exit(tap.emit())
