"""Bad input raises the right bnfold.Error subclass, with the code, path and
reason of the library's message, and never crashes the interpreter."""
import os
import random
import subprocess
import sys
import textwrap

import onnx
import pytest

import bnfold


def demo(paths):
    return open(paths.fixture("demo.onnx"), "rb").read()


def bad_inputs(data):
    rng = random.Random(15)
    tensor = onnx.helper.make_tensor("t", onnx.TensorProto.FLOAT, [2], [1.0, 2.0]).SerializeToString()
    return {
        "empty": b"",
        "truncated": data[:len(data) // 2],
        "truncated by one byte": data[:-1],
        "random bytes": bytes(rng.randrange(256) for _ in range(4096)),
        "text": b"this is not an ONNX model\n",
        "a TensorProto, not a model": tensor,
        "a PNG header": b"\x89PNG\r\n\x1a\n" + bytes(64),
    }


@pytest.mark.parametrize("what", ["empty", "truncated", "truncated by one byte", "random bytes", "text",
                                  "a TensorProto, not a model", "a PNG header"])
@pytest.mark.parametrize("call", ["fold", "check", "list"])
def test_not_onnx(paths, what, call):
    data = bad_inputs(demo(paths))[what]
    with pytest.raises(bnfold.NotONNXError) as e:
        getattr(bnfold, call)(data)
    err = e.value
    assert isinstance(err, bnfold.Error) and isinstance(err, ValueError)
    assert err.code == "not_onnx" and err.path == "<buffer>"
    assert err.reason and str(err) == "<buffer>: " + err.reason
    assert "not an ONNX model" in err.reason
    assert err.report is None


def test_not_onnx_names_the_model(paths):
    with pytest.raises(bnfold.NotONNXError) as e:
        bnfold.fold(b"\x00\x01", name="export.onnx")
    assert e.value.path == "export.onnx" and str(e.value).startswith("export.onnx: not an ONNX model")


def test_the_program_agrees_on_the_bad_inputs(paths, tmp_path):
    """The program refuses each bad input too, with the message the module's
    error carries (its path aside)."""
    for what, data in bad_inputs(demo(paths)).items():
        f = tmp_path / "bad.onnx"
        f.write_bytes(data)
        p = paths.cli(["--check", "-q", str(f)])
        with pytest.raises(bnfold.NotONNXError) as e:
            bnfold.check(data)
        line = p.stderr.decode().strip()
        assert p.returncode == 1, what
        # An empty file is named so by the program ("file is empty"); the rest say the same.
        if data:
            assert line == "bnfold: error: %s: %s" % (f, e.value.reason), what
        with pytest.raises(bnfold.NotONNXError) as e2:
            bnfold.check(str(f))
        assert e2.value.path == str(f) and line == "bnfold: error: %s" % e2.value


def test_files_that_cannot_be_read(paths, tmp_path):
    missing = tmp_path / "missing.onnx"
    with pytest.raises(bnfold.FileIOError) as e:
        bnfold.fold_file(missing, tmp_path / "out.onnx")
    assert e.value.code == "io_error" and e.value.path == str(missing)
    assert e.value.reason == "cannot open: No such file or directory"
    with pytest.raises(bnfold.FileIOError):
        bnfold.check(tmp_path)  # a directory
    with pytest.raises(bnfold.FileIOError) as e:
        bnfold.fold_file(paths.fixture("demo.onnx"), tmp_path / "no" / "such" / "dir" / "out.onnx")
    assert e.value.path.endswith("out.onnx")
    assert sorted(os.listdir(tmp_path)) == []


def test_verify_failed(paths, tmp_path):
    """A fusion over its tolerance: VerifyError with the report naming it,
    as the program's exit 4; nothing is returned or written."""
    name = paths.fixture("demo.onnx")
    p = paths.cli([name, "-o", str(tmp_path / "x.onnx"), "--tolerance", "1e-30", "-q"])
    assert p.returncode == 4 and not (tmp_path / "x.onnx").exists()
    with pytest.raises(bnfold.VerifyError) as e:
        bnfold.fold(open(name, "rb").read(), tolerance=1e-30)
    err = e.value
    assert err.code == "verify_failed" and err.path == "<buffer>"
    assert isinstance(err.report, bnfold.Report)
    assert err.report["verify"]["failed"] >= 1
    assert any(not f.verify.ok for f in err.report.fusions)
    # The program's line is the library's, with a hint (-v) of its own.
    assert p.stderr.decode().startswith("bnfold: error: %s: %s" % (name, err.reason.split(";")[0]))
    with pytest.raises(bnfold.VerifyError):
        bnfold.fold_file(name, tmp_path / "y.onnx", tolerance=1e-30)
    assert os.listdir(tmp_path) == []


def test_wrong_types_and_options(paths):
    data = demo(paths)
    with pytest.raises(TypeError, match="fold_file"):
        bnfold.fold(paths.fixture("demo.onnx"))
    with pytest.raises(TypeError):
        bnfold.fold(12)
    with pytest.raises(TypeError):
        bnfold.fold(data, verify_all=True)
    with pytest.raises(TypeError):
        bnfold.fold(data, True)
    for bad in ({"tolerance": -1}, {"tolerance": float("nan")}, {"tolerance": float("inf")}, {"threads": -1},
                {"max_new_bytes": -5}, {"threads": 1.5}):
        with pytest.raises(ValueError):
            bnfold.fold(data, **bad)
    with pytest.raises(ValueError):
        bnfold.fold_file("a.onnx", "b.onnx", sync="yes")
    with pytest.raises(TypeError):
        bnfold.fold_file("a.onnx")
    with pytest.raises(ValueError):  # a NUL in a path
        bnfold.fold_file("a\0.onnx", "b.onnx")


def test_external_data_needs_a_file(paths, tmp_path):
    """A model whose weights are in external data is not folded from memory
    (there is no folder to find them in): each BatchNormalization is left
    with reason unsupported_storage and the bytes come back as they were;
    fold_file and check(path) read the data beside the file."""
    model = onnx.load(paths.fixture("demo.onnx"))
    onnx.save(model, str(tmp_path / "ext.onnx"), save_as_external_data=True, location="ext.onnx.data",
              size_threshold=0)
    data = open(tmp_path / "ext.onnx", "rb").read()
    out, report = bnfold.fold(data)
    assert out == data and report.folded == 0
    assert [s.reason for s in report.skipped] == ["unsupported_storage"] * 3
    assert bnfold.check(tmp_path / "ext.onnx").folded == 3


def test_bad_bytes_never_crash(paths):
    """Every prefix of a model, and thousands of corrupted copies, through
    fold, check and list in one child interpreter: each gives a result or
    a bnfold.Error, and the child ends normally."""
    code = textwrap.dedent("""
        import random, sys
        import bnfold
        data = open(sys.argv[1], "rb").read()
        rng = random.Random(1515)
        cases = [data[:n] for n in range(0, len(data), 7)]
        for _ in range(1500):
            b = bytearray(data)
            for _ in range(rng.randrange(1, 8)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            cases.append(bytes(b))
        errors = ok = 0
        for c in cases:
            for f in (bnfold.fold, bnfold.check, bnfold.list):
                try:
                    f(c)
                    ok += 1
                except bnfold.Error:
                    errors += 1
        print(ok, errors)
    """)
    p = subprocess.run([sys.executable, "-c", code, paths.fixture("demo.onnx")], env=paths.env(),
                       capture_output=True, timeout=600)
    assert p.returncode == 0, p.stderr.decode()[-3000:]
    ok, errors = map(int, p.stdout.split())
    assert errors > 1000 and ok > 0
