"""The wheel: `pip wheel --no-build-isolation .` builds it offline with
Debian's meson-python, it holds the package and nothing else, installs
into a temporary target, imports and folds there; and `pip install
--no-build-isolation .` installs the package into a virtual environment
(with the system's site packages, where Debian's meson-python is).  Runs
pip on a copy of the source tree (meson-python writes into the tree it
builds).  Marked `wheel`: meson runs it as its own test, python_wheel."""
import os
import shutil
import subprocess
import textwrap
import zipfile

import pytest

import bnfold

pytestmark = pytest.mark.wheel

PY = "/usr/bin/python3"  # the interpreter Debian's meson-python belongs to


@pytest.fixture(scope="module")
def source(paths, tmp_path_factory):
    """A copy of the source tree without builds and caches."""
    dst = tmp_path_factory.mktemp("src") / "bnfold"
    root = os.path.abspath(paths.source_root)
    skip = shutil.ignore_patterns(".git", "node_modules", "__pycache__", ".mesonpy*", "*.whl")

    def ignore(folder, names):
        # The build folders at the top (build/, build-asan/...), not tools/build.
        top = {n for n in names if n == "build" or n.startswith("build-")} if folder == root else set()
        return top | skip(folder, names)
    shutil.copytree(root, dst, symlinks=True, ignore=ignore)
    return dst


def pip(args, cwd, python=PY):
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("PYTHONPATH", None)
    p = subprocess.run([python, "-m", "pip"] + args, cwd=cwd, capture_output=True, env=env, timeout=900)
    assert p.returncode == 0, (p.stdout + p.stderr).decode(errors="replace")[-4000:]
    return p


@pytest.fixture(scope="module")
def wheel(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    pip(["wheel", "--no-build-isolation", "-w", str(out), "."], cwd=source)
    wheels = os.listdir(out)
    assert len(wheels) == 1
    return out / wheels[0]


def test_the_wheel_holds_the_package(wheel):
    """cp311-abi3 (the limited API), the package's files, the program,
    the console script, and nothing of the C install (no library, header,
    man page)."""
    base = "bnfold-%s" % bnfold.__version__
    assert wheel.name.startswith(base + "-cp311-abi3-linux_") and wheel.name.endswith(".whl")
    with zipfile.ZipFile(wheel) as z:
        names = sorted(n for n in z.namelist() if not n.startswith(base + ".dist-info/"))
        entry_points = z.read(base + ".dist-info/entry_points.txt").decode()
        mode = z.getinfo("bnfold/bin/bnfold").external_attr >> 16
    assert names == ["bnfold/__init__.py", "bnfold/__main__.py", "bnfold/_bnfold.abi3.so", "bnfold/_bnfold.pyi",
                     "bnfold/bin/bnfold", "bnfold/py.typed"]
    assert "[console_scripts]\nbnfold = bnfold.__main__:main" in entry_points
    assert mode & 0o111


def test_installs_into_a_target_and_folds(paths, wheel, tmp_path):
    target = tmp_path / "target"
    pip(["install", "--no-deps", "--target", str(target), str(wheel)], cwd=tmp_path)
    env = dict(os.environ, PYTHONPATH=str(target))
    code = textwrap.dedent("""
        import sys, bnfold
        assert bnfold.__file__.startswith(sys.argv[1]), bnfold.__file__
        out, report = bnfold.fold(open(sys.argv[2], "rb").read())
        sys.stdout.buffer.write(out)
    """)
    p = subprocess.run([PY, "-c", code, str(target), paths.fixture("demo.onnx")], capture_output=True, env=env,
                       cwd=tmp_path, timeout=120)
    assert p.returncode == 0, p.stderr.decode()
    q = paths.cli([paths.fixture("demo.onnx"), "-o", "-"])
    assert p.stdout == q.stdout and len(p.stdout) > 0
    so = target / "bnfold" / "_bnfold.abi3.so"
    dyn = subprocess.run(["readelf", "-d", "--dyn-syms", "-W", str(so)], capture_output=True, text=True).stdout
    assert "libbnfold" not in dyn and "RPATH" not in dyn and "RUNPATH" not in dyn
    exported = [l.split()[-1] for l in dyn.splitlines() if " GLOBAL " in l and " UND " not in l]
    assert exported == ["PyInit__bnfold"]
    for cmd in ([PY, "-m", "bnfold", "--version"], [str(target / "bin" / "bnfold"), "--version"]):
        p = subprocess.run(cmd, capture_output=True, env=env, cwd=tmp_path, timeout=60)
        assert (p.returncode, p.stdout) == (0, ("bnfold %s\n" % bnfold.__version__).encode()), cmd


def test_pip_install_into_a_venv(paths, source, tmp_path):
    """The documented install: a venv that sees the system's packages, then
    `pip install --no-build-isolation .` from the source tree, offline."""
    venv = tmp_path / "venv"
    subprocess.run([PY, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    pip(["install", "--no-build-isolation", "."], cwd=source, python=python)
    p = subprocess.run([str(venv / "bin" / "bnfold"), "--check", paths.fixture("demo.onnx")], capture_output=True,
                       timeout=60)
    assert p.returncode == 3 and b"foldable 3 of 3" in p.stderr
    p = subprocess.run([python, "-c", "import bnfold, onnx; print(bnfold.check(onnx.load(%r)).folded)"
                        % paths.fixture("demo.onnx")], capture_output=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 0 and p.stdout == b"3\n", p.stderr.decode()
