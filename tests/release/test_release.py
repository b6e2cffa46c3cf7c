#!/usr/bin/python3
"""tools/release, and the package it builds, as a user receives it.  Prints TAP.

- `tools/release OUTDIR` exits 0 and leaves exactly bnfold_VERSION_ARCH.deb and
  SHA256SUMS, whose line is the package's sha256 (`sha256sum -c` agrees, and
  refuses a package changed by one byte); without OUTDIR it exits 2;
- the control fields: Package, meson.build's version, dpkg's architecture,
  Maintainer, Description, and Depends naming libprotobuf-c1 and libcjson1
  with versions the libraries installed here satisfy;
- the contents (`dpkg-deb -c`): the program, the shared library with its
  soname and development links, the static archive, bnfold.h, bnfold.pc, the
  man page, the report schema and the copyright file, all owned by root,
  nothing writable by others, and nothing else;
- DEBIAN/: shlibs for libbnfold, the ldconfig trigger, md5sums of every file;
- unpacked (`dpkg -x DEB ROOT`): the files are the source tree's, every
  shared library the program and libbnfold.so load belongs to a package the
  Depends name, ROOT/usr/bin/bnfold --version prints the version, it folds
  testdata/demo.onnx into a valid model with no BatchNormalization (onnx),
  byte for byte what build/bnfold writes, and its --check exits 3 before and
  0 after;
- docs/examples/fold_file.c builds against ROOT's bnfold.h and bnfold.pc and,
  with LD_LIBRARY_PATH at ROOT's libdir, runs on ROOT's libbnfold.so.0.
"""
import argparse
import gzip
import hashlib
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
ap.add_argument("--bnfold", required=True, help="build/bnfold, whose output the packaged program must match")
ap.add_argument("--source-root", required=True)
ap.add_argument("--testdata", required=True)
args = ap.parse_args()

SRC = os.path.abspath(args.source_root)
BNFOLD = os.path.abspath(args.bnfold)
DEMO = os.path.join(os.path.abspath(args.testdata), "demo.onnx")
tap = bnftest.Tap()
check = tap.check


def run(argv, env=None, cwd=None, timeout=120):
    # meson test may point LD_LIBRARY_PATH at build/: nothing here may find
    # the library there by accident.
    full = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "LIBRARY_PATH", "CPATH", "C_INCLUDE_PATH")}
    full.update(env or {})
    p = subprocess.run(argv, capture_output=True, timeout=timeout, env=full, cwd=cwd)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


def inside(path, root):
    return os.path.realpath(path).startswith(os.path.realpath(root) + os.sep)


def bn_count(path):
    """BatchNormalization nodes in every graph, subgraph and function of a model."""
    import onnx
    model = onnx.load(path, load_external_data=False)
    onnx.checker.check_model(model)

    def graph_count(g):
        n = 0
        for node in g.node:
            n += node.op_type == "BatchNormalization"
            for a in node.attribute:
                n += sum(graph_count(s) for s in ([a.g] if a.HasField("g") else []) + list(a.graphs))
        return n
    return graph_count(model.graph) + sum(1 for f in model.functions for nd in f.node if nd.op_type == "BatchNormalization")


VERSION = re.search(r"version : '([^']+)'", read(os.path.join(SRC, "meson.build"))).group(1)
_, ARCH, _ = run(["dpkg", "--print-architecture"])
ARCH = ARCH.strip()
DEB_NAME = "bnfold_%s_%s.deb" % (VERSION, ARCH)
RELEASE = os.path.join(SRC, "tools", "release")


def check_usage(tmp):
    out = os.path.join(tmp, "usage-out")
    for how, argv in (("(no OUTDIR)", []), ("OUTDIR OUTDIR", [out, out]), ("--help", ["--help"])):
        rc, o, e = run([RELEASE] + argv)
        check(rc == 2 and re.match(r"usage: tools/release OUTDIR\n\Z", e) and o == "" and not os.path.exists(out),
              "tools/release %s exits 2 with one usage line and creates nothing" % how,
              "exit %d\nstdout: %s\nstderr: %s" % (rc, o, e))


def check_sums(outdir):
    deb = os.path.join(outdir, DEB_NAME)
    check(sorted(os.listdir(outdir)) == sorted([DEB_NAME, "SHA256SUMS"]),
          "OUTDIR holds exactly %s and SHA256SUMS" % DEB_NAME, os.listdir(outdir))
    if not os.path.isfile(deb):
        return False
    digest = hashlib.sha256(read(deb, "rb")).hexdigest()
    sums = read(os.path.join(outdir, "SHA256SUMS")) if os.path.isfile(os.path.join(outdir, "SHA256SUMS")) else ""
    check(sums == "%s  %s\n" % (digest, DEB_NAME), "SHA256SUMS is one sha256sum line: the package's hash and name",
          "%r, want %s" % (sums, digest))
    rc, o, e = run(["sha256sum", "-c", "SHA256SUMS"], cwd=outdir)
    check(rc == 0 and o == "%s: OK\n" % DEB_NAME, "sha256sum -c SHA256SUMS passes in OUTDIR", o + e)
    # The same check refuses a package changed by one byte.
    bad = os.path.join(os.path.dirname(outdir), "tampered")
    shutil.copytree(outdir, bad)
    with open(os.path.join(bad, DEB_NAME), "r+b") as f:
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 1]))
    rc, o, e = run(["sha256sum", "-c", "SHA256SUMS"], cwd=bad)
    check(rc == 1 and "FAILED" in o, "sha256sum -c SHA256SUMS fails on a package changed by one byte", o + e)
    return True


def installed_version(pkg):
    rc, o, _ = run(["dpkg-query", "-W", "-f=${Version}", pkg])
    return o if rc == 0 else None


def check_control(deb):
    fields = ["Package", "Version", "Architecture", "Maintainer", "Depends", "Suggests", "Description"]
    rc, o, e = run(["dpkg-deb", "-f", deb] + fields)
    f = dict(re.findall(r"^([A-Za-z-]+): (.*)$", o, re.M))
    check(rc == 0 and f.get("Package") == "bnfold" and f.get("Version") == VERSION and f.get("Architecture") == ARCH,
          "control: Package bnfold, Version %s (meson.build), Architecture %s" % (VERSION, ARCH), o + e)
    check(re.match(r".+ <[^<>@\s]+@[^<>@\s]+>$", f.get("Maintainer", "")) and len(f.get("Description", "")) > 20,
          "control: a Maintainer 'Name <address>' and a Description", o)
    suggests = [x.strip() for x in f.get("Suggests", "").split(",")]
    check({"libprotobuf-c-dev", "libcjson-dev"} <= set(suggests),
          "Suggests names libprotobuf-c-dev and libcjson-dev (bnfold.pc requires their .pc files)", f.get("Suggests"))
    deps = {}
    for alt in f.get("Depends", "").split(","):
        m = re.match(r"\s*([a-z0-9][a-z0-9+.-]+)(?:\s*\((>=|=|>>)\s*([^)]+)\))?\s*$", alt)
        if m:
            deps[m.group(1)] = (m.group(2), m.group(3))
    check("libprotobuf-c1" in deps and "libcjson1" in deps, "Depends names libprotobuf-c1 and libcjson1", f.get("Depends"))
    for pkg, (op, ver) in sorted(deps.items()):
        have = installed_version(pkg)
        ok = have is not None and (op is None or run(["dpkg", "--compare-versions", have, {">=": "ge", "=": "eq", ">>": "gt"}[op], ver])[0] == 0)
        check(ok, "Depends %s %s: satisfied by the installed %s" % (pkg, "(%s %s)" % (op, ver) if op else "", have), f.get("Depends"))
    return set(deps)


def check_control_files(deb, tmp):
    """DEBIAN/: the library's shlibs entry, the ldconfig trigger, md5sums of every file."""
    ctrl = os.path.join(tmp, "control")
    rc, o, e = run(["dpkg-deb", "-e", deb, ctrl])
    names = sorted(os.listdir(ctrl)) if rc == 0 else []
    check(names == ["control", "md5sums", "shlibs", "triggers"], "DEBIAN/ holds control, md5sums, shlibs and triggers",
          "%s %s" % (names, e))
    if names != ["control", "md5sums", "shlibs", "triggers"]:
        return {}
    major = VERSION.split(".")[0]
    check(read(os.path.join(ctrl, "shlibs")) == "libbnfold %s bnfold (>= %s)\n" % (major, VERSION),
          "DEBIAN/shlibs: libbnfold %s bnfold (>= %s)" % (major, VERSION), read(os.path.join(ctrl, "shlibs")))
    check(read(os.path.join(ctrl, "triggers")) == "activate-noawait ldconfig\n", "DEBIAN/triggers runs ldconfig",
          read(os.path.join(ctrl, "triggers")))
    sums = dict(reversed(ln.split("  ", 1)) for ln in read(os.path.join(ctrl, "md5sums")).splitlines())
    return sums


def check_contents(deb):
    """The package's file list; returns its libdir (./usr/lib[/MULTIARCH])."""
    rc, o, e = run(["dpkg-deb", "-c", deb])
    entries, odd = {}, []
    for line in o.splitlines():
        m = re.match(r"^(\S{10}) (\S+)\s+\d+ \S+ \S+ (\./\S*?)/?(?: -> (\S+))?$", line)
        if m:
            entries[m.group(3)] = (m.group(1), m.group(2), m.group(4))
        else:
            odd.append(line)
    check(rc == 0 and entries and not odd, "dpkg-deb -c lists the package, every line 'MODE OWNER SIZE DATE TIME PATH'",
          "%s\n%s" % (e, odd))
    pcs = [p for p in entries if p.endswith("/pkgconfig/bnfold.pc")]
    libdir = os.path.dirname(os.path.dirname(pcs[0])) if len(pcs) == 1 else "./usr/lib"
    check(re.match(r"^\./usr/lib(/[a-z0-9_]+-linux-[a-z0-9_]+)?$", libdir), "bnfold.pc is under usr/lib[/MULTIARCH]/pkgconfig", pcs)
    so = "libbnfold.so.%s" % VERSION
    major = VERSION.split(".")[0]
    files = {"./usr/bin/bnfold": "-rwxr-xr-x", "./usr/include/bnfold.h": "-rw-r--r--",
             libdir + "/" + so: "-rw-r--r--", libdir + "/libbnfold.a": "-rw-r--r--",
             libdir + "/pkgconfig/bnfold.pc": "-rw-r--r--",
             "./usr/share/man/man1/bnfold.1.gz": "-rw-r--r--",
             "./usr/share/bnfold/report.schema.json": "-rw-r--r--",
             "./usr/share/doc/bnfold/copyright": "-rw-r--r--"}
    links = {libdir + "/libbnfold.so.%s" % major: so, libdir + "/libbnfold.so": "libbnfold.so.%s" % major}
    for path, mode in sorted(files.items()):
        got = entries.get(path)
        check(got and got[0] == mode, "the package holds %s, mode %s" % (path, mode), got)
    for path, target in sorted(links.items()):
        got = entries.get(path)
        check(got and got[0].startswith("l") and got[2] == target, "the package holds the link %s -> %s" % (path, target), got)
    extra = sorted(p for p, (mode, _, _) in entries.items() if not mode.startswith("d") and p not in files and p not in links)
    check(not extra, "the package holds nothing else (directories aside)", extra)
    check(all(own == "root/root" for _, own, _ in entries.values()), "every entry is owned by root/root",
          [(p, v[1]) for p, v in entries.items() if v[1] != "root/root"])
    check(all(not m.startswith("l") and m[5] != "w" and m[8] != "w" for m, _, _ in entries.values() if not m.startswith("l")),
          "nothing is writable by group or others", [(p, v[0]) for p, v in entries.items()])
    check(all(p == "./" or p.startswith("./usr/") or p == "./usr" for p in entries), "everything lies under /usr",
          sorted(entries))
    check(all(entries[p][0] == "drwxr-xr-x" for p in entries if entries[p][0].startswith("d")), "directories are 0755")
    return libdir[2:]


def needed_packages(path):
    """The sonames PATH needs and the packages owning the files ldd loads for
    them (libbnfold aside); sonames no package owns are 'missing'."""
    rc, o, e = run(["readelf", "-d", path])
    sonames = re.findall(r"\(NEEDED\).*\[([^\]]+)\]", o)
    rc, o, e = run(["ldd", path])
    loaded = dict(re.findall(r"^\s*(\S+) => (/\S+)", o, re.M))
    pkgs, missing = set(), []
    for s in sonames:
        if s.startswith("libbnfold.so"):
            continue
        found = []
        if s in loaded:
            real = os.path.realpath(loaded[s])
            rc, o, e = run(["dpkg", "-S", "*/" + s])
            for line in o.splitlines():
                owners, _, owned = line.rpartition(": ")
                if owners and not line.startswith("diversion") and os.path.realpath(owned) == real:
                    found += [w.strip().split(":")[0] for w in owners.split(",")]
        if found:
            pkgs.update(found)
        else:
            missing.append(s)
    return sonames, pkgs, missing


def check_installed(deb, libdir, depends, tmp):
    sums = check_control_files(deb, tmp)
    root = os.path.join(tmp, "root")
    rc, o, e = run(["dpkg", "-x", deb, root])
    if not check(rc == 0, "dpkg -x DEB ROOT unpacks the package", o + e):
        return
    files = sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs
                   if not os.path.islink(os.path.join(d, f)))
    check(sorted(sums) == files and all(hashlib.md5(read(os.path.join(root, f), "rb")).hexdigest() == sums[f] for f in files),
          "DEBIAN/md5sums lists every file of the package with its md5", (sorted(sums), files))
    usr = os.path.join(root, "usr")
    lib = os.path.join(root, libdir)
    exe = os.path.join(usr, "bin", "bnfold")
    same = [("share/doc/bnfold/copyright", "LICENSE"), ("include/bnfold.h", "src/lib/include/bnfold.h"),
            ("share/bnfold/report.schema.json", "src/lib/report.schema.json")]
    def content(path, opener=open):
        try:
            with opener(path, "rb") as f:
                return f.read()
        except OSError as exc:
            return repr(exc)
    for got, want in same:
        check(content(os.path.join(usr, got)) == read(os.path.join(SRC, want), "rb"),
              "ROOT/usr/%s is the source tree's %s" % (got, want))
    check(content(os.path.join(usr, "share/man/man1/bnfold.1.gz"), gzip.open) == read(os.path.join(SRC, "docs", "bnfold.1"), "rb"),
          "the gzipped man page is docs/bnfold.1")
    pc = content(os.path.join(lib, "pkgconfig", "bnfold.pc")).decode()
    check(re.search(r"^prefix=/usr$", pc, re.M) and re.search(r"^libdir=\$\{prefix\}/%s$" % re.escape(libdir[len("usr/"):]), pc, re.M),
          "bnfold.pc says prefix=/usr and the package's libdir", pc)

    for path in (exe, os.path.join(lib, "libbnfold.so.%s" % VERSION)):
        sonames, pkgs, missing = needed_packages(path)
        check(sonames and not missing and pkgs <= depends,
              "every library %s loads comes from a package the Depends name" % os.path.relpath(path, root),
              "needs %s from %s; Depends %s; not found %s" % (sonames, sorted(pkgs), sorted(depends), missing))
    rc, o, e = run(["readelf", "-d", exe])
    check(rc == 0 and "libbnfold" not in o, "the program carries the library (no libbnfold.so needed)", o)

    rc, o, e = run([exe, "--version"])
    check(rc == 0 and o == "bnfold %s\n" % VERSION and e == "", "ROOT/usr/bin/bnfold --version prints 'bnfold %s'" % VERSION,
          "exit %d: %s %s" % (rc, o, e))
    got = os.path.join(tmp, "demo.folded.onnx")
    want = os.path.join(tmp, "demo.want.onnx")
    rc, o, e = run([exe, DEMO, "-o", got, "-q"], cwd=tmp)
    check(rc == 0 and o == "" and e == "" and os.path.isfile(got), "ROOT/usr/bin/bnfold folds demo.onnx -o OUT: exit 0, silent",
          "exit %d: %s %s" % (rc, o, e))
    try:
        before, after = bn_count(DEMO), bn_count(got)
        check(before > 0 and after == 0, "demo.onnx has BatchNormalization, the folded model none, and passes onnx.checker",
              "%d before, %d after" % (before, after))
    except Exception as exc:  # a missing or invalid output lands here
        check(False, "the folded model loads with onnx and has no BatchNormalization", repr(exc))
    r = bnftest.run(BNFOLD, [DEMO, "-o", want, "-q"], cwd=tmp)
    check(r.rc == 0 and os.path.isfile(got) and read(got, "rb") == read(want, "rb"),
          "the packaged program writes the bytes build/bnfold writes", r.diag())
    rc, o, e = run([exe, "--check", "-q", DEMO])
    check(rc == 3, "ROOT/usr/bin/bnfold --check demo.onnx exits 3", "exit %d: %s" % (rc, e))
    rc, o, e = run([exe, "--check", "-q", got])
    check(rc == 0, "ROOT/usr/bin/bnfold --check on its output exits 0", "exit %d: %s" % (rc, e))
    check_example(root, lib, got, tmp)


def check_example(root, lib, folded, tmp):
    """A program built against the package's header, .pc and libbnfold.so."""
    if not check(shutil.which("cc") and shutil.which("pkg-config"), "cc and pkg-config are installed"):
        return
    pkg = ["pkg-config", "--define-variable=prefix=" + os.path.join(root, "usr")]
    # bnfold.pc requires libprotobuf-c.pc and libcjson.pc (the Suggests): the
    # system's search path stays.
    env = {"PKG_CONFIG_PATH": os.path.join(lib, "pkgconfig")}
    rc1, cflags, e1 = run(pkg + ["--cflags", "bnfold"], env=env)
    rc2, libs, e2 = run(pkg + ["--libs", "bnfold"], env=env)
    flags = shlex.split(cflags) + shlex.split(libs)
    paths = [f[2:] for f in flags if f[:2] in ("-I", "-L")]
    incs = [f[2:] for f in flags if f.startswith("-I") and os.path.isfile(os.path.join(f[2:], "bnfold.h"))]
    libs_at = [f[2:] for f in flags if f.startswith("-L") and os.path.exists(os.path.join(f[2:], "libbnfold.so"))]
    check(rc1 == 0 and rc2 == 0 and "-lbnfold" in flags and len(incs) == 1 and inside(incs[0], root)
          and len(libs_at) == 1 and inside(libs_at[0], root) and not any(inside(p, SRC) for p in paths),
          "pkg-config over ROOT's bnfold.pc finds bnfold.h and libbnfold in ROOT, nothing in the source tree",
          "%s %s %s" % (flags, e1, e2))
    exe = os.path.join(tmp, "fold_file")
    rc, o, e = run(["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", os.path.join(SRC, "docs", "examples", "fold_file.c")]
                   + flags + ["-o", exe])
    if not check(rc == 0 and e == "", "docs/examples/fold_file.c builds against the package", "exit %d: %s" % (rc, e)):
        return
    env = {"LD_LIBRARY_PATH": lib}
    rc, o, e = run(["ldd", exe], env=env)
    m = re.search(r"libbnfold\.so\.\d+ => (\S+)", o)
    check(rc == 0 and m and inside(m.group(1), root), "with LD_LIBRARY_PATH it loads ROOT's libbnfold.so", o + e)
    out = os.path.join(tmp, "example.onnx")
    rc, o, e = run([exe, DEMO, out], env=env)
    check(rc == 0 and o.startswith("folded ") and e == "" and os.path.isfile(out) and read(out, "rb") == read(folded, "rb"),
          "it folds demo.onnx into the bytes the packaged program writes", "exit %d: %s %s" % (rc, o, e))


tmp = tempfile.mkdtemp(prefix="bnfold-release-test-")
try:
    check_usage(tmp)
    outdir = os.path.join(tmp, "out")
    rc, o, e = run([RELEASE, outdir], timeout=600)
    deb = os.path.join(outdir, DEB_NAME)
    check(rc == 0 and o == "%s\n%s\n" % (deb, os.path.join(outdir, "SHA256SUMS")) and e == "",
          "tools/release OUTDIR exits 0, prints the package's and SHA256SUMS's paths, nothing on stderr",
          "exit %d\nstdout: %s\nstderr: %s" % (rc, o, e[-3000:]))
    if os.path.isdir(outdir) and check_sums(outdir):
        depends = check_control(deb)
        libdir = check_contents(deb)
        check_installed(deb, libdir, depends, tmp)
finally:
    shutil.rmtree(tmp, ignore_errors=True)

sys.exit(tap.emit())
