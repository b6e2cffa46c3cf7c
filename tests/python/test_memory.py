"""Memory of fold() and fold_file() on a generated model of about 100 MB
(tools/gen_big.py; measure_memory.py in a child interpreter, whose numbers
docs/python.md shows): fold_file's peak does not grow with the model,
fold(bytes)'s stays within the bound docs/python.md states, and Python's
own allocations during fold(bytes) are the output's bytes alone."""
import json
import os
import subprocess
import sys

import pytest

MIB = 2**20


@pytest.fixture(scope="module")
def model(paths, tmp_path_factory):
    out = tmp_path_factory.mktemp("mem") / "model.onnx"
    subprocess.run([sys.executable, os.path.join(paths.source_root, "tools", "gen_big.py"), str(out),
                    "--width-scale", "1.0"], check=True, timeout=300)
    return out


def measure(paths, model, mode, tmp_path):
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "measure_memory.py")
    p = subprocess.run([sys.executable, script, str(model), mode, str(tmp_path / "out.onnx")], env=paths.env(),
                       capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr.decode()
    return json.loads(p.stdout)


def test_fold_file_memory_does_not_grow_with_the_model(paths, model, tmp_path):
    size = os.path.getsize(model) / MIB
    m = measure(paths, model, "file", tmp_path)
    assert size > 90 and m["folded"] == 53
    assert m["peak_over_before_mib"] < 32, m
    assert m["tracemalloc_peak_mib"] < 1, m


def test_fold_bytes_memory(paths, model, tmp_path):
    """The peak above the input is the output, which the library writes
    straight into the bytes object returned, and the library's working set:
    under the output + 16 MiB; tracemalloc sees only the output's bytes."""
    m = measure(paths, model, "bytes", tmp_path)
    assert m["peak_over_before_mib"] < m["out_mib"] + 16, m
    assert m["out_mib"] <= m["tracemalloc_peak_mib"] < m["out_mib"] + 1, m
