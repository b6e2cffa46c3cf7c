#!/usr/bin/python3
"""The files users copy: .pre-commit-hooks.yaml and the CI examples of
docs/ci.md (GitHub Actions, GitLab, pre-commit config, shell).  Prints TAP.

- every YAML file and ```yaml block parses (PyYAML: python3-yaml, which
  tools/deps installs), with the structure its tool expects: the pre-commit
  manifest's keys and hook, the workflow's jobs and steps, the GitLab job's
  script; versions and tags in them are meson.build's;
- every bnfold command line in them (hook entry, `run:` steps, GitLab script
  lines, ```sh blocks) names only options that `bnfold --help` lists or that
  the getopt table of src/cli/main.c holds (a made-up option is caught: the
  checker is tried on one first);
- the gates run as written, through sh, with bnfold on PATH: they exit 0 on a
  folded model and 3 once an unfolded one is added.

Options the files use before the program has them are in PENDING: while the
build lacks one, the checks that need it are skipped (TAP SKIP), not failed,
so this test passes before and after it lands; once the program lists it,
they run.  --strict (the gate where any BatchNormalization left fails) is
written for in the hook and the examples.
"""
import argparse
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
ap.add_argument("--testdata", required=True)
args = ap.parse_args()

SRC = os.path.abspath(args.source_root)
BNFOLD = os.path.abspath(args.bnfold)
DEMO = os.path.join(os.path.abspath(args.testdata), "demo.onnx")
PENDING = {"strict"}
tap = bnftest.Tap()
check = tap.check


def read(*parts):
    with open(os.path.join(SRC, *parts), encoding="utf-8") as f:
        return f.read()


try:
    import yaml
except ImportError:
    yaml = None
if not check(yaml is not None, "PyYAML imports (python3-yaml; tools/deps installs it)"):
    sys.exit(tap.emit())

VERSION = re.search(r"version : '([^']+)'", read("meson.build")).group(1)

# ------------------------------------------------------------ the program's options
main_c = read("src", "cli", "main.c")
LONG = {n: k for n, k in re.findall(r'\{"([a-z][a-z-]*)", (no|required|optional)_argument, NULL, [^}]*\}', main_c)}
m = re.search(r'getopt_long\(argc, argv, "([^"]*)"', main_c)
optstring = m.group(1) if m else ""
SHORT = {c: optstring[i + 1:i + 2] == ":" for i, c in enumerate(optstring) if c.isalnum()}
p = subprocess.run([BNFOLD, "--help"], capture_output=True, text=True, timeout=60)
help_text = p.stdout
check(p.returncode == 0 and LONG and SHORT, "found the getopt table of src/cli/main.c and bnfold --help",
      "%s %s exit %d" % (LONG, SHORT, p.returncode))
for name in set(re.findall(r"(?<![\w-])--([a-z][a-z-]+)", help_text)) - set(LONG):
    LONG[name] = "required" if re.search(r"--%s [A-Z]" % re.escape(name), help_text) else "no"
for c in re.findall(r"(?m)(?:^|\s)-([A-Za-z])[ ,]", help_text):
    SHORT.setdefault(c, False)


def options(argv):
    """The options of one bnfold argv (program first): ('--long' | '-c') list."""
    found, i = [], 1
    while i < len(argv):
        t = argv[i]
        i += 1
        if t == "--":
            break
        if t.startswith("--"):
            name = t[2:].split("=")[0]
            found.append("--" + name)
            if LONG.get(name) == "required" and "=" not in t:
                i += 1
        elif t.startswith("-") and t != "-":
            for j, c in enumerate(t[1:]):
                found.append("-" + c)
                if SHORT.get(c):
                    if j == len(t) - 2:
                        i += 1
                    break
    return found


def unknown(opts):
    return [o for o in opts if (o[2:] not in LONG if o.startswith("--") else o[1:] not in SHORT)]


PREFIX_WORDS = {"sudo", "env", "exec", "command", "if", "then", "else", "do", "!", "time", "nice"}


def bnfold_commands(script):
    """Every simple command of a shell script whose program is bnfold (by base name)."""
    cmds = []
    for line in script.replace("\\\n", " ").splitlines():
        lex = shlex.shlex(line, posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        try:
            tokens = list(lex)
        except ValueError:  # an unbalanced quote: not a command line
            continue
        current, skip = [], False
        for t in tokens + [";"]:
            if skip:
                skip = False
            elif t and set(t) <= set("<>&") and t not in ("&&", "&"):
                skip = True  # a redirection: its target is no argument, nor its fd (2>&1)
                if current and current[-1].isdigit():
                    current.pop()
            elif t and set(t) <= set("();|&"):
                while current and (current[0] in PREFIX_WORDS or re.match(r"^[A-Za-z_]\w*=", current[0])):
                    current.pop(0)
                if current and os.path.basename(current[0]) == "bnfold":
                    cmds.append(current)
                current = []
            else:
                current.append(t)
    return cmds


# The checker catches what it must, or the checks below cannot fail.
probe = bnfold_commands('cd x && sudo bnfold --check --no-such-option -qZ models/*.onnx > out 2>&1 | tee log\n'
                        'echo bnfold; FOO=1 build/bnfold -o - --tolerance 1e-3 in.onnx')
check(probe == [["bnfold", "--check", "--no-such-option", "-qZ", "models/*.onnx"],
                ["build/bnfold", "-o", "-", "--tolerance", "1e-3", "in.onnx"]]
      and unknown(options(probe[0])) == ["--no-such-option", "-Z"] and unknown(options(probe[1])) == [],
      "the command checker finds bnfold's commands and catches a made-up option", probe)

# ------------------------------------------------------------ the files
HOOK_KEYS = {"id", "name", "entry", "language", "files", "exclude", "types", "types_or", "exclude_types",
             "always_run", "fail_fast", "verbose", "pass_filenames", "require_serial", "description",
             "language_version", "minimum_pre_commit_version", "args", "stages", "additional_dependencies"}
commands = []  # (where, script) of every shell script in the files
gates = []     # (where, kind, script): gates to run


def load(text, where):
    try:
        doc = yaml.safe_load(text)
        check(True, "%s parses as YAML" % where)
        return doc
    except yaml.YAMLError as exc:
        check(False, "%s parses as YAML" % where, str(exc))
        return None


hooks = load(read(".pre-commit-hooks.yaml"), ".pre-commit-hooks.yaml")
hook_ids = set()
if check(isinstance(hooks, list) and hooks and all(isinstance(h, dict) for h in hooks),
         ".pre-commit-hooks.yaml is a list of hooks", hooks):
    for h in hooks:
        check({"id", "name", "entry", "language"} <= set(h) and set(h) <= HOOK_KEYS,
              "hook %s has id, name, entry and language, and only pre-commit's keys" % h.get("id"), sorted(h))
        hook_ids.add(h.get("id"))
    hook = next((h for h in hooks if h.get("id") == "bnfold-check"), {})
    entry = shlex.split(hook.get("entry", ""))
    check(hook.get("language") == "system" and hook.get("pass_filenames", True) is True
          and entry[:1] == ["bnfold"] and {"--check", "--strict"} <= set(entry),
          "hook bnfold-check runs the installed `bnfold --check --strict` on the files (language system)", hook)
    try:
        files = re.compile(hook.get("files", ""))
    except re.error as exc:
        files = None
        check(False, "hook bnfold-check's files pattern compiles", str(exc))
    want = {"a.onnx": True, "models/sub dir/m.onnx": True, "a.onnx.data": False, "a.onnx.txt": False,
            "notes.md": False, "aonnx": False}
    check(files and all(bool(files.search(f)) == w for f, w in want.items()),
          "hook bnfold-check's files pattern takes *.onnx and nothing else", hook.get("files"))
    commands.append((".pre-commit-hooks.yaml entry", hook.get("entry", "")))
    gates.append((".pre-commit-hooks.yaml", "hook", hook.get("entry", "")))

ci = read("docs", "ci.md")
blocks = re.findall(r"^```(\w*)\n(.*?)^```$", ci, re.M | re.S)
yaml_blocks = [b for lang, b in blocks if lang in ("yaml", "yml")]
check(len(yaml_blocks) >= 3, "docs/ci.md has the YAML blocks (pre-commit config, GitHub workflow, GitLab job)",
      len(yaml_blocks))
kinds = []
for n, text in enumerate(yaml_blocks, 1):
    doc = load(text, "docs/ci.md YAML block %d" % n)
    if not isinstance(doc, dict):
        check(False, "docs/ci.md YAML block %d is a mapping" % n, doc)
        continue
    if "repos" in doc:
        kinds.append("pre-commit")
        used = [(r.get("rev"), h.get("id")) for r in doc["repos"] for h in r.get("hooks", [])]
        check(used and all(rev == "v" + VERSION and hid in hook_ids for rev, hid in used),
              "the pre-commit config uses rev v%s and hooks that .pre-commit-hooks.yaml declares" % VERSION, used)
    elif "jobs" in doc:
        kinds.append("github")
        # YAML 1.1 reads the key `on` as true: PyYAML (and not GitHub) does.
        on = doc.get("on", doc.get(True))
        check(isinstance(on, dict) and on and isinstance(doc["jobs"], dict) and doc["jobs"],
              "the workflow has triggers (on) and jobs", sorted(map(str, doc)))
        for name, job in doc["jobs"].items():
            steps = job.get("steps") or []
            check(isinstance(job.get("runs-on"), str) and steps
                  and all(isinstance(s, dict) and len({"run", "uses"} & set(s)) == 1 for s in steps),
                  "workflow job %s has runs-on and steps, each with one of run or uses" % name, job)
            uses = [s["uses"] for s in steps if "uses" in s]
            check(all(re.match(r"^actions/[a-z-]+@v\d+$", u) for u in uses),
                  "workflow job %s uses pinned actions/* only" % name, uses)
            refs = [s["with"].get("ref") for s in steps if "with" in s and "repository" in s["with"]]
            check(all(r == "v" + VERSION for r in refs) and job.get("env", {}).get("BNFOLD_VERSION", VERSION) == VERSION,
                  "workflow job %s names bnfold %s" % (name, VERSION), (refs, job.get("env")))
            runs = [s["run"] for s in steps if "run" in s]
            commands += [("workflow job %s" % name, r) for r in runs]
            gate = [r for r in runs if any("--check" in c for c in bnfold_commands(r))]
            check(len(gate) == 1, "workflow job %s has one gate step (bnfold --check)" % name, runs)
            gates += [("workflow job %s" % name, "sh", g) for g in gate]
    else:
        jobs = {k: v for k, v in doc.items() if isinstance(v, dict) and "script" in v}
        if jobs:
            kinds.append("gitlab")
        for name, job in jobs.items():
            script = job["script"]
            check(isinstance(job.get("image"), str) and isinstance(script, list) and all(isinstance(s, str) for s in script),
                  "GitLab job %s has an image and a script of command lines" % name, job)
            commands += [("GitLab job %s" % name, s) for s in script]
            gate = [s for s in script if any("--check" in c for c in bnfold_commands(s))]
            check(len(gate) == 1, "GitLab job %s has one gate line (bnfold --check)" % name, script)
            gates += [("GitLab job %s" % name, "sh", g) for g in gate]
check(sorted(kinds) == ["github", "gitlab", "pre-commit"],
      "docs/ci.md's YAML blocks are a pre-commit config, a GitHub workflow and a GitLab job", kinds)
commands += [("docs/ci.md sh block", b) for lang, b in blocks if lang == "sh"]
versions = set(re.findall(r"bnfold_(\d[^_]*)_amd64\.deb", ci))
check(versions == {VERSION}, "docs/ci.md's package names carry version %s" % VERSION, versions)

# ------------------------------------------------------------ the options they use
found = [(where, c) for where, script in commands for c in bnfold_commands(script)]
check(len(found) >= 6, "found the bnfold command lines (hook, workflow, GitLab, sh blocks)",
      "\n".join("%s: %s" % (w, " ".join(c)) for w, c in found))
seen = set()
for where, cmd in found:
    line = " ".join(cmd)
    if (where, line) in seen:
        continue
    seen.add((where, line))
    bad = unknown(options(cmd))
    pending = [o for o in bad if o.lstrip("-") in PENDING]
    if pending and len(pending) == len(bad):
        tap.skip("%s: `%s` uses only bnfold's options" % (where, line), "%s not in this build yet" % " ".join(pending))
    else:
        check(not bad, "%s: `%s` uses only bnfold's options" % (where, line), "unknown: %s" % bad)

# ------------------------------------------------------------ the gates at work
tmp = tempfile.mkdtemp(prefix="bnfold-ci-files-")
try:
    folded = os.path.join(tmp, "folded.onnx")
    r = bnftest.run(BNFOLD, [DEMO, "-o", folded, "-q"])
    check(r.rc == 0, "build/bnfold folds demo.onnx", r.diag())
    bindir = os.path.join(tmp, "bin")
    os.mkdir(bindir)
    os.symlink(BNFOLD, os.path.join(bindir, "bnfold"))
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    for n, (where, kind, script) in enumerate(gates):
        cmds = bnfold_commands(script)
        pending = sorted({o for c in cmds for o in unknown(options(c)) if o.lstrip("-") in PENDING})
        desc = "%s: the gate exits 0 on a folded model, 3 once an unfolded one is added" % where
        if pending:
            tap.skip(desc, "%s not in this build yet" % " ".join(pending))
            continue
        work = os.path.join(tmp, "w%d" % n)
        os.makedirs(os.path.join(work, "models"))
        for c in cmds:  # a program named by a path (bnfold-src/build/bnfold) is build/bnfold
            if "/" in c[0] and not os.path.isabs(c[0]):
                os.makedirs(os.path.join(work, os.path.dirname(c[0])), exist_ok=True)
                os.symlink(BNFOLD, os.path.join(work, c[0]))
        shutil.copy(folded, os.path.join(work, "models", "a.onnx"))
        argv = (shlex.split(script) + ["models/a.onnx"]) if kind == "hook" else ["sh", "-c", script]
        p1 = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=120)
        shutil.copy(DEMO, os.path.join(work, "models", "b.onnx"))
        if kind == "hook":
            argv.append("models/b.onnx")
        p2 = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=120)
        reports = [t for c in cmds for i, t in enumerate(c) if i and c[i - 1] == "--report"]
        check(p1.returncode == 0 and p2.returncode == 3 and re.search(r"b\.onnx", p2.stderr)
              and all(os.path.isfile(os.path.join(work, f)) and os.path.getsize(os.path.join(work, f)) > 0
                      for f in reports if f != "-"),
              desc + (" (and writes %s)" % ", ".join(reports) if reports else ""),
              "exit %d then %d\n%s\n%s" % (p1.returncode, p2.returncode, p1.stderr[-800:], p2.stderr[-800:]))
finally:
    shutil.rmtree(tmp, ignore_errors=True)

sys.exit(tap.emit())
