"""No call leaves anything behind: Python's own allocations do not grow over
thousands of calls of every kind (each returns rows, a report, maybe an
output), and a fold whose check fails after its output was made drops that
output."""
import os
import subprocess
import gc
import sys
import tracemalloc

import bnfold


def growth(calls, repeat):
    """Bytes Python holds after `repeat` more rounds of calls than after
    the first rounds (caches, interned names and the like settle then),
    garbage collected first (an exception and its traceback form a cycle)."""
    for _ in range(50):
        calls()
    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(repeat):
            calls()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_calls_leak_nothing(paths, tmp_path):
    """A leaked string per fusion row was 1.5 MB over 2,000 calls of demo.onnx."""
    demo = paths.fixture("demo.onnx")
    data = open(demo, "rb").read()
    mixed = open(paths.fixture("conv_bn_mixed.onnx"), "rb").read()
    out = str(tmp_path / "out.onnx")

    def calls():
        bnfold.list(data)
        bnfold.list(mixed)
        bnfold.check(data)
        bnfold.fold(data)
        bnfold.fold_file(demo, out)
        try:
            bnfold.fold(data, tolerance=1e-30)
        except bnfold.VerifyError:
            pass
        try:
            bnfold.fold(b"not a model")
        except bnfold.NotONNXError:
            pass

    grew = growth(calls, 1000)
    assert grew < 64 * 1024, "Python's allocations grew by %d bytes over 1,000 rounds" % grew


def test_a_failed_check_drops_the_output_made_for_it(paths, tmp_path):
    """An 8 MB model whose checks run while the folded model is written into
    the bytes object made for it: with a tolerance nothing meets, the check
    fails after that object was made (the peak shows it), and it is gone
    after the exception, every time."""
    model = tmp_path / "m.onnx"
    subprocess.run([sys.executable, os.path.join(paths.source_root, "tools", "gen_big.py"), str(model),
                    "--width-scale", "0.25"], check=True, timeout=300)
    data = model.read_bytes()
    tracemalloc.start()
    try:
        for _ in range(5):
            base = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            try:
                bnfold.fold(data, tolerance=1e-30)
                raise AssertionError("the check did not fail")
            except bnfold.VerifyError:
                pass
            gc.collect()
            current, peak = tracemalloc.get_traced_memory()
            assert peak - base > len(data) // 2, "no output was made before the check failed (%d)" % (peak - base)
            assert current - base < 64 * 1024, "the output made was kept: %d bytes" % (current - base)
    finally:
        tracemalloc.stop()
