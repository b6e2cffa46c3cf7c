"""The Python examples of README.md and docs/python.md run as written, on
testdata/demo.onnx as model.onnx, and leave a folded model.folded.onnx that
onnx.checker accepts."""
import os
import re
import shutil
import subprocess
import sys

import onnx
PAGES = ["README.md", os.path.join("docs", "python.md")]


def python_blocks(root):
    for page in PAGES:
        with open(os.path.join(root, page), encoding="utf-8") as f:
            text = f.read()
        for m in re.finditer(r"^```python\n(.*?)^```", text, re.M | re.S):
            yield "%s:%d" % (page, text[:m.start()].count("\n") + 1), m.group(1)


def test_there_are_examples(paths):
    """One in the README (fold, check the report, save) and one in docs/python.md."""
    pages = [where.split(":")[0] for where, _ in python_blocks(paths.source_root)]
    assert pages == PAGES


def test_examples_run(paths, tmp_path):
    for where, code in python_blocks(paths.source_root):
        d = tmp_path / where.replace("/", "_").replace(":", "_")
        d.mkdir()
        shutil.copy(paths.fixture("demo.onnx"), d / "model.onnx")
        prelude = "" if "import bnfold" in code else "import bnfold, onnx\n"
        p = subprocess.run([sys.executable, "-c", prelude + code], cwd=d, env=paths.env(), capture_output=True,
                           timeout=120)
        assert p.returncode == 0, "%s: %s" % (where, p.stderr.decode())
        onnx.checker.check_model(str(d / "model.folded.onnx"), full_check=True)
        folded = onnx.load(str(d / "model.folded.onnx"))
        assert not any(n.op_type == "BatchNormalization" for n in folded.graph.node), where
