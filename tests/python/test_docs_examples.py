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


def run_example(paths, tmp_path, where, code, fixture):
    d = tmp_path / (where.replace("/", "_").replace(":", "_") + "_" + fixture)
    d.mkdir()
    shutil.copy(paths.fixture(fixture), d / "model.onnx")
    p = subprocess.run([sys.executable, "-c", code], cwd=d, env=paths.env(), capture_output=True, timeout=120)
    return d, p


def test_examples_run(paths, tmp_path):
    """As written (imports included), on a model where every BN folds: a
    folded model.folded.onnx that onnx.checker accepts, without a BN."""
    for where, code in python_blocks(paths.source_root):
        d, p = run_example(paths, tmp_path, where, code, "demo.onnx")
        assert p.returncode == 0, "%s: %s" % (where, p.stderr.decode())
        onnx.checker.check_model(str(d / "model.folded.onnx"), full_check=True)
        folded = onnx.load(str(d / "model.folded.onnx"))
        assert not any(n.op_type == "BatchNormalization" for n in folded.graph.node), where


def test_examples_on_a_model_with_skips(paths, tmp_path):
    """On conv_bn_mixed.onnx (one BN folds, two are skipped): the README's
    check stops the script, naming each skipped BN with its reason; the
    example of docs/python.md prints them and saves the model."""
    skips = {"bn2": "bn_before_conv_with_padding", "bn3": "layer_output_is_graph_output"}
    for where, code in python_blocks(paths.source_root):
        d, p = run_example(paths, tmp_path, where, code, "conv_bn_mixed.onnx")
        text = (p.stdout + p.stderr).decode()
        assert all("'%s': '%s'" % kv in text for kv in skips.items()), "%s: %s" % (where, text)
        if where.startswith("README.md"):
            assert p.returncode != 0 and "AssertionError" in text and not (d / "model.folded.onnx").exists(), where
        else:
            assert p.returncode == 0 and (d / "model.folded.onnx").exists(), "%s: %s" % (where, text)
