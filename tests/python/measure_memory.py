#!/usr/bin/python3
"""Memory and time of one bnfold call from Python, in this process:

    PYTHONPATH=... measure_memory.py MODEL.onnx bytes|proto|file [OUT.onnx]

Prints one JSON object: the model's size, the resident memory before the
call (the interpreter, bnfold, and the input: bytes, or for `proto` the
loaded onnx.ModelProto), the peak resident memory during the call (VmHWM,
reset just before it through /proc/self/clear_refs), the peak of Python's
own allocations during the call (tracemalloc: the bytes objects, not the
library's memory), and the call's wall time.  `file` folds MODEL to OUT
with fold_file (nothing is read beforehand).  Used by test_memory.py;
docs/python.md shows its numbers on a 100 MB model."""
import json
import sys
import time
import tracemalloc

import bnfold


def status_mib(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    raise KeyError(key)


def main():
    model, mode = sys.argv[1], sys.argv[2]
    if mode == "bytes":
        given = open(model, "rb").read()
        size = len(given)
    elif mode == "proto":
        import onnx
        given = onnx.load(model)
        size = given.ByteSize()
    else:
        given = None
        size = None
    before = status_mib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS
    tracemalloc.start()
    t = time.perf_counter()
    if mode == "file":
        report = bnfold.fold_file(model, sys.argv[3])
        out = None
    else:
        out, report = bnfold.fold(given)
    seconds = time.perf_counter() - t
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak = status_mib("VmHWM")
    print(json.dumps({"mode": mode, "size_mib": None if size is None else size / 2**20, "rss_before_mib": before,
                      "peak_mib": peak, "peak_over_before_mib": peak - before, "tracemalloc_peak_mib": traced / 2**20,
                      "seconds": seconds, "folded": report.folded,
                      "out_mib": None if out is None else len(out.SerializeToString() if mode == "proto" else out)
                      / 2**20}))


if __name__ == "__main__":
    main()
