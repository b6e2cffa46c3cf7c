"""`python3 -m bnfold` is the bnfold program: the same output, files and
exit status for the same arguments."""
import os
import shutil
import subprocess
import sys

import bnfold


def run_module(paths, argv, cwd=None):
    return subprocess.run([sys.executable, "-m", "bnfold"] + argv, capture_output=True, env=paths.env(),
                          cwd=cwd, timeout=120)


def test_version(paths):
    p = run_module(paths, ["--version"])
    q = paths.cli(["--version"])
    assert p.returncode == 0 and p.stdout == q.stdout == ("bnfold %s\n" % bnfold.__version__).encode()
    assert p.stderr == b""


def test_program_is_in_the_package(paths):
    assert bnfold.program() == os.path.join(os.path.dirname(bnfold.__file__), "bin", "bnfold")
    assert os.access(bnfold.program(), os.X_OK)


def test_a_fold(paths, tmp_path):
    src = paths.fixture("demo.onnx")
    for d in ("m", "c"):
        os.mkdir(tmp_path / d)
    p = run_module(paths, [src, "-o", "out.onnx", "--report", "r.json"], cwd=tmp_path / "m")
    q = paths.cli([src, "-o", "out.onnx", "--report", "r.json"], cwd=tmp_path / "c")
    assert p.returncode == q.returncode == 0
    assert p.stderr == q.stderr and b"folded 3 of 3 BatchNormalization" in p.stderr
    for f in ("out.onnx", "r.json"):
        assert (tmp_path / "m" / f).read_bytes() == (tmp_path / "c" / f).read_bytes()
    assert (tmp_path / "m" / "out.onnx").read_bytes() == bnfold.fold(open(src, "rb").read())[0]


def test_exit_statuses(paths, tmp_path):
    """Usage error 2, --check with a foldable model 3, a missing input 1,
    a failed check 4: as the program, with its messages."""
    demo = paths.fixture("demo.onnx")
    for argv, code in [(["--frobnicate", demo], 2), (["--check", demo], 3),
                       ([str(tmp_path / "missing.onnx"), "-o", str(tmp_path / "x.onnx")], 1),
                       ([demo, "-o", str(tmp_path / "y.onnx"), "--tolerance", "1e-30"], 4),
                       (["--check", paths.fixture("nothing_to_fold.onnx")], 0)]:
        p = run_module(paths, argv)
        q = paths.cli(argv)
        assert (p.returncode, p.stdout, p.stderr) == (q.returncode, q.stdout, q.stderr) and p.returncode == code
    assert os.listdir(tmp_path) == []


def test_program_missing_or_not_runnable(paths, tmp_path):
    """When the package's program cannot be run: one error line naming it,
    and the status a shell gives, 127 (missing) or 126 (not runnable), never
    1, the program's own status for an I/O error."""
    stage = tmp_path / "stage"
    shutil.copytree(os.path.join(paths.stage, "bnfold"), stage / "bnfold", symlinks=True)
    prog = stage / "bnfold" / "bin" / "bnfold"
    for how, code in (("missing", 127), ("not executable", 126)):
        prog.unlink(missing_ok=True)
        if how == "not executable":
            prog.write_bytes(b"not a program\n")
            prog.chmod(0o644)
        p = subprocess.run([sys.executable, "-m", "bnfold", "--version"], capture_output=True,
                           env=dict(os.environ, PYTHONPATH=str(stage)), timeout=120)
        lines = p.stderr.decode().splitlines()
        assert p.returncode == code and p.stdout == b"", (how, p)
        assert len(lines) == 1 and lines[0].startswith("bnfold: error: cannot run %s: " % prog), (how, lines)
