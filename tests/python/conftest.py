"""Fixtures of the Python module's tests, and the package under test.

The package is put together from the build, as a wheel lays it out:
bnfold/ with the Python files of src/python/bnfold/, the extension module
_bnfold.abi3.so and bin/bnfold (the program), in a temp folder that goes
first on sys.path.  (tests/python/test_wheel.py checks the real wheel.)

Options (defaults: the build/ folder of the source tree):
  --bnfold PATH     the bnfold program of the build
  --ext PATH        the extension module of the build (_bnfold.abi3.so)
  --testdata DIR    testdata/
  --source-root DIR the source tree (for the wheel test)
"""
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYTHON = "/usr/bin/python3"


def pytest_addoption(parser):
    g = parser.getgroup("bnfold")
    g.addoption("--bnfold", default=os.path.join(ROOT, "build", "bnfold"))
    g.addoption("--ext", default=os.path.join(ROOT, "build", "src", "python", "_bnfold.abi3.so"))
    g.addoption("--testdata", default=os.path.join(ROOT, "testdata"))
    g.addoption("--source-root", default=ROOT)


def _stage(config):
    """The package as a wheel holds it, from the source tree and the build."""
    stage = tempfile.mkdtemp(prefix="bnfold-py-")
    pkg = os.path.join(stage, "bnfold")
    src = os.path.join(config.getoption("--source-root"), "src", "python", "bnfold")
    shutil.copytree(src, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    os.symlink(os.path.abspath(config.getoption("--ext")), os.path.join(pkg, "_bnfold.abi3.so"))
    os.mkdir(os.path.join(pkg, "bin"))
    os.symlink(os.path.abspath(config.getoption("--bnfold")), os.path.join(pkg, "bin", "bnfold"))
    return stage


def pytest_configure(config):
    for opt in ("--bnfold", "--ext"):
        if not os.path.isfile(config.getoption(opt)):
            raise pytest.UsageError("%s %s: no such file; build first (tools/build)" % (opt, config.getoption(opt)))
    config.bnfold_stage = _stage(config)
    sys.path.insert(0, config.bnfold_stage)


def pytest_unconfigure(config):
    stage = getattr(config, "bnfold_stage", None)
    if stage:
        sys.path.remove(stage)
        shutil.rmtree(stage, ignore_errors=True)


class Paths:
    def __init__(self, config):
        self.bnfold = os.path.abspath(config.getoption("--bnfold"))
        self.testdata = os.path.abspath(config.getoption("--testdata"))
        self.source_root = os.path.abspath(config.getoption("--source-root"))
        self.stage = config.bnfold_stage

    def fixture(self, name):
        return os.path.join(self.testdata, name)

    def fixtures(self):
        return sorted(f for f in os.listdir(self.testdata) if f.endswith(".onnx"))

    def env(self):
        """The environment of a child Python that imports the staged package."""
        return dict(os.environ, PYTHONPATH=self.stage)

    def cli(self, argv, **kw):
        """Run the build's bnfold program."""
        return subprocess.run([self.bnfold] + list(argv), capture_output=True, timeout=300, **kw)


@pytest.fixture(scope="session")
def paths(request):
    return Paths(request.config)


def pytest_generate_tests(metafunc):
    # One case per model of testdata/ for a test that takes `fixture_name`.
    if "fixture_name" in metafunc.fixturenames:
        td = metafunc.config.getoption("--testdata")
        names = sorted(f for f in os.listdir(td) if f.endswith(".onnx"))
        metafunc.parametrize("fixture_name", names)
