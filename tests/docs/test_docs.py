#!/usr/bin/python3
"""The documentation against the code it documents.  Prints TAP.

- every example of README.md and docs/*.md is run and prints what the page
  shows.  The convention, in short (in full at the top of examples.py): a
  ```console block holds "$ command" lines, each followed by its exact output;
  an HTML comment above the block prepares or skips it:
      <!-- fixtures: models/a.onnx=demo.onnx b.onnx=nothing_to_fold.onnx -->
      <!-- skip: REASON -->
  A skipped block, or a command using a program that is not installed, is a
  TAP "# SKIP" line giving the reason.  After a change of output,
  tools/docs-examples rewrites the outputs in place;
- no other block holds "$ " lines, every bnfold line of any block names only
  options the program has, every relative link (and #anchor) between the pages
  resolves, and README.md stays within 10 KB;
- the man page renders with no groff/man warnings;
- the getopt table of src/cli/main.c, --help, the man page and docs/usage.md
  name the same options;
- every exit status of src/cli/main.c is in --help, the man page and
  docs/usage.md;
- every reason code of BNF_REASONS (src/lib/patterns.h) is in docs/reasons.md,
  the man page and the report schema, and the schema has no other;
- the version agrees between meson.build, --version and the man page;
- `meson install --destdir` puts bin/bnfold, share/man/man1/bnfold.1 and the
  rest (library, header, bnfold.pc, schema, LICENSE) in place, and nothing else.
"""
import argparse
import difflib
import filecmp
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import bnftest  # noqa: E402
import examples  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--bnfold", required=True)
ap.add_argument("--source-root", required=True)
ap.add_argument("--build-root", required=True)
args = ap.parse_args()

SRC = os.path.abspath(args.source_root)
BUILD = os.path.abspath(args.build_root)
BNFOLD = os.path.abspath(args.bnfold)
MAN = os.path.join(SRC, "docs", "bnfold.1")
tap = bnftest.Tap()
check = tap.check


def read(*parts):
    with open(os.path.join(SRC, *parts), encoding="utf-8") as f:
        return f.read()


def run(argv, **kw):
    p = subprocess.run(argv, capture_output=True, timeout=120, **kw)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


main_c = read("src", "cli", "main.c")
fold_h = read("src", "lib", "patterns.h")
readme = read("README.md")
usage = read("docs", "usage.md")
reasons_md = read("docs", "reasons.md")
man_src = read("docs", "bnfold.1")
man_text = man_src.replace("\\-", "-")  # roff's \- is the '-' a user types
schema = json.loads(read("src", "lib", "report.schema.json"))


def man_section(title):
    m = re.search(r"^\.SH \"?%s\"?\n(.*?)(?=^\.SH |\Z)" % re.escape(title), man_text, re.M | re.S)
    return m.group(1) if m else ""


# ------------------------------------------------------------ the code's truth
longopts = re.findall(r'\{"([a-z][a-z-]*)", (?:no|required|optional)_argument, NULL, [^}]*\}', main_c)
m = re.search(r'getopt_long\(argc, argv, "([^"]*)"', main_c)
shortopts = [c for c in (m.group(1) if m else "") if c.isalnum()]
check(len(longopts) >= 10 and len(shortopts) >= 5, "found the getopt table in src/cli/main.c",
      "long %s short %s" % (longopts, shortopts))
exit_codes = {name: int(v) for name, v in re.findall(r"\b(EXIT_[A-Z]+) = (\d+)", main_c)}
check(sorted(exit_codes.values()) == [0, 1, 2, 3, 4], "exit codes of src/cli/main.c are 0, 1, 2, 3, 4", exit_codes)
reasons = [c for c in re.findall(r'X\(BNF_[A-Z0-9_]+,\s*"([a-z0-9_]+)"', fold_h) if c != "fold"]
check(len(reasons) >= 10, "found the BNF_REASONS table in src/lib/patterns.h", reasons)

# ------------------------------------------------------------ man renders
man = shutil.which("man")
if check(man is not None, "man is installed (tools/deps installs man-db and groff-base)"):
    env = dict(os.environ, MANWIDTH="80", LANG="C.UTF-8", MAN_KEEP_FORMATTING="")
    rc, out, err = run([man, "--warnings", "-l", MAN], env=env)
    check(rc == 0 and err.strip() == "", "man --warnings -l docs/bnfold.1 renders with no warnings", "exit %d: %s" % (rc, err))
    for sec in ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "REPORT", "REASON CODES", "EXAMPLES"]:
        check(re.search(r"^%s$" % sec, out, re.M), "man page has section %s" % sec)
    too_wide = [l for l in out.splitlines() if len(l) > 80]
    check(not too_wide, "rendered man page fits 80 columns", too_wide[:5])
    rc, out, err = run(["groff", "-man", "-Tutf8", "-ww", "-z", MAN])
    check(rc == 0 and err.strip() == "", "groff -man -ww reports nothing", err)

# ------------------------------------------------------------ options
# The tag lines of the man page's option entries: the line after each .TP.
man_tags = "\n".join(re.findall(r"^\.TP\n(.*)$", man_section("OPTIONS"), re.M))
rc, help_text, _ = run([BNFOLD, "--help"])
check(rc == 0, "--help exits 0")
check(all(len(l) < 80 for l in help_text.splitlines()), "--help fits 79 columns",
      [l for l in help_text.splitlines() if len(l) >= 80])
for name in longopts:
    check("--" + name in help_text, "--help mentions --%s" % name)
    check(re.search(r"--%s\b" % re.escape(name), man_tags), "man page OPTIONS has an entry for --%s" % name)
    check("`--%s" % name in usage or "--%s`" % name in usage or ", --%s" % name in usage,
          "docs/usage.md mentions --%s" % name)
for c in shortopts:
    check(re.search(r"(^|\s)-%s[ ,]" % c, help_text, re.M), "--help mentions -%s" % c)
    check(re.search(r"(?<![\w-])-%s\b" % c, man_tags), "man page OPTIONS has an entry for -%s" % c)
    check("`-%s" % c in usage, "docs/usage.md mentions -%s" % c)
known = set(longopts)
stray_help = sorted(set(re.findall(r"(?<![\w-])--([a-z][a-z-]+)", help_text)) - known)
check(not stray_help, "--help names no option the program lacks", stray_help)
stray_man = sorted(set(re.findall(r"(?<![\w-])--([a-z][a-z-]+)", man_section("OPTIONS") + man_section("SYNOPSIS")
                                  + man_section("EXAMPLES"))) - known)
check(not stray_man, "man page names no option the program lacks", stray_man)
opt_rows = re.findall(r"^\| `(-[^`]*)` \|", usage, re.M)
usage_long = set(re.findall(r"--([a-z][a-z-]+)", " ".join(opt_rows)))
check(usage_long == known, "docs/usage.md options table lists exactly the program's long options",
      "missing %s, extra %s" % (sorted(known - usage_long), sorted(usage_long - known)))

# ------------------------------------------------------------ exit status
help_exit = help_text[help_text.find("Exit status"):]
man_exit = man_section("EXIT STATUS")
for name, v in sorted(exit_codes.items(), key=lambda kv: kv[1]):
    check(re.search(r"\b%d\b" % v, help_exit), "--help documents exit status %d (%s)" % (v, name))
    check(re.search(r"^\.B %d$" % v, man_exit, re.M), "man page documents exit status %d (%s)" % (v, name))
    check(re.search(r"^\| `%d` \|" % v, usage, re.M), "docs/usage.md documents exit status %d (%s)" % (v, name))

# ------------------------------------------------------------ reason codes
schema_reasons = schema["definitions"]["reason"]["enum"]
man_reasons = man_section("REASON CODES")
for code in reasons:
    check("| `%s` |" % code in reasons_md, "docs/reasons.md explains reason %s" % code)
    check(re.search(r"^\.B %s$" % code, man_reasons, re.M), "man page explains reason %s" % code)
check(sorted(schema_reasons) == sorted(reasons), "report schema's reason enum is exactly BNF_REASONS",
      "missing %s, extra %s" % (sorted(set(reasons) - set(schema_reasons)), sorted(set(schema_reasons) - set(reasons))))
table = reasons_md[reasons_md.find("## Why a BN is skipped"):]
table = table[:table.find("\n## ", 1)] if "\n## " in table[1:] else table
doc_reasons = re.findall(r"^\| `([a-z0-9_]+)` \|", table, re.M)
check(sorted(doc_reasons) == sorted(reasons), "docs/reasons.md reason table lists exactly the codes of patterns.h",
      "missing %s, extra %s" % (sorted(set(reasons) - set(doc_reasons)), sorted(set(doc_reasons) - set(reasons))))

# ------------------------------------------------------------ the pages
pages = examples.doc_files(SRC)
check(len(readme.encode()) <= 10 * 1024, "README.md is at most 10 KB", "%d bytes" % len(readme.encode()))
for want in ["docs/usage.md", "docs/reasons.md", "docs/verification.md", "docs/report.md",
             "docs/performance.md", "docs/architecture.md"]:
    check(want in pages and "](%s)" % want in readme, "README.md links to %s" % want)
blocks = {rel: examples.parse(SRC, rel) for rel in pages}


def bnfold_options_ok(line):
    """The options of each bnfold invocation on one line that the program lacks."""
    bad = []
    for m in re.finditer(r"(?:^|[\s/(])bnfold((?:\s+[^\s|;&<>]+)*)", line):
        for word in m.group(1).split():
            if word.startswith("--"):
                if word[2:].split("=")[0] not in known:
                    bad.append(word)
            elif re.match(r"^-[A-Za-z]+$", word):
                bad.extend("-" + c for c in word[1:] if c not in shortopts)
    return bad


for rel in pages:
    for b in blocks[rel]:
        where = "%s:%d" % (rel, b.line)
        if b.errors:
            check(False, "%s: the block is well formed" % where, "; ".join(b.errors))
        if b.lang != "console":
            sessions = [l for l in b.body if l.startswith("$ ")]
            check(not sessions, "%s: a block with \"$ \" lines is a console block" % where, sessions[:3])
        if b.lang != "console" and (b.fixtures or b.skip):
            check(False, "%s: fixtures and skip markers stand above console blocks only" % where)
        lines = [c.text for c in b.commands] if b.lang == "console" else b.body
        bad = [w for l in lines for w in bnfold_options_ok(l)]
        check(not bad, "%s: every bnfold line of the block names only options the program has" % where, bad)
        for name, src in b.fixtures:
            check(os.path.isfile(os.path.join(SRC, "testdata", src)), "%s: fixture testdata/%s exists" % (where, src))

for rel in pages:
    fenced = set()
    for b in blocks[rel]:
        fenced.update(range(b.line, b.line + len(b.body) + 2))
    spans = [(n, m) for n, line in enumerate(read(rel).split("\n"), 1) if n not in fenced
             for m in re.findall(r"`(bnfold [^`]*)`", line)]
    bad = ["line %d: %s" % (n, w) for n, m in spans for w in bnfold_options_ok(m)]
    check(not bad, "%s: every `bnfold ...` in the text names only options the program has (%d)" % (rel, len(spans)),
          bad)

# ------------------------------------------------------------ the examples
testdata = os.path.join(SRC, "testdata")
n_examples = 0
for rel in pages:
    for b in blocks[rel]:
        if b.lang != "console" or b.errors:
            continue
        for o in examples.run_block(b, BNFOLD, testdata, wrapper=bnftest.WRAPPER):
            n_examples += 1
            desc = "%s:%d: $ %s prints what the page shows" % (rel, o.command.line, o.command.text)
            if o.skipped:
                tap.skip(desc, o.skipped)
                continue
            diff = "\n".join(difflib.unified_diff(o.command.output, o.got, "the page", "the run", lineterm=""))
            check(o.got == o.command.output, desc,
                  "exit %d; run tools/docs-examples to rewrite the page\n%s" % (o.rc, diff))
check(n_examples >= 20, "found the examples of README.md and docs/*.md", n_examples)


# ------------------------------------------------------------ links
def slug(title):
    """The anchor GitHub gives a heading."""
    t = re.sub(r"`|\*\*|<[^>]*>", "", title.strip()).lower()
    t = re.sub(r"[^\w\- ]", "", t)
    return t.replace(" ", "-")


def anchors(rel):
    fenced = set()
    for b in blocks.get(rel, []):
        fenced.update(range(b.line, b.line + len(b.body) + 2))
    seen, out = {}, set()
    for n, line in enumerate(read(rel).split("\n"), 1):
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m and n not in fenced:
            a = slug(m.group(1))
            out.add(a if a not in seen else "%s-%d" % (a, seen[a]))
            seen[a] = seen.get(a, 0) + 1
    return out


n_links = 0
for rel in pages:
    fenced = set()
    for b in blocks[rel]:
        fenced.update(range(b.line, b.line + len(b.body) + 2))
    for n, line in enumerate(read(rel).split("\n"), 1):
        if n in fenced:
            continue
        line = re.sub(r"`[^`]*`", "", line)
        targets = re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", line)
        targets += re.findall(r"^\s*\[[^\]]+\]:\s*(\S+)", line)
        for t in targets:
            if re.match(r"^[a-z]+:", t):
                continue
            n_links += 1
            path, _, frag = t.partition("#")
            target = os.path.normpath(os.path.join(os.path.dirname(rel), path)) if path else rel
            desc = "%s:%d: link %s resolves" % (rel, n, path + (" (anchor %s)" % frag if frag else ""))
            if not os.path.exists(os.path.join(SRC, target)) or target.startswith(".."):
                check(False, desc, "no file %s" % target)
            elif frag and target.endswith(".md"):
                check(frag in anchors(target), desc, "no heading with anchor #%s in %s" % (frag, target))
            else:
                check(True, desc)
check(n_links >= 20, "found the links between the pages", n_links)

# ------------------------------------------------------------ version
rc, out, _ = run([BNFOLD, "--version"])
v = re.search(r"version : '([^']+)'", read("meson.build"))
th = re.search(r'^\.TH BNFOLD 1 "[^"]*" "bnfold ([^"]+)"', man_src, re.M)
check(v and th and out.strip() == "bnfold " + v.group(1) and th.group(1) == v.group(1),
      "meson.build, --version and the man page agree on the version",
      "%s / %s / %s" % (out.strip(), v and v.group(1), th and th.group(1)))

# ------------------------------------------------------------ meson install
meson = shutil.which("meson")
if check(meson is not None, "meson is installed"):
    stage = tempfile.mkdtemp(prefix="bnfold-install-")
    try:
        rc, out, err = run([meson, "install", "-C", BUILD, "--no-rebuild", "--destdir", stage])
        check(rc == 0, "meson install --destdir succeeds", err[-500:])
        rc, opts, err = run([meson, "introspect", "--buildoptions", BUILD])
        o = {x["name"]: x["value"] for x in json.loads(opts)} if rc == 0 else {}
        prefix = o.get("prefix", "/usr/local").lstrip("/")
        bindir, mandir = o.get("bindir", "bin"), o.get("mandir", "share/man")
        exe = os.path.join(stage, prefix, bindir, "bnfold")
        page = os.path.join(stage, prefix, mandir, "man1", "bnfold.1")
        rc, out, _ = run([exe, "--version"]) if os.path.isfile(exe) else (-1, "", "")
        check(os.access(exe, os.X_OK) and rc == 0 and out.startswith("bnfold "),
              "meson install puts an executable bin/bnfold in place", exe)
        check(os.path.isfile(page) and filecmp.cmp(page, MAN, shallow=False),
              "meson install puts share/man/man1/bnfold.1 in place", page)
        got = sorted(os.path.relpath(os.path.join(r, f), stage) for r, _, fs in os.walk(stage) for f in fs)
        libdir = o.get("libdir", "lib")
        datadir = o.get("datadir", "share")
        want = {os.path.join(prefix, bindir, "bnfold"), os.path.join(prefix, mandir, "man1", "bnfold.1"),
                os.path.join(prefix, o.get("includedir", "include"), "bnfold.h"),
                os.path.join(prefix, libdir, "libbnfold.a"),
                os.path.join(prefix, libdir, "pkgconfig", "bnfold.pc"),
                os.path.join(prefix, datadir, "bnfold", "report.schema.json"),
                os.path.join(prefix, datadir, "doc", "bnfold", "LICENSE")}
        shared = [g for g in got if re.search(r"/libbnfold\.so(\.\d+)*$", g)]
        check(sorted(set(got) - set(shared)) == sorted(want) and len(shared) == 3,
              "meson install puts in place the program, the man page, the library (static, shared with a "
              "soname and its links), bnfold.h, bnfold.pc, the report schema and the LICENSE, and nothing else", got)
        schema_copy = os.path.join(stage, prefix, datadir, "bnfold", "report.schema.json")
        check(os.path.isfile(schema_copy) and filecmp.cmp(schema_copy, os.path.join(SRC, "src", "lib", "report.schema.json"), shallow=False),
              "the installed report schema is the one in the source tree", schema_copy)
        check("share/bnfold/report.schema.json" in man_text,
              "the man page names the installed report schema", "")
    finally:
        shutil.rmtree(stage, ignore_errors=True)

sys.exit(tap.emit())
