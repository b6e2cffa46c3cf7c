"""bnfold.fold_file: paths, external data, in place, and what is left on disk,
against the bnfold program's files."""
import os

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import bnfold


def external_model(paths, folder, name="ext.onnx"):
    """demo.onnx with every weight in NAME.data (onnx's own writer)."""
    os.makedirs(folder, exist_ok=True)
    model = onnx.load(paths.fixture("demo.onnx"))
    path = os.path.join(folder, name)
    onnx.save(model, path, save_as_external_data=True, location=name + ".data", size_threshold=0)
    return path


def files(folder):
    return {f: open(os.path.join(folder, f), "rb").read() for f in sorted(os.listdir(folder))}


def test_external_data_as_the_program_writes_it(paths, tmp_path):
    """The output and its OUTPUT.data are the program's, byte for byte; the
    input's files are untouched; onnx.checker accepts the output with its
    data, and the folded weights load."""
    src = external_model(paths, tmp_path / "in")
    before = files(tmp_path / "in")
    os.mkdir(tmp_path / "py")
    os.mkdir(tmp_path / "cli")
    report = bnfold.fold_file(src, tmp_path / "py" / "out.onnx")
    p = paths.cli([src, "-o", str(tmp_path / "cli" / "out.onnx"), "-q"])
    assert p.returncode == 0
    assert files(tmp_path / "py") == files(tmp_path / "cli")
    assert sorted(files(tmp_path / "py")) == ["out.onnx", "out.onnx.data"]
    assert files(tmp_path / "in") == before
    assert report.folded == 3 and report["input"] == src and report["output"] == str(tmp_path / "py" / "out.onnx")
    onnx.checker.check_model(str(tmp_path / "py" / "out.onnx"), full_check=True)
    folded = onnx.load(str(tmp_path / "py" / "out.onnx"))
    assert not any(n.op_type == "BatchNormalization" for n in folded.graph.node)
    assert all(np.isfinite(numpy_helper.to_array(t)).all() for t in folded.graph.initializer)


def test_inline_and_no_stream(paths, tmp_path):
    src = external_model(paths, tmp_path / "in")
    os.mkdir(tmp_path / "a")
    os.mkdir(tmp_path / "b")
    bnfold.fold_file(src, tmp_path / "a" / "out.onnx", inline=True, stream=False)
    p = paths.cli([src, "-o", str(tmp_path / "b" / "out.onnx"), "--inline", "--no-stream", "-q"])
    assert p.returncode == 0
    assert files(tmp_path / "a") == files(tmp_path / "b") and list(files(tmp_path / "a")) == ["out.onnx"]


def test_same_output_as_fold_bytes(paths, tmp_path):
    data = open(paths.fixture("conv_bn_mixed.onnx"), "rb").read()
    report = bnfold.fold_file(paths.fixture("conv_bn_mixed.onnx"), str(tmp_path / "out.onnx").encode(),
                              sync=True)
    assert open(tmp_path / "out.onnx", "rb").read() == bnfold.fold(data)[0]
    assert report.folded == 1 and report.n_skipped == 2


def test_in_place(paths, tmp_path):
    src = tmp_path / "model.onnx"
    src.write_bytes(open(paths.fixture("demo.onnx"), "rb").read())
    want = bnfold.fold(src.read_bytes())[0]
    with pytest.raises(bnfold.InvalidArgumentError) as e:
        bnfold.fold_file(src, src)
    assert "refusing to overwrite the input" in str(e.value) and e.value.path == str(src)
    report = bnfold.fold_file(src, in_place=True, sync=False)
    assert src.read_bytes() == want and report.folded == 3
    assert os.listdir(tmp_path) == ["model.onnx"]


def test_an_error_leaves_the_output_alone(paths, tmp_path):
    """On an error nothing is written and a file at dst is untouched (no temp files left)."""
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    out = tmp_path / "out.onnx"
    out.write_bytes(b"old")
    with pytest.raises(bnfold.NotONNXError) as e:
        bnfold.fold_file(bad, out)
    assert e.value.path == str(bad)
    with pytest.raises(bnfold.VerifyError):
        bnfold.fold_file(paths.fixture("demo.onnx"), out, tolerance=1e-30)
    assert out.read_bytes() == b"old" and sorted(os.listdir(tmp_path)) == ["bad.onnx", "out.onnx"]


def test_path_types(paths, tmp_path):
    """str, bytes and os.PathLike all name files."""
    import pathlib
    for i, dst in enumerate([str(tmp_path / "a.onnx"), os.fsencode(tmp_path / "b.onnx"),
                             pathlib.Path(tmp_path / "c.onnx")]):
        bnfold.fold_file(pathlib.Path(paths.fixture("demo.onnx")), dst)
    assert sorted(os.listdir(tmp_path)) == ["a.onnx", "b.onnx", "c.onnx"]
    assert bnfold.check(pathlib.Path(paths.fixture("demo.onnx"))).folded == 3
