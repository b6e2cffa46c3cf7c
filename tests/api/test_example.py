#!/usr/bin/python3
"""docs/examples/fold_file.c built the way a user builds it: against the
*installed* library.  Prints TAP.

- `meson install --destdir STAGE`, then pkg-config finds bnfold.pc in STAGE
  (and nowhere else), with every -I and -L path inside STAGE;
- the example compiles warning-free with `cc fold_file.c $(pkg-config
  --cflags --libs bnfold)`, includes STAGE's bnfold.h and, run with
  LD_LIBRARY_PATH at STAGE's libdir, loads STAGE's libbnfold.so.0;
- on several fixtures it exits 0, prints the counts and each skip as the
  report of build/bnfold says, and writes the same bytes build/bnfold does;
- on a missing file, a file that is not a model and wrong usage it exits
  non-zero with one line on stderr and writes nothing;
- linked statically (libbnfold.a and `pkg-config --static --libs`), it needs
  no libbnfold.so at run time and writes the same bytes.
"""
import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import bnftest  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--bnfold", required=True)
ap.add_argument("--source-root", required=True)
ap.add_argument("--build-root", required=True)
ap.add_argument("--testdata", required=True)
ap.add_argument("--cc", default="cc", help="the C compiler a user would run")
ap.add_argument("--cflags", default="", help="extra flags the library's objects need (sanitizers)")
args = ap.parse_args()

SRC = os.path.abspath(args.source_root)
BUILD = os.path.abspath(args.build_root)
BNFOLD = os.path.abspath(args.bnfold)
EXAMPLE = os.path.join(SRC, "docs", "examples", "fold_file.c")
FIXTURES = ["demo.onnx", "conv_bn_subgraph.onnx", "conv_bn_function.onnx", "conv_mul_add.onnx",
            "conv_bn_fp16.onnx", "nothing_to_fold.onnx"]
tap = bnftest.Tap()
check = tap.check


def run(argv, env=None, cwd=None):
    # meson test points LD_LIBRARY_PATH at build/: a run must not find the
    # library there by accident.
    full = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "LIBRARY_PATH", "CPATH", "C_INCLUDE_PATH")}
    full.update(env or {})
    p = subprocess.run(argv, capture_output=True, timeout=120, env=full, cwd=cwd)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def inside(path, root):
    return os.path.realpath(path).startswith(os.path.realpath(root) + os.sep)


def expected_lines(report):
    """What the example prints, from bnfold's report of the same input."""
    c = report["counts"]
    lines = ["folded %d of %d BatchNormalization, %d skipped, %d Mul/Add"
             % (c["folded"], c["bn_found"], c["skipped"], c["affine_folded"])]
    lines += ["skipped '%s': %s: %s" % (s["bn"], s["reason"], s["message"]) for s in report["skipped"]]
    return lines


def try_example(exe, env, how):
    """Run exe over the fixtures and the bad inputs in a folder of its own."""
    tmp = os.path.join(stage, how)
    os.mkdir(tmp)
    for name in FIXTURES:
        inp = os.path.join(args.testdata, name)
        want_out = os.path.join(tmp, "want-" + name)
        got_out = os.path.join(tmp, "got-" + name)
        want_rep = os.path.join(tmp, "want-" + name + ".json")
        r = bnftest.run(BNFOLD, [inp, "-o", want_out, "--report", want_rep, "-q"])
        if not check(r.rc == 0, f"{how}: build/bnfold folds {name}", r.diag()):
            continue
        rc, out, err = run([exe, inp, got_out], env=env, cwd=tmp)
        want = expected_lines(json.load(open(want_rep))["inputs"][0])
        check(rc == 0 and err == "" and out.splitlines() == want,
              f"{how}: fold_file {name} exits 0 and prints the counts and skips of bnfold's report",
              f"exit {rc}\nstdout: {out}\nwant: {want}\nstderr: {err}")
        check(os.path.isfile(got_out) and open(got_out, "rb").read() == open(want_out, "rb").read(),
              f"{how}: fold_file {name} writes the bytes build/bnfold writes")
        check(not bnftest.debris(tmp), f"{how}: no temp file left after {name}", bnftest.debris(tmp))
    garbage = os.path.join(tmp, "garbage.onnx")
    with open(garbage, "wb") as f:
        f.write(b"\x1f\x8b\x08\x00" + bytes(range(256)) * 4)
    missing = os.path.join(tmp, "missing.onnx")
    for desc, inp, pattern in (("a file that is not a model", garbage, r"not an ONNX model"),
                               ("a missing file", missing, r"No such file or directory")):
        out_path = os.path.join(tmp, "bad-out.onnx")
        rc, out, err = run([exe, inp, out_path], env=env, cwd=tmp)
        lines = err.splitlines()
        check(rc == 1 and out == "" and len(lines) == 1 and lines[0].startswith(f"fold_file: {inp}: ")
              and re.search(pattern, lines[0]) and not os.path.exists(out_path) and not bnftest.debris(tmp),
              f"{how}: {desc}: exit 1, one line 'fold_file: FILE: ...' matching /{pattern}/, nothing written",
              f"exit {rc}\nstdout: {out}\nstderr: {err}")
    rc, out, err = run([exe, "only-one-argument"], env=env, cwd=tmp)
    check(rc == 2 and "usage:" in err, f"{how}: wrong usage exits 2 with a usage line", f"exit {rc}: {err}")


stage = tempfile.mkdtemp(prefix="bnfold-example-")
try:
    rc, out, err = run(["meson", "install", "-C", BUILD, "--no-rebuild", "--destdir", os.path.join(stage, "root")])
    if not check(rc == 0, "meson install --destdir succeeds", err[-1500:]):
        sys.exit(tap.emit())
    rc, opts, err = run(["meson", "introspect", "--buildoptions", BUILD])
    o = {x["name"]: x["value"] for x in json.loads(opts)}
    prefix = o["prefix"]
    root = os.path.join(stage, "root")
    staged = os.path.join(root, prefix.lstrip("/"))
    libdir = os.path.join(staged, o["libdir"])
    pcdir = os.path.join(libdir, "pkgconfig")
    # The .pc file says prefix=/usr/local: redefine it to where it really is.
    pc_env = {"PKG_CONFIG_PATH": pcdir}
    pkg = ["pkg-config", "--define-variable=prefix=" + staged]
    rc, pcfile_dir, err = run(pkg + ["--variable=pcfiledir", "bnfold"], env=pc_env)
    check(rc == 0 and os.path.realpath(pcfile_dir.strip()) == os.path.realpath(pcdir),
          "pkg-config finds the staged bnfold.pc", f"exit {rc}: {pcfile_dir} {err}")
    rc1, cflags, err1 = run(pkg + ["--cflags", "bnfold"], env=pc_env)
    rc2, libs, err2 = run(pkg + ["--libs", "bnfold"], env=pc_env)
    rc3, slibs, err3 = run(pkg + ["--static", "--libs", "bnfold"], env=pc_env)
    cflags, libs, slibs = shlex.split(cflags), shlex.split(libs), shlex.split(slibs)
    paths = [f[2:] for f in cflags + libs + slibs if f[:2] in ("-I", "-L")]
    check(rc1 == 0 and rc2 == 0 and rc3 == 0 and "-lbnfold" in libs and paths
          and os.path.isfile(os.path.join(cflags[0][2:], "bnfold.h")) and inside(cflags[0][2:], stage)
          and os.path.isfile(os.path.join(libs[0][2:], "libbnfold.a")) and inside(libs[0][2:], stage)
          and not any(inside(p, SRC) or inside(p, BUILD) for p in paths),
          "pkg-config --cflags --libs bnfold: bnfold.h and libbnfold in the stage, nothing from build/ or the source tree",
          f"cflags {cflags} libs {libs} static {slibs}\n{err1}{err2}{err3}")

    # ------------------------------------------------ linked with libbnfold.so
    tmp = os.path.join(stage, "work")
    os.mkdir(tmp)
    exe = os.path.join(tmp, "fold_file")
    cc = [args.cc, "-std=c11", "-Wall", "-Wextra", "-Werror"] + shlex.split(args.cflags)
    rc, out, err = run(cc + [EXAMPLE] + cflags + libs + ["-o", exe], cwd=tmp)
    if check(rc == 0 and err == "", "fold_file.c compiles warning-free with $(pkg-config --cflags --libs bnfold)",
             f"exit {rc}: {err}"):
        rc, deps, err = run(cc + ["-M", EXAMPLE] + cflags, cwd=tmp)
        headers = [d for d in deps.replace("\\\n", " ").split() if d.endswith("bnfold.h")]
        check(rc == 0 and len(headers) == 1 and inside(headers[0], stage),
              "it includes the staged bnfold.h", f"{headers} {err}")
        run_env = {"LD_LIBRARY_PATH": libdir}
        rc, out, err = run(["readelf", "-d", exe])
        check(rc == 0 and re.search(r"NEEDED.*\[libbnfold\.so\.0\]", out), "it needs libbnfold.so.0", out)
        rc, out, err = run(["ldd", exe], env=run_env)
        m = re.search(r"libbnfold\.so\.0 => (\S+)", out)
        check(rc == 0 and m and inside(m.group(1), stage), "with LD_LIBRARY_PATH it loads the staged libbnfold.so.0",
              out + err)
        try_example(exe, run_env, "shared")

    # ------------------------------------------------ linked with libbnfold.a
    exe_static = os.path.join(tmp, "fold_file_static")
    archive = os.path.join(libdir, "libbnfold.a")
    static_libs = [archive if f == "-lbnfold" else f for f in slibs]
    rc, out, err = run(cc + [EXAMPLE] + cflags + static_libs + ["-o", exe_static], cwd=tmp)
    if check(rc == 0 and err == "" and archive in static_libs,
             "fold_file.c links with libbnfold.a and $(pkg-config --static --libs bnfold)",
             f"exit {rc}: {err} {static_libs}"):
        rc, out, err = run(["readelf", "-d", exe_static])
        check(rc == 0 and "libbnfold" not in out, "the static build needs no libbnfold.so", out)
        try_example(exe_static, {}, "static")
finally:
    shutil.rmtree(stage, ignore_errors=True)

sys.exit(tap.emit())
