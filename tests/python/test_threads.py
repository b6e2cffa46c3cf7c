"""The GIL is released while the library runs, and two threads fold at once."""
import os
import subprocess
import sys
import threading

import pytest

import bnfold


@pytest.fixture(scope="module")
def big(paths, tmp_path_factory):
    """A ResNet-50-shaped model of about 6 MB (tools/gen_big.py)."""
    out = tmp_path_factory.mktemp("big") / "big.onnx"
    subprocess.run([sys.executable, os.path.join(paths.source_root, "tools", "gen_big.py"), str(out),
                    "--width-scale", "0.25"], check=True, timeout=300)
    return out.read_bytes()


def progress_during(call):
    """(counts before, counts after, result of call()): a second thread
    counts while call() runs in this one, with a switch interval of 1 s, so
    that this thread never hands the GIL over on its own while it runs
    Python: the count moves only if call() releases the GIL."""
    state = {"n": 0, "stop": False}

    def count():
        while not state["stop"]:
            state["n"] += 1

    old = sys.getswitchinterval()
    sys.setswitchinterval(1.0)
    t = threading.Thread(target=count)
    try:
        t.start()
        before = state["n"]
        result = call()
        after = state["n"]
    finally:
        state["stop"] = True
        sys.setswitchinterval(old)
        t.join()
    return before, after, result


def test_another_thread_runs_during_a_fold(big):
    """The counting thread makes progress while fold() runs: the GIL is
    released in the library."""
    before, after, (out, report) = progress_during(lambda: bnfold.fold(big))
    assert report.folded == 53
    assert after > before


def test_the_gil_test_can_fail():
    """The same measurement around a call that keeps the GIL (a long
    bytes.count in C) sees no progress: the check above can fail."""
    data = bytes(64 * 2**20)
    before, after, _ = progress_during(lambda: data.count(b"\x01"))
    assert after == before


def test_two_threads_fold_at_once(paths, big):
    """Two threads fold two models over and over at the same time; every
    result is the one a lone call gives."""
    small = open(paths.fixture("conv_bn_mixed.onnx"), "rb").read()
    want = {"big": bnfold.fold(big), "small": bnfold.fold(small)}
    models = {"big": big, "small": small}
    errors, counts = [], {"big": 0, "small": 0}
    barrier = threading.Barrier(2)

    def work(key, rounds):
        try:
            barrier.wait()
            for _ in range(rounds):
                out, report = bnfold.fold(models[key], threads=1)
                assert out == want[key][0]
                assert report.to_dict() == want[key][1].to_dict()
                counts[key] += 1
        except Exception as e:  # reported below, in the main thread
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=("big", 20)), threading.Thread(target=work, args=("small", 300))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert counts == {"big": 20, "small": 300}
