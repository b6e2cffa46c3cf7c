"""The runnable examples of README.md and docs/*.md: find them, run them,
write their output back.  Used by tests/docs/test_docs.py (which compares)
and tools/docs-examples (which rewrites).

The convention, for whoever writes the docs:

- A fenced block of language `console` is an example.  Each line starting
  with "$ " is a command; the lines after it, up to the next command, are
  its exact output: stdout and stderr as a terminal shows them.  Nothing may
  come before the first command.  A command is one line.
- HTML comments just above the block (blank lines allowed) prepare it:
    <!-- fixtures: NAME=FILE NAME=FILE -->  copy testdata/FILE to NAME in
                                             the block's folder (folders made)
    <!-- skip: REASON -->                    do not run the block; the test
                                             prints REASON
- Every block runs in a fresh temp folder holding its fixtures.  Its
  commands run in order with `bash -c`, there, with the build's bnfold first
  on PATH as `bnfold`, stdin /dev/null and stdout and stderr on one
  pseudo-terminal; `$?` is the previous command's exit status, so
  `$ echo $?` shows it.
- A command using a program that is not installed (jq, say) is not run, nor
  is the rest of its block; the test reports it as skipped and names the
  program.
- Before comparing, only what must vary is normalized: the temp folder's
  path (to /tmp/bnfold-docs) and the random part of bnfold's temp-file names
  (.NAME.bnfold-XXXXXX).
- Any other fenced block (sh, yaml, ...) is not run, and may not hold
  "$ " lines: a session shown with its output is a `console` block.
"""

import fcntl
import os
import pty
import re
import select
import shlex
import shutil
import signal
import struct
import subprocess
import tempfile
import termios
import time

FENCE_RE = re.compile(r"^(```+|~~~+)\s*([\w+-]*)\s*$")
COMMENT_RE = re.compile(r"^<!--\s*(fixtures|skip):\s*(.*?)\s*-->$")
TEMP_NAME = "/tmp/bnfold-docs"
BUILTINS = {"echo", "cd", "test", "[", "true", "false", "exit", "export", "printf", "set", "pwd", ":",
            "if", "then", "else", "fi", "for", "do", "done", "while", "!"}


class Command:
    def __init__(self, line, text, output):
        self.line = line      # 1-based line number of the "$ " line
        self.text = text      # the command, without "$ "
        self.output = output  # list of expected output lines


class Block:
    def __init__(self, path, line, lang, body, fixtures, skip, errors):
        self.path = path          # the markdown file
        self.line = line          # 1-based line number of the opening fence
        self.lang = lang
        self.body = body          # the lines between the fences
        self.fixtures = fixtures  # [(name in the folder, file under testdata/)]
        self.skip = skip          # reason, or None
        self.errors = errors      # what is malformed about the block
        self.commands = []


def doc_files(root):
    """README.md and docs/*.md, relative to root."""
    docs = sorted(f for f in os.listdir(os.path.join(root, "docs")) if f.endswith(".md"))
    return ["README.md"] + [os.path.join("docs", f) for f in docs]


def closes(line, fence):
    s = line.strip()
    return len(s) >= len(fence) and set(s) == {fence[0]}


def parse(root, rel):
    """Every fenced block of one markdown file, console blocks split into commands."""
    with open(os.path.join(root, rel), encoding="utf-8") as f:
        lines = f.read().split("\n")
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE_RE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang, start = m.group(1), m.group(2), i
        j = i + 1
        while j < len(lines) and not closes(lines[j], fence):
            j += 1
        fixtures, skip, errors = [], None, []
        k = start - 1
        while k >= 0 and (lines[k].strip() == "" or COMMENT_RE.match(lines[k].strip())):
            c = COMMENT_RE.match(lines[k].strip())
            if c and c.group(1) == "skip":
                skip = c.group(2) or "no reason given"
            elif c:
                for item in c.group(2).split():
                    name, eq, src = item.partition("=")
                    if not eq or not name or not src or os.path.isabs(name) or ".." in name.split("/"):
                        errors.append("fixture %r is not NAME=FILE with NAME inside the folder" % item)
                    else:
                        fixtures.append((name, src))
            k -= 1
        if j >= len(lines):
            errors.append("the block is never closed")
        b = Block(rel, start + 1, lang, lines[start + 1:j], fixtures, skip, errors)
        if lang == "console":
            split_commands(b)
        blocks.append(b)
        i = j + 1
    return blocks


def split_commands(b):
    for n, text in enumerate(b.body):
        if text.startswith("$ "):
            b.commands.append(Command(b.line + 1 + n, text[2:], []))
        elif b.commands:
            b.commands[-1].output.append(text)
        else:
            b.errors.append("line %d comes before the first command" % (b.line + 1 + n))
    if not b.commands:
        b.errors.append("a console block with no command")


def programs(command):
    """The programs a command line runs: the first word of each part of a
    pipeline or list (good enough for one-line examples)."""
    try:
        lex = shlex.shlex(command, posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        words = list(lex)
    except ValueError:
        return []
    found, expect = [], True
    for w in words:
        if expect and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", w) and not re.match(r"^[<>&|;()]+$", w):
            found.append(w)
            expect = False
        if re.match(r"^(\||\|\||&&|;|\(|&)$", w):
            expect = True
    return found


def missing_program(command, path, cwd):
    for p in programs(command):
        if p in BUILTINS:
            continue
        if "/" in p:
            if not os.access(os.path.join(cwd, p), os.X_OK):
                return p
        elif shutil.which(p, path=path) is None:
            return p
    return None


def run_on_pty(command, cwd, env, timeout=60):
    """(exit status, output) of bash -c COMMAND with stdout and stderr on one
    pseudo-terminal, as a user sees them."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 250, 0, 0))
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.ONLCR  # "\n" stays "\n"
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    p = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                         stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    out, deadline = [], time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            ready = select.select([master], [], [], max(left, 0))[0] if left > 0 else []
            if not ready:
                os.killpg(p.pid, signal.SIGKILL)
                out.append(b"\n[timed out after %d s]\n" % timeout)
                break
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer has closed the terminal
                break
            if not data:
                break
            out.append(data)
    finally:
        os.close(master)
    rc = p.wait()
    return rc, b"".join(out).decode("utf-8", errors="replace").replace("\r\n", "\n")


def normalize(text, folder):
    text = text.replace(os.path.realpath(folder), TEMP_NAME).replace(folder, TEMP_NAME)
    return re.sub(r"\.bnfold-[A-Za-z0-9]{6}\b", ".bnfold-XXXXXX", text)


class Outcome:
    def __init__(self, command, skipped=None, got=None, rc=None):
        self.command = command
        self.skipped = skipped  # why the command was not run, or None
        self.got = got          # its output lines when it ran
        self.rc = rc


def run_block(block, bnfold, testdata, wrapper=()):
    """One Outcome per command of a console block.  wrapper: a command prefix
    for every bnfold run (valgrind, say)."""
    if block.skip:
        return [Outcome(c, skipped=block.skip) for c in block.commands]
    folder = tempfile.mkdtemp(prefix="bnfold-docs-")
    bindir = tempfile.mkdtemp(prefix="bnfold-docs-bin-")
    try:
        exe = os.path.join(bindir, "bnfold")
        if wrapper:
            with open(exe, "w") as f:
                f.write("#!/bin/sh\nexec %s %s \"$@\"\n" % (" ".join(shlex.quote(w) for w in wrapper),
                                                             shlex.quote(os.path.abspath(bnfold))))
            os.chmod(exe, 0o755)
        else:
            os.symlink(os.path.abspath(bnfold), exe)
        for name, src in block.fixtures:
            dest = os.path.join(folder, name)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copyfile(os.path.join(testdata, src), dest)
        path = bindir + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin")
        env = {"PATH": path, "HOME": folder, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC",
               "TERM": "dumb", "COLUMNS": "250", "TABSIZE": "0"}
        outcomes, rc, stop = [], 0, None
        for c in block.commands:
            if stop is None:
                p = missing_program(c.text, path, folder)
                if p:
                    stop = "%s is not installed" % p if "/" not in p else "%s is not in the example's folder" % p
                    outcomes.append(Outcome(c, skipped=stop))
                    stop = "it follows a command not run (%s)" % stop
                    continue
            if stop:
                outcomes.append(Outcome(c, skipped=stop))
                continue
            rc, out = run_on_pty("(exit %d); %s" % (rc, c.text), folder, env, 600 if wrapper else 60)
            out = normalize(out, folder)
            lines = out.split("\n")
            if lines and lines[-1] == "":
                lines.pop()
            outcomes.append(Outcome(c, got=lines, rc=rc))
        return outcomes
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(bindir, ignore_errors=True)


def rewrite(root, rel, results):
    """Write each command's new output into the file.  results: {line of the
    "$ " line: output lines}.  Returns True when the file changed."""
    full = os.path.join(root, rel)
    with open(full, encoding="utf-8") as f:
        lines = f.read().split("\n")
    blocks = [b for b in parse(root, rel) if b.lang == "console"]
    new, pos = [], 0
    for b in blocks:
        for c in b.commands:
            # copy everything up to and including the command line
            new.extend(lines[pos:c.line])
            pos = c.line + len(c.output)
            new.extend(results.get(c.line, c.output))
    new.extend(lines[pos:])
    if new == lines:
        return False
    tmp = full + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(new))
    os.replace(tmp, full)
    return True
