"""bnfold.fold, check and list against the bnfold program, on every model
of testdata/: the program's output bytes and report are the truth the
module must match (and onnx.checker for what the module returns)."""
import json
import os

import onnx
import pytest

import bnfold


def cli_fold(paths, tmp_path, name, *options):
    """Fold testdata/NAME with the program: (exit status, output bytes, report entry)."""
    out, rep = tmp_path / "cli.onnx", tmp_path / "cli.json"
    p = paths.cli([paths.fixture(name), "-o", str(out), "--report", str(rep), "-q"] + list(options))
    doc = json.loads(rep.read_text())
    return p.returncode, out.read_bytes() if out.exists() else None, doc["inputs"][0]


def without(entry, *keys):
    return {k: v for k, v in entry.items() if k not in keys}


def test_fold_bytes_matches_the_program(paths, tmp_path, fixture_name):
    """fold(bytes) gives the program's output byte for byte, and its report
    entry.  The entries differ only in "output": the program names the file
    it wrote, a buffer has none (null); "input" is the name given (here the
    path the program was given)."""
    rc, want, entry = cli_fold(paths, tmp_path, fixture_name)
    assert rc == 0
    data = open(paths.fixture(fixture_name), "rb").read()
    out, report = bnfold.fold(data, name=paths.fixture(fixture_name))
    assert type(out) is bytes
    assert out == want
    got = report.to_dict()
    assert got["output"] is None and entry["output"] == str(tmp_path / "cli.onnx")
    assert without(got, "output") == without(entry, "output")
    assert json.loads(str(report)) == got
    # The attributes are the report's counts.
    c = entry["counts"]
    assert (report.bn_found, report.folded, report.affine_folded, report.n_skipped, report.nodes_before,
            report.nodes_after, report.graph_inputs_removed) == (
        c["bn_found"], c["folded"], c["affine_folded"], c["skipped"], c["nodes_before"], c["nodes_after"],
        c["graph_inputs_removed"])
    assert [dict(s) for s in report.to_dict()["skipped"]] == entry["skipped"]
    assert [s.reason for s in report.skipped] == [s["reason"] for s in entry["skipped"]]
    assert all(s.reason in bnfold.REASONS for s in report.skipped + report.affine_skipped)
    assert len(report.fusions) == c["folded"] and len(report.affine_fusions) == c["affine_folded"]


def test_check_matches_the_program(paths, tmp_path, fixture_name):
    """check(path) and check(bytes) report what `bnfold --check --report` does."""
    rep = tmp_path / "check.json"
    p = paths.cli(["--check", "-q", "--report", str(rep), paths.fixture(fixture_name)])
    entry = json.loads(rep.read_text())["inputs"][0]
    assert p.returncode == (3 if entry["counts"]["folded"] else 0)
    by_path = bnfold.check(paths.fixture(fixture_name))
    assert by_path.to_dict() == entry
    data = open(paths.fixture(fixture_name), "rb").read()
    by_bytes = bnfold.check(data)
    assert by_bytes.to_dict() == dict(entry, input="<buffer>")


def list_table(text):
    """The rows of `bnfold --list` (no -v): {column: cell}, split at the
    heading's column starts (cells are padded to the widest)."""
    lines = text.splitlines()
    head = lines[0]
    names = head.split()
    starts = [head.index(n) for n in names]
    rows = []
    for line in lines[1:]:
        cells = [line[a:b].strip() for a, b in zip(starts, starts[1:] + [None])]
        rows.append(dict(zip(names, cells)))
    return rows


def test_list_matches_the_program(paths, fixture_name):
    """list() gives the rows of `bnfold --list`, in its order."""
    p = paths.cli(["--list", paths.fixture(fixture_name)])
    assert p.returncode == 0
    want = list_table(p.stdout.decode())
    got = bnfold.list(paths.fixture(fixture_name))

    def dash(v):
        return "-" if v is None else str(v)
    assert [{"LAYER": dash(r.layer), "NODE": r.node, "PATTERN": dash(r.pattern), "CHANNELS": dash(r.channels),
             "DTYPE": dash(r.dtype), "ACTION": r.action, "REASON": dash(r.reason)} for r in got] == want
    assert bnfold.list(open(paths.fixture(fixture_name), "rb").read()) == got


def test_bytearray_and_memoryview_give_the_same_bytes(paths):
    data = open(paths.fixture("demo.onnx"), "rb").read()
    want, _ = bnfold.fold(data)
    for given in (bytearray(data), memoryview(data), memoryview(b"xx" + data)[2:]):
        out, report = bnfold.fold(given)
        assert type(out) is bytes and out == want
        assert report.folded == 3


def test_model_proto_round_trip(paths):
    """A ModelProto gives a new ModelProto: the bytes fold(bytes) gives,
    accepted by onnx.checker, with no BatchNormalization left; the model
    given is not changed."""
    data = open(paths.fixture("demo.onnx"), "rb").read()
    model = onnx.load_from_string(data)
    folded, report = bnfold.fold(model)
    assert isinstance(folded, onnx.ModelProto)
    assert folded.SerializeToString() == bnfold.fold(data)[0]
    onnx.checker.check_model(folded, full_check=True)
    assert [n.op_type for n in folded.graph.node].count("BatchNormalization") == 0
    assert report.folded == 3 and report.nodes_before == 12 and report.nodes_after == 9
    assert model.SerializeToString() == data
    # A model where nothing folds comes back as it was.
    plain = onnx.load(paths.fixture("nothing_to_fold.onnx"))
    again, report = bnfold.fold(plain)
    assert again == plain and again is not plain and report.folded == 0
    # check() and list() take a ModelProto too.
    assert bnfold.check(model).folded == 3
    assert [r.action for r in bnfold.list(model)] == ["fold"] * 3


@pytest.mark.parametrize("kw,flags", [
    ({"fold_overridable": True}, ["--fold-overridable"]),
    ({"verify": False}, ["--no-verify"]),
    ({"tolerance": 1e-3}, ["--tolerance", "1e-3"]),
])
def test_options_are_the_programs(paths, tmp_path, kw, flags):
    """Each option does what the program's option of the same name does."""
    name = "conv_bn_overridable.onnx"
    rc, want, entry = cli_fold(paths, tmp_path, name, *flags)
    assert rc == 0
    out, report = bnfold.fold(open(paths.fixture(name), "rb").read(), name=paths.fixture(name), **kw)
    assert out == want and without(report.to_dict(), "output") == without(entry, "output")


def test_option_defaults_change_the_result(paths):
    """fold_overridable is off by default: the overridable fixture folds
    only with it (so the option reaches the library)."""
    data = open(paths.fixture("conv_bn_overridable.onnx"), "rb").read()
    assert bnfold.fold(data)[1].folded == 0
    assert bnfold.fold(data, fold_overridable=True)[1].folded == 1
    assert "verify" not in bnfold.fold(data, verify=False)[1]


def test_report_is_read_only(paths):
    _, report = bnfold.fold(open(paths.fixture("demo.onnx"), "rb").read())
    with pytest.raises(TypeError):
        report["counts"] = {}
    with pytest.raises(AttributeError):
        report.folded = 0
    with pytest.raises(TypeError):
        report.counts["folded"] = 0
    assert isinstance(report.fusions, tuple)
    assert report.fusions[0].pattern == report.fusions[0]["pattern"] == "conv_bn"
    assert report["counts"]["folded"] == report.counts.folded == 3
    d = report.to_dict()
    d["counts"]["folded"] = 0
    assert report.folded == 3


def test_report_copies_and_pickles(paths):
    import copy
    import pickle
    _, report = bnfold.fold(open(paths.fixture("conv_bn_mixed.onnx"), "rb").read())
    for again in (copy.copy(report), copy.deepcopy(report), pickle.loads(pickle.dumps(report)),
                  pickle.loads(pickle.dumps(report.skipped[0]))):
        assert type(again) in (bnfold.Report, bnfold.Entry) and again is not report
    assert pickle.loads(pickle.dumps(report)) == report and str(copy.deepcopy(report)) == str(report)
    assert copy.deepcopy(report.skipped[0]) == report.skipped[0]
    assert type(copy.copy(report.skipped[0])) is bnfold.Entry
    try:
        raise bnfold.NotONNXError("not_onnx", "bad", "m.onnx")
    except bnfold.Error as e:
        again = pickle.loads(pickle.dumps(e))
        assert (type(again), again.code, again.reason, again.path, str(again)) == (
            bnfold.NotONNXError, "not_onnx", "bad", "m.onnx", "m.onnx: bad")


def test_reasons_are_the_documented_codes(paths):
    with open(os.path.join(paths.source_root, "src", "lib", "report.schema.json")) as f:
        schema = json.load(f)
    assert sorted(bnfold.REASONS) == sorted(schema["definitions"]["reason"]["enum"])
    assert all(bnfold.REASONS.values())
