#!/usr/bin/python3
"""Output safety under failures: write errors (ENOSPC, EIO, a short write
then an error), fsync, close, rename and create failures injected by the
LD_PRELOAD shim faultshim.c, SIGINT/SIGTERM/SIGHUP arriving while the
output is being written, and the input shrinking while it is read.  Prints
TAP.

After every failure: exit 1 (or death by the signal), one error line naming
the file, no temp file (.NAME.bnfold-XXXXXX) left, and the file that was at
the output path before (or the input, for --in-place) byte for byte intact.
Only temp folders, FIFOs and symlinks in them are used, never device nodes.
"""
import argparse
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import bnftest  # noqa: E402
from bnftest import sha  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--bnfold", required=True)
ap.add_argument("--shim", required=True)
ap.add_argument("--testdata", required=True)
ap.add_argument("--no-reserve", action="store_true", help="the build reserves no blocks (no fallocate: -Dportable=true)")
args = ap.parse_args()

BNFOLD = os.path.abspath(args.bnfold)
SHIM = os.path.abspath(args.shim)
DEMO = os.path.join(os.path.abspath(args.testdata), "demo.onnx")
tap = bnftest.Tap()
OLD = b"the previous output, which a failed run must leave alone\n"


def faulted(**faults):
    env = {"LD_PRELOAD": SHIM,
           # gcc's shared ASan runtime wants to come first; the shim does not care
           "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"}
    env.update({"BNFOLD_FAULT_" + k.upper(): str(v) for k, v in faults.items()})
    return env


def start_held(argv, env, ready, poll=0.02):
    """Start bnfold under the fault shim and wait until it is held at the
    faulted call (the shim creates `ready` there): the process, and whether
    it got there."""
    p = subprocess.Popen(bnftest.WRAPPER + [BNFOLD] + argv, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 60
    while not os.path.exists(ready) and time.monotonic() < deadline and p.poll() is None:
        time.sleep(poll)
    return p, os.path.exists(ready)


def finish(p, timeout=60):
    """Wait for p (killed after timeout); what it wrote on stderr."""
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    return p.stderr.read().decode(errors="replace")


def fresh(tmp, name):
    d = os.path.join(tmp, name)
    os.mkdir(d)
    return d


os.umask(0o022)
tmp = tempfile.mkdtemp(prefix="bnfold-faults-")
try:
    # What a clean run writes, to compare runs that must still succeed.
    ref = os.path.join(tmp, "reference.onnx")
    r = bnftest.run(BNFOLD, [DEMO, "-o", ref])
    tap.check(r.rc == 0 and not r.crashed(), "reference run", r.diag())
    ref_sha = sha(ref)

    # --- write errors on the model's temp file, an earlier output in place
    n = 0
    for desc, faults, msg in (
            ("ENOSPC on the first write", dict(write_after=0, errno="ENOSPC"), "No space left on device"),
            ("a short write of 1000 bytes, then ENOSPC", dict(write_after=1000, errno="ENOSPC"), "No space left on device"),
            ("EIO after 3000 bytes", dict(write_after=3000, errno="EIO"), "Input/output error"),
            ("EDQUOT after 1 byte", dict(write_after=1, errno="EDQUOT"), "Disk quota exceeded"),
            ("fsync fails with EIO", dict(fsync="EIO"), "Input/output error"),
            ("close fails with EIO (as on NFS)", dict(close="EIO"), "Input/output error"),
            ("rename fails with EXDEV", dict(rename="EXDEV"), "cannot replace: Invalid cross-device link"),
            ("rename fails with EACCES", dict(rename="EACCES"), "cannot replace: Permission denied"),
            ("the folder is read-only (EROFS creating the temp file)", dict(create="EROFS"),
             "cannot create a file in '.*': Read-only file system"),
            ("the folder is not writable (EACCES creating the temp file)", dict(create="EACCES"),
             "cannot create a file in '.*': Permission denied")):
        n += 1
        d = fresh(tmp, f"w{n}")
        out = os.path.join(d, "out.onnx")
        with open(out, "wb") as f:
            f.write(OLD)
        r = bnftest.run(BNFOLD, [DEMO, "-o", out], env=faulted(match=d, **faults))
        lines = r.err.strip().splitlines()
        ok = (not r.crashed() and r.rc == 1 and len(lines) == 1
              and re.fullmatch(rf"bnfold: error: {re.escape(out)}: .*{msg}", lines[0]) is not None)
        tap.check(ok, f"{desc}: one error line naming the output", r.diag())
        tap.check(open(out, "rb").read() == OLD and bnftest.debris(d) == [] and os.listdir(d) == ["out.onnx"],
                  f"{desc}: the earlier output is intact and nothing else is left", f"folder: {os.listdir(d)}")

    # --- no earlier output: nothing at all may appear
    d = fresh(tmp, "new")
    out = os.path.join(d, "out.onnx")
    r = bnftest.run(BNFOLD, [DEMO, "-o", out], env=faulted(match=d, write_after=2000))
    tap.check(r.rc == 1 and not r.crashed() and os.listdir(d) == [], "ENOSPC writing a new file leaves the folder empty",
              r.diag() + f"; folder: {os.listdir(d)}")

    # --- writes that are only short must still produce the whole model
    d = fresh(tmp, "short")
    out = os.path.join(d, "out.onnx")
    r = bnftest.run(BNFOLD, [DEMO, "-o", out], env=faulted(match=d, short=7))
    tap.check(r.rc == 0 and not r.crashed() and sha(out) == ref_sha and bnftest.debris(d) == [],
              "writes of at most 7 bytes each: the same output as a clean run", r.diag())

    # --- the blocks reserved for a temp file up front (fallocate, on ext4
    # only): advice, so a refusal changes nothing; cut to the file's size
    # before the rename, so a failure there is a write error
    d = fresh(tmp, "fallocate")
    out = os.path.join(d, "out.onnx")
    r = bnftest.run(BNFOLD, [DEMO, "-o", out], env=faulted(match=d, fallocate="ENOSPC"))
    tap.check(r.rc == 0 and not r.crashed() and sha(out) == ref_sha and bnftest.debris(d) == [],
              "fallocate refused (ENOSPC): the same output as a clean run", r.diag())
    fs = subprocess.run(["stat", "-f", "-c", "%T", tmp], capture_output=True, text=True).stdout.strip()
    if args.no_reserve:
        tap.skip("ftruncate fails after the blocks were reserved", "this build reserves no blocks (no fallocate)")
    elif fs != "ext2/ext3":
        tap.skip("ftruncate fails after the blocks were reserved",
                 f"the temp folder is on {fs or 'an unknown file system'}; blocks are reserved on ext4 only")
    else:
        d = fresh(tmp, "ftruncate")
        out = os.path.join(d, "out.onnx")
        with open(out, "wb") as f:
            f.write(OLD)
        r = bnftest.run(BNFOLD, [DEMO, "-o", out], env=faulted(match=d, ftruncate="EIO"))
        lines = r.err.strip().splitlines()
        tap.check(not r.crashed() and r.rc == 1 and len(lines) == 1 and
                  re.fullmatch(rf"bnfold: error: {re.escape(out)}: cannot write: Input/output error", lines[0]) is not None
                  and open(out, "rb").read() == OLD and os.listdir(d) == ["out.onnx"],
                  "ftruncate fails after the blocks were reserved: one error line, the earlier output intact",
                  r.diag() + f"; folder: {os.listdir(d)}")
    # An output less than half its input (a BN of 250000 channels after a
    # 1x1 Conv of one input channel: four parameters in, one bias out)
    # keeps no block of the input's size beyond its end.
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    c = 250000
    rng = np.random.default_rng(5)
    inits = [numpy_helper.from_array(rng.uniform(-1, 1, (c, 1, 1, 1)).astype(np.float32), "w")]
    for name, lo, hi in (("scale", 0.5, 1.5), ("bias", -1, 1), ("mean", -1, 1), ("var", 0.5, 2)):
        inits.append(numpy_helper.from_array(rng.uniform(lo, hi, c).astype(np.float32), name))
    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv"),
         helper.make_node("BatchNormalization", ["y", "scale", "bias", "mean", "var"], ["z"], name="bn")],
        "shrink", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 1, 1])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, c, 1, 1])], inits)
    d = fresh(tmp, "shrink")
    model = os.path.join(d, "model.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 15)]), model)
    out = os.path.join(d, "out.onnx")
    r = bnftest.run(BNFOLD, [model, "-o", out])
    st_in, st_out = os.stat(model), (os.stat(out) if os.path.exists(out) else None)
    tap.check(r.rc == 0 and st_out is not None and st_out.st_size < st_in.st_size // 2
              and st_out.st_blocks * 512 < st_out.st_size + (64 << 10),
              "an output much smaller than its input keeps no reserved block past its end",
              r.diag() + (f"; in {st_in.st_size} bytes, out {st_out.st_size} bytes in {st_out.st_blocks * 512}"
                          if st_out else "; no output"))

    # --- --no-sync (and --no-fsync, its older name) over an existing file,
    # which is synced by default: the failing fsync is never called
    for flag in ("--no-sync", "--no-fsync"):
        d = fresh(tmp, "nofsync" + flag)
        out = os.path.join(d, "out.onnx")
        with open(out, "wb") as f:
            f.write(OLD)
        r = bnftest.run(BNFOLD, [flag, DEMO, "-o", out], env=faulted(match=d, fsync="EIO"))
        tap.check(r.rc == 0 and not r.crashed() and sha(out) == ref_sha and bnftest.debris(d) == [],
                  f"{flag} over a file with fsync failing: not called, the same output as a clean run", r.diag())

    # --- a new file is not synced by default; --sync syncs it
    d = fresh(tmp, "newnosync")
    out = os.path.join(d, "out.onnx")
    r = bnftest.run(BNFOLD, [DEMO, "-o", out], env=faulted(match=d, fsync="EIO"))
    tap.check(r.rc == 0 and not r.crashed() and sha(out) == ref_sha and bnftest.debris(d) == [],
              "a new file with fsync failing: not synced by default, written", r.diag())
    d = fresh(tmp, "newsync")
    out = os.path.join(d, "out.onnx")
    r = bnftest.run(BNFOLD, ["--sync", DEMO, "-o", out], env=faulted(match=d, fsync="EIO"))
    tap.check(r.rc == 1 and not r.crashed() and os.listdir(d) == []
              and re.fullmatch(rf"bnfold: error: {re.escape(out)}: cannot write: Input/output error\n", r.err),
              "--sync on a new file with fsync failing: one error line, nothing left", r.diag())

    # --- --in-place: a failed write leaves the input as it was
    d = fresh(tmp, "inplace")
    model = os.path.join(d, "model.onnx")
    shutil.copy(DEMO, model)
    before = sha(model)
    r = bnftest.run(BNFOLD, ["--in-place", model], env=faulted(match=".bnfold-", write_after=500, errno="EIO"))
    tap.check(r.rc == 1 and not r.crashed() and "model.onnx: cannot write: Input/output error" in r.err,
              "--in-place with EIO: error naming the file", r.diag())
    tap.check(sha(model) == before and os.listdir(d) == ["model.onnx"], "--in-place with EIO: the input is unchanged",
              f"folder: {os.listdir(d)}")

    # --- output through a symlink: link and target both survive a failure
    d = fresh(tmp, "symlink")
    target = os.path.join(d, "target.onnx")
    link = os.path.join(d, "link.onnx")
    with open(target, "wb") as f:
        f.write(OLD)
    os.symlink(target, link)
    r = bnftest.run(BNFOLD, [DEMO, "-o", link], env=faulted(match=".bnfold-", write_after=100))
    tap.check(r.rc == 1 and not r.crashed() and os.path.islink(link) and open(target, "rb").read() == OLD
              and bnftest.debris(d) == [], "ENOSPC through a symlink: link and target intact", r.diag())

    # --- the report: its own error line, no debris
    d = fresh(tmp, "report")
    out = os.path.join(d, "out.onnx")
    rep = os.path.join(d, "fold-report.json")
    with open(rep, "wb") as f:
        f.write(OLD)
    r = bnftest.run(BNFOLD, [DEMO, "-o", out, "--report", rep], env=faulted(match="fold-report", write_after=10))
    tap.check(r.rc == 1 and not r.crashed() and re.search(rf"^bnfold: error: {re.escape(rep)}: cannot write: No space", r.err, re.M)
              and open(rep, "rb").read() == OLD and bnftest.debris(d) == [],
              "ENOSPC writing the report: error naming it, earlier report intact", r.diag())

    # --- stdout: the error names it
    d = fresh(tmp, "stdout")
    with open(os.path.join(d, "stdout.bin"), "wb") as so:
        p = subprocess.run(bnftest.WRAPPER + [BNFOLD, DEMO, "-o", "-"], stdout=so, stderr=subprocess.PIPE, timeout=120,
                           env=dict(os.environ, **faulted(match="stdout.bin", write_after=100)))
    err = p.stderr.decode(errors="replace")
    tap.check(p.returncode == 1 and re.search(r"^bnfold: error: \(stdout\): cannot write: No space left on device$", err, re.M),
              "ENOSPC on stdout: error naming (stdout)", f"exit {p.returncode}, stderr: {err}")

    # --- signals while the temp file is being written
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        name = signal.Signals(sig).name
        d = fresh(tmp, name)
        out = os.path.join(d, "out.onnx")
        ready = os.path.join(tmp, f"{name}.ready")
        with open(out, "wb") as f:
            f.write(OLD)
        env = dict(os.environ, **faulted(match=".bnfold-", delay_ms=30000, ready=ready))
        p, in_write = start_held([DEMO, "-o", out], env, ready)
        temp_seen = bnftest.debris(d)
        p.send_signal(sig)
        err = finish(p)
        tap.check(in_write and temp_seen and p.returncode == -sig,
                  f"{name} during the write of the temp file ends bnfold by that signal",
                  f"write reached: {in_write}, temp file seen: {temp_seen}, exit {p.returncode}, stderr: {err}")
        tap.check(os.listdir(d) == ["out.onnx"] and open(out, "rb").read() == OLD,
                  f"{name}: the temp file is removed and the earlier output intact", f"folder: {os.listdir(d)}")

    # --- the input shrinks while it is read.  Weights that fold are read
    # through mappings, where a page past the new end raises SIGBUS; the
    # others are copied in the kernel, which then comes up short.  A Conv
    # weight of 4.7 MB fills the 1 MiB output buffer, so writes (each slowed
    # down here) come between reads of it; an unchanged tensor ahead of it
    # is copied right after the first write.  The input is cut to zero at
    # the first write.  The second case runs with --no-verify: otherwise
    # the check of the Conv, reading its weight through a mapping on another
    # thread meanwhile, may meet the cut first.
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper
    rng = np.random.default_rng(5)
    for case, ahead, msg in (
            ("a folding weight is read through a mapping", False, "a file it reads from shrank while being read"),
            ("an unchanged tensor is copied in the kernel", True, "cannot read: Input/output error")):
        d = fresh(tmp, "shrink%d" % ahead)
        model = os.path.join(d, "big.onnx")
        out = os.path.join(d, "out.onnx")
        inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n) for n, s in
                 (("k", (1, 512, 4, 4)), ("w", (512, 256, 3, 3)), ("g", (512,)), ("b", (512,)), ("m", (512,)))]
        inits.append(numpy_helper.from_array(rng.uniform(0.5, 2, 512).astype(np.float32), "v"))
        nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                 helper.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["y" if ahead else "z"])]
        if ahead:
            nodes.append(helper.make_node("Add", ["y", "k"], ["z"]))
        else:
            inits = inits[1:]
        graph = helper.make_graph(
            nodes, "shrink", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 256, 4, 4])],
            [helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, [1, 512, 4, 4])], inits)
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), model)
        with open(out, "wb") as f:
            f.write(OLD)
        ready = os.path.join(tmp, "shrink%d.ready" % ahead)
        env = dict(os.environ, **faulted(match=".bnfold-", delay_ms=300, ready=ready))
        p, in_write = start_held([model, "-o", out] + (["--no-verify"] if ahead else []), env, ready, poll=0.01)
        os.truncate(model, 0)
        err = finish(p, timeout=120)
        lines = err.strip().splitlines()
        tap.check(in_write and p.returncode == 1 and len(lines) == 1 and lines[0] == f"bnfold: error: {model}: {msg}",
                  f"the input cut to zero while {case}: one error line naming it, exit 1",
                  f"write reached: {in_write}, exit {p.returncode}, stderr: {err}")
        tap.check(sorted(os.listdir(d)) == ["big.onnx", "out.onnx"] and open(out, "rb").read() == OLD,
                  "... the temp file is removed and the earlier output intact", f"folder: {os.listdir(d)}")

    # --- file modes without umask(): the library reads the umask from
    # /proc/self/status (umask() would set it for every thread); where that
    # is hidden, the kernel applies it to the temp file.  A new file gets
    # 0666 less the umask, an existing one keeps its mode.
    for hidden in (False, True):
        how = "/proc/self/status hidden" if hidden else "umask read from /proc"
        faults = dict(no_umask=1, match="/proc/self/status", open="ENOENT") if hidden else dict(no_umask=1)
        d = fresh(tmp, "umask%d" % hidden)
        out = os.path.join(d, "new.onnx")
        old_mask = os.umask(0o027)
        try:
            r = bnftest.run(BNFOLD, [DEMO, "-o", out], env=faulted(**faults))
        finally:
            os.umask(old_mask)
        tap.check(r.rc == 0 and not r.crashed() and sha(out) == ref_sha
                  and stat.S_IMODE(os.stat(out).st_mode) == 0o640 and os.listdir(d) == ["new.onnx"],
                  f"{how}: a new file gets 0666 minus umask 027, umask() never called",
                  r.diag() + (f"; mode {oct(stat.S_IMODE(os.stat(out).st_mode))}" if os.path.exists(out) else ""))
        out = os.path.join(d, "old.onnx")
        with open(out, "wb") as f:
            f.write(OLD)
        os.chmod(out, 0o604)
        r = bnftest.run(BNFOLD, [DEMO, "-o", out], env=faulted(**faults))
        tap.check(r.rc == 0 and not r.crashed() and sha(out) == ref_sha and stat.S_IMODE(os.stat(out).st_mode) == 0o604,
                  f"{how}: an existing file keeps its mode 0604", r.diag() + f"; mode {oct(stat.S_IMODE(os.stat(out).st_mode))}")

    # --- a model with external data: its data file goes to OUT.data through
    # its own temp file.  A failure there names OUT.data; a failure on either
    # temp file leaves both earlier files as they were (both are complete,
    # fsync'd and closed before either is renamed).
    ext = os.path.join(tmp, "ext")
    os.mkdir(ext)
    ext_model = os.path.join(ext, "ext.onnx")
    m = onnx.load(DEMO)
    onnx.save(m, ext_model, save_as_external_data=True, all_tensors_to_one_file=True, location="ext.onnx.bin",
              size_threshold=0)
    for desc, faults, named, msg in (
            ("ENOSPC on the data file", dict(match="onnx.data.bnfold-", write_after=100), "out.onnx.data",
             "cannot write: No space left on device"),
            ("EIO on fsync of the data file", dict(match="onnx.data.bnfold-", fsync="EIO"), "out.onnx.data",
             "cannot write: Input/output error"),
            ("ENOSPC on the model", dict(match="out.onnx.bnfold-", write_after=10), "out.onnx",
             "cannot write: No space left on device"),
            ("EIO on fsync of the model", dict(match="out.onnx.bnfold-", fsync="EIO"), "out.onnx",
             "cannot write: Input/output error"),
            ("close of the model fails", dict(match="out.onnx.bnfold-", close="EIO"), "out.onnx",
             "cannot write: Input/output error")):
        n += 1
        d = fresh(tmp, f"ext{n}")
        out = os.path.join(d, "out.onnx")
        for f_ in (out, out + ".data"):
            with open(f_, "wb") as f:
                f.write(OLD)
        r = bnftest.run(BNFOLD, [ext_model, "-o", out], env=faulted(**faults))
        lines = r.err.strip().splitlines()
        tap.check(not r.crashed() and r.rc == 1 and len(lines) == 1
                  and lines[0] == f"bnfold: error: {os.path.join(d, named)}: {msg}",
                  f"external data, {desc}: one error line naming {named}", r.diag())
        tap.check(open(out, "rb").read() == OLD and open(out + ".data", "rb").read() == OLD
                  and sorted(os.listdir(d)) == ["out.onnx", "out.onnx.data"],
                  f"external data, {desc}: the earlier model and data file are intact, nothing else is left",
                  f"folder: {os.listdir(d)}")

    # A signal while the data file is written (the model's temp file exists
    # too): both temp files are removed.
    d = fresh(tmp, "extsig")
    out = os.path.join(d, "out.onnx")
    ready = os.path.join(tmp, "extsig.ready")
    env = dict(os.environ, **faulted(match="onnx.data.bnfold-", delay_ms=30000, ready=ready))
    p, _ = start_held([ext_model, "-o", out], env, ready)
    temp_seen = bnftest.debris(d)
    p.send_signal(signal.SIGTERM)
    err = finish(p)
    tap.check(len(temp_seen) == 2 and p.returncode == -signal.SIGTERM and os.listdir(d) == [],
              "external data, SIGTERM while the data file is written: both temp files removed",
              f"temp files seen: {temp_seen}, exit {p.returncode}, folder: {os.listdir(d)}, stderr: {err}")

    # --- a FIFO output is written into, and a signal leaves it a FIFO
    d = fresh(tmp, "fifo")
    fifo = os.path.join(d, "out.fifo")
    os.mkfifo(fifo)
    ready = os.path.join(tmp, "fifo.ready")
    reader = subprocess.Popen(["cat", fifo], stdout=subprocess.DEVNULL)
    env = dict(os.environ, **faulted(match="out.fifo", delay_ms=30000, ready=ready))
    p, _ = start_held([DEMO, "-o", fifo], env, ready)
    p.send_signal(signal.SIGTERM)
    finish(p)
    reader.wait(timeout=60)
    tap.check(p.returncode == -signal.SIGTERM and os.listdir(d) == ["out.fifo"]
              and os.path.exists(fifo) and stat.S_ISFIFO(os.stat(fifo).st_mode),
              "SIGTERM while writing into a FIFO: the FIFO stays, nothing else appears",
              f"exit {p.returncode}, folder: {os.listdir(d)}")

    # --- refusals: nothing may be written over the input, nor the report over the model
    d = fresh(tmp, "refuse")
    model = os.path.join(d, "model.onnx")
    shutil.copy(DEMO, model)
    before = sha(model)
    link = os.path.join(d, "alias.json")
    os.symlink(model, link)
    for desc, argv, code, msg in (
            ("--report naming the input", [model, "-o", os.path.join(d, "o.onnx"), "--report", model], 1,
             r"model\.onnx: refusing to write the report over the input"),
            ("--report through a symlink to the input", [model, "-o", os.path.join(d, "o.onnx"), "--report", link], 1,
             r"alias\.json: refusing to write the report over the input"),
            ("--report naming the input with --in-place", ["--in-place", model, "--report", model], 1,
             r"refusing to write the report over the input"),
            ("--report naming the output", [model, "-o", os.path.join(d, "o.onnx"), "--report", os.path.join(d, "o.onnx")], 2,
             r"the model and the report cannot go to the same file")):
        r = bnftest.run(BNFOLD, argv)
        tap.check(r.rc == code and not r.crashed() and re.search(msg, r.err) and sha(model) == before
                  and sorted(os.listdir(d)) == ["alias.json", "model.onnx"], f"{desc}: refused, nothing written",
                  r.diag() + f"; folder: {os.listdir(d)}")

    # --- missing or read-only output folder, for real
    r = bnftest.run(BNFOLD, [DEMO, "-o", os.path.join(tmp, "missing", "out.onnx")])
    tap.check(r.rc == 1 and re.search(r"out\.onnx: cannot create a file in '.*/missing': No such file or directory", r.err),
              "a missing output folder: error naming it", r.diag())
    d = fresh(tmp, "readonly")
    os.chmod(d, 0o555)
    if os.geteuid() == 0:
        tap.skip("a read-only output folder, for real",
                 "running as root, which may write into it; the EROFS/EACCES cases above stand in for it")
    else:
        r = bnftest.run(BNFOLD, [DEMO, "-o", os.path.join(d, "out.onnx")])
        tap.check(r.rc == 1 and "Permission denied" in r.err and os.listdir(d) == [],
                  "a read-only output folder: error, nothing written", r.diag())
    os.chmod(d, 0o755)
finally:
    shutil.rmtree(tmp, ignore_errors=True)

sys.exit(tap.emit())
