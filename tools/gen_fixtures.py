#!/usr/bin/python3
"""Generate the ONNX test fixtures for bnfold and testdata/expected.json.

Usage:  /usr/bin/python3 tools/gen_fixtures.py [OUTDIR]

OUTDIR defaults to testdata/ next to tools/ (the repository root's testdata).
Needs the `onnx` and `numpy` Python packages (fixture generation only; bnfold
itself has no Python dependency).

Everything is deterministic: each fixture draws its numbers from its own
numpy RandomState seeded from the fixture's name, no timestamps are written,
and rerunning produces byte-identical files.

The expectations in expected.json are written by hand below, from how each
model is built; they are never computed by running bnfold. The script only
cross-checks them for internal consistency (BatchNormalization node count,
folded + skipped == bn_before, ...) and fails loudly if anything is off.

expected.json fields, per fixture:
  file          model path relative to testdata/
  desc          one line
  args          extra bnfold command-line arguments
  bn_before     BatchNormalization nodes in the input (subgraphs and function
                bodies included)
  bn_after      BatchNormalization nodes expected in the output
  folded        expected number of fusions
  skipped       {reason_code: count} of BNs expected to be left in place
  equivalence   true: onnxruntime (CPU) can run the model and the original and
                folded outputs must match. Feed only the graph inputs that are
                NOT initializers (initializer-backed inputs keep their defaults).
  ir_version    model ir_version
  opset         default-domain opset
  checker       the INPUT passes onnx.checker.check_model (false only for the
                deliberately unsorted graph)
  full_check    the INPUT also passes check_model(full_check=True) (strict
                shape inference); false where a model is deliberately
                inconsistent in a way only shape inference sees
  byte_identical (only where true) bnfold must write the input unchanged
  numeric       (only where true) every folded tensor must equal the folded
                values recomputed with numpy from the input, correctly rounded
                to the tensor's type (within half an ulp)
  rtol, atol, rtol16, atol16  (only where given) equivalence tolerances; the
                16 ones apply to float16/bfloat16 outputs
  fusion_names  (only where given) {BN node: {"weight", "bias"}}: the names the
                folded layer reads, as the report must give them
"""

import json
import os
import sys
import zlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

PRODUCER_NAME = "bnfold-fixtures"
PRODUCER_VERSION = "1"
MAX_FILE_SIZE = 100 * 1024

F32 = np.float32
F64 = np.float64
F16 = np.float16
BF16 = "bfloat16"  # numpy has no bfloat16: such arrays are float32 holding bfloat16 values
ELEM = {F32: TensorProto.FLOAT, F64: TensorProto.DOUBLE, F16: TensorProto.FLOAT16,
        BF16: TensorProto.BFLOAT16}


# --------------------------------------------------------------------------
# small helpers


def rng_for(name):
    """A RandomState (stable across numpy versions) seeded from the name."""
    return np.random.RandomState(zlib.crc32(name.encode("utf-8")) & 0x7FFFFFFF)


def bf16_bits(arr):
    """bfloat16 bit patterns (uint16) of a float array: float32 first, then
    round to nearest even on the bits (finite values only)."""
    u = np.ascontiguousarray(arr, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def as_dtype(arr, dtype):
    """arr in the storage type: float16/32/64 arrays, or for BF16 a float32
    array whose values are exactly representable in bfloat16."""
    if dtype == BF16:
        bits = bf16_bits(arr).astype(np.uint32) << 16
        return bits.view(np.float32).reshape(np.shape(arr))
    return np.asarray(arr).astype(dtype)


def bn_params(rng, c, dtype=F32):
    """Random, non-trivial BN parameters: gamma in +-[0.5,1.5] (at least one
    negative), beta/mean normal, var in [0.1, 2.0]."""
    sign = np.where(rng.rand(c) < 0.3, -1.0, 1.0)
    sign[rng.randint(c)] = -1.0
    gamma = as_dtype(rng.uniform(0.5, 1.5, c) * sign, dtype)
    beta = as_dtype(rng.normal(0.0, 0.5, c), dtype)
    mean = as_dtype(rng.normal(0.0, 0.5, c), dtype)
    var = as_dtype(rng.uniform(0.1, 2.0, c), dtype)
    return gamma, beta, mean, var


def conv_weight(rng, shape, dtype=F32):
    return as_dtype(rng.normal(0.0, 0.5, shape), dtype)


def conv_bias(rng, c, dtype=F32):
    return as_dtype(rng.normal(0.0, 0.3, c), dtype)


def make_tensor(name, arr, fmt="raw", dtype=None):
    """TensorProto from a numpy array, stored as raw_data ("raw") or in the
    typed repeated field ("typed"): float_data / double_data, or int32_data
    holding the bit patterns of float16 and bfloat16 (dtype=BF16 marks a
    float32 array as bfloat16 values)."""
    arr = np.ascontiguousarray(arr)
    if dtype == BF16 or arr.dtype == F16:
        if dtype == BF16:
            bits, elem = bf16_bits(arr), TensorProto.BFLOAT16
        else:
            bits, elem = arr.view(np.uint16), TensorProto.FLOAT16
        t = TensorProto()
        t.name = name
        t.data_type = elem
        t.dims.extend(arr.shape)
        if fmt == "raw":
            t.raw_data = bits.astype("<u2").tobytes()
        elif fmt == "typed":
            t.int32_data.extend(int(b) for b in bits.ravel())
        else:
            raise ValueError(fmt)
        return t
    if fmt == "raw":
        return numpy_helper.from_array(arr, name)
    if fmt == "typed":
        if arr.dtype == F32:
            t = helper.make_tensor(name, TensorProto.FLOAT, arr.shape,
                                   [float(v) for v in arr.ravel()], raw=False)
            assert len(t.float_data) == arr.size and not t.raw_data
        elif arr.dtype == F64:
            t = helper.make_tensor(name, TensorProto.DOUBLE, arr.shape,
                                   [float(v) for v in arr.ravel()], raw=False)
            assert len(t.double_data) == arr.size and not t.raw_data
        else:
            raise ValueError("typed storage only for float32/float64")
        return t
    raise ValueError(fmt)


def bf16_tensor(name, arr):
    """BFLOAT16 TensorProto in raw_data (numpy has no bfloat16): the float32
    values rounded to nearest even in the top 16 bits."""
    a = np.ascontiguousarray(arr, dtype=F32)
    bits = a.view(np.uint32).astype(np.uint64)
    half = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2")
    t = TensorProto()
    t.name = name
    t.data_type = TensorProto.BFLOAT16
    t.dims.extend(a.shape)
    t.raw_data = half.tobytes()
    return t


def out_len(n, k, pad_begin, pad_end, stride=1):
    return (n + pad_begin + pad_end - k) // stride + 1


class G:
    """Accumulates one graph."""

    def __init__(self, name, dtype=F32, doc=""):
        self.name = name
        self.dtype = dtype
        self.elem = ELEM[dtype]
        self.doc = doc
        self.nodes = []
        self.inits = []
        self.inputs = []
        self.outputs = []
        self.value_info = []
        self.named = True  # give nodes names

    def init(self, name, arr, fmt="raw", dtype=None):
        """Initializer in the graph's type (or dtype), cast from arr."""
        arr = np.asarray(arr)
        if arr.dtype.kind == "f" or dtype is not None:
            dtype = dtype or self.dtype
            arr = as_dtype(arr, dtype)
        self.inits.append(make_tensor(name, arr, fmt, dtype))
        return name

    def inp(self, name, shape, elem=None):
        """Graph input; shape None leaves it unrecorded (Loop's iteration count)."""
        self.inputs.append(helper.make_tensor_value_info(
            name, self.elem if elem is None else elem, None if shape is None else list(shape)))
        return name

    def out(self, name, shape, elem=None):
        self.outputs.append(helper.make_tensor_value_info(
            name, self.elem if elem is None else elem, None if shape is None else list(shape)))
        return name

    def vi(self, name, shape, elem=None, doc=""):
        self.value_info.append(helper.make_tensor_value_info(
            name, self.elem if elem is None else elem, list(shape), doc_string=doc))

    def node(self, op, ins, outs, name=None, doc=None, **attrs):
        n = helper.make_node(op, list(ins), list(outs),
                             name=(name or "") if self.named else "", **attrs)
        if doc:
            n.doc_string = doc
        self.nodes.append(n)
        return n

    def build(self, inits_as_inputs=False):
        inputs = list(self.inputs)
        if inits_as_inputs:
            for t in self.inits:
                inputs.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
        return helper.make_graph(self.nodes, self.name, inputs, self.outputs,
                                 initializer=self.inits, doc_string=self.doc or None,
                                 value_info=self.value_info)


def make_model(graph, opset, ir_version, doc=""):
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                          producer_name=PRODUCER_NAME, producer_version=PRODUCER_VERSION)
    m.ir_version = ir_version
    if doc:
        m.doc_string = doc
    return m


def add_conv(g, rng, x, cin, cout, spatial, prefix, k=3, pad=1, stride=1, group=1,
             bias=True, fmt="raw", wname=None, bname=None):
    """Conv node with initializer weight (and bias); returns (out, out_spatial, W, B)."""
    nd = len(spatial)
    w = conv_weight(rng, (cout, cin // group) + (k,) * nd, g.dtype)
    wname = wname or prefix + "_W"
    g.init(wname, w, fmt)
    ins = [x, wname]
    if bias:
        bname = bname or prefix + "_B"
        g.init(bname, conv_bias(rng, cout, g.dtype), fmt)
        ins.append(bname)
    attrs = dict(kernel_shape=[k] * nd, pads=[pad] * (2 * nd))
    if stride != 1:
        attrs["strides"] = [stride] * nd
    if group != 1:
        attrs["group"] = group
    out = prefix + "_out"
    g.node("Conv", ins, [out], name=prefix, **attrs)
    osp = tuple(out_len(s, k, pad, pad, stride) for s in spatial)
    return out, osp


def add_bn_inits(g, rng, c, prefix, fmt="raw", fmts=None, stats_dtype=None):
    """Initializers for BN params; returns [scale, B, mean, var] names.
    stats_dtype: mean and var in this type instead of the graph's (BN-15's T2)."""
    vals = bn_params(rng, c, g.dtype)
    names = []
    for i, (suffix, v) in enumerate(zip(("scale", "B", "mean", "var"), vals)):
        f = fmts[i] if fmts else fmt
        dt = stats_dtype if stats_dtype is not None and i >= 2 else None
        names.append(g.init("%s_%s" % (prefix, suffix), v, f, dtype=dt))
    return names


def add_bn(g, x, params, out, prefix, **attrs):
    g.node("BatchNormalization", [x] + list(params), [out], name=prefix, **attrs)
    return out


# --------------------------------------------------------------------------
# fixture registry

FIXTURES = []


def fixture(file, desc, bn_before, folded, skipped=None, equivalence=True, args=None,
            checker=True, full_check=True, byte_identical=False, patterns=None, affine_folded=0,
            numeric=False, tol=None, fusion_names=None, affine_skipped=None):
    """Register a builder returning a ModelProto, with its hand-written expectations.
    patterns: {pattern: count} over all fusions (BN and Mul/Add), when given;
    affine_folded: Mul/Add nodes expected to fold into the layer before them;
    affine_skipped: {reason_code: count} of Mul/Add nodes next to a layer
    expected to be left in place (the report's affine_skipped);
    numeric: the test driver recomputes every folded tensor with numpy and
    requires it to be the correctly rounded value;
    tol: equivalence tolerances {rtol, atol, rtol16, atol16} (16: float16 and
    bfloat16 outputs) where the oracle's defaults do not fit;
    fusion_names: {bn node name: {"weight": name, "bias": name}} the layer must
    read after the fold (names of new tensors)."""
    skipped = dict(skipped or {})

    def deco(fn):
        FIXTURES.append(dict(file=file, desc=desc, args=list(args or []),
                             bn_before=bn_before, bn_after=bn_before - folded,
                             folded=folded, skipped=skipped, equivalence=equivalence,
                             checker=checker, full_check=full_check,
                             byte_identical=byte_identical, patterns=patterns,
                             affine_folded=affine_folded, numeric=numeric,
                             tol=dict(tol or {}), fusion_names=fusion_names,
                             affine_skipped=dict(affine_skipped or {}), build=fn))
        return fn
    return deco


def simple_conv_bn(name, opset, ir, cin=3, cout=4, spatial=(5, 5), dtype=F32, bias=True,
                   fmt="raw", bn_fmt=None, bn_attrs=None, inits_as_inputs=False, k=3, pad=1,
                   stride=1, group=1, relu_after=False):
    """X -> Conv -> BN -> Y (optionally -> Relu -> Y)."""
    rng = rng_for(name)
    g = G(name, dtype)
    x = g.inp("X", (2, cin) + tuple(spatial))
    c, osp = add_conv(g, rng, x, cin, cout, spatial, "conv", k=k, pad=pad, stride=stride,
                      group=group, bias=bias, fmt=fmt)
    p = add_bn_inits(g, rng, cout, "bn", fmt=bn_fmt or fmt)
    if relu_after:
        add_bn(g, c, p, "bn_out", "bn", **(bn_attrs or {}))
        g.node("Relu", ["bn_out"], ["Y"], name="relu")
    else:
        add_bn(g, c, p, "Y", "bn", **(bn_attrs or {}))
    g.out("Y", (2, cout) + osp)
    return make_model(g.build(inits_as_inputs), opset, ir)


# ---------------------------------------------------------------- positive

@fixture("conv_bn_basic.onnx", "2-D Conv with bias -> BN -> Relu, raw_data initializers, opset 15",
         1, 1)
def _():
    return simple_conv_bn("conv_bn_basic", 15, 8, cin=3, cout=4, spatial=(6, 6), relu_after=True)


@fixture("conv_bn_nobias.onnx", "Conv without bias -> BN (bias must be created)", 1, 1)
def _():
    return simple_conv_bn("conv_bn_nobias", 13, 7, cin=3, cout=5, bias=False)


@fixture("conv_bn_float_data.onnx",
         "all initializers (W, B, BN params) stored in typed float_data fields", 1, 1)
def _():
    return simple_conv_bn("conv_bn_float_data", 13, 7, cin=3, cout=4, fmt="typed")


@fixture("conv_bn_double.onnx",
         "float64 throughout; mix of double_data and raw_data tensors "
         "(ORT CPU has no double Conv kernel: numpy oracle)", 1, 1, equivalence=False, numeric=True)
def _():
    name = "conv_bn_double"
    rng = rng_for(name)
    g = G(name, F64)
    g.inp("X", (2, 3, 5, 5))
    g.init("conv_W", conv_weight(rng, (4, 3, 3, 3), F64), "raw")
    g.init("conv_B", conv_bias(rng, 4, F64), "typed")
    g.node("Conv", ["X", "conv_W", "conv_B"], ["conv_out"], name="conv",
           kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    p = add_bn_inits(g, rng, 4, "bn", fmts=("typed", "raw", "typed", "raw"))
    add_bn(g, "conv_out", p, "Y", "bn")
    g.out("Y", (2, 4, 5, 5))
    return make_model(g.build(), 15, 8)


@fixture("conv1d_bn.onnx", "1-D Conv (N,C,L) -> BN", 1, 1)
def _():
    return simple_conv_bn("conv1d_bn", 13, 7, cin=3, cout=4, spatial=(8,))


@fixture("conv3d_bn.onnx", "3-D Conv (N,C,D,H,W) -> BN", 1, 1)
def _():
    return simple_conv_bn("conv3d_bn", 13, 7, cin=2, cout=3, spatial=(4, 4, 4))


@fixture("conv_bn_group.onnx", "grouped Conv (group=2, 4->6 channels, W [6,2,3,3]) -> BN", 1, 1)
def _():
    return simple_conv_bn("conv_bn_group", 13, 7, cin=4, cout=6, group=2)


@fixture("conv_bn_depthwise.onnx", "depthwise Conv (group=C=4, W [4,1,3,3]) -> BN", 1, 1)
def _():
    return simple_conv_bn("conv_bn_depthwise", 13, 7, cin=4, cout=4, group=4)


@fixture("conv_bn_chain.onnx", "Conv->BN->Relu->Conv->BN->Relu: two fusions", 2, 2)
def _():
    name = "conv_bn_chain"
    rng = rng_for(name)
    g = G(name)
    g.inp("X", (2, 3, 6, 6))
    c1, _s = add_conv(g, rng, "X", 3, 4, (6, 6), "conv1")
    add_bn(g, c1, add_bn_inits(g, rng, 4, "bn1"), "bn1_out", "bn1")
    g.node("Relu", ["bn1_out"], ["relu1_out"], name="relu1")
    c2, _s = add_conv(g, rng, "relu1_out", 4, 5, (6, 6), "conv2", bias=False)
    add_bn(g, c2, add_bn_inits(g, rng, 5, "bn2"), "bn2_out", "bn2")
    g.node("Relu", ["bn2_out"], ["Y"], name="relu2")
    g.out("Y", (2, 5, 6, 6))
    return make_model(g.build(), 13, 7)


@fixture("conv_bn_constant_params.onnx",
         "BN scale/B/mean/var come from Constant nodes (value attr; raw and typed)", 1, 1)
def _():
    name = "conv_bn_constant_params"
    rng = rng_for(name)
    g = G(name)
    g.inp("X", (2, 3, 5, 5))
    c, _s = add_conv(g, rng, "X", 3, 4, (5, 5), "conv")
    vals = bn_params(rng, 4)
    names = []
    for (suffix, v, fmt) in zip(("scale", "B", "mean", "var"), vals,
                                ("raw", "typed", "raw", "typed")):
        n = "bn_" + suffix
        g.node("Constant", [], [n], name="const_" + suffix, value=make_tensor(n, v, fmt))
        names.append(n)
    add_bn(g, c, names, "Y", "bn")
    g.out("Y", (2, 4, 5, 5))
    return make_model(g.build(), 13, 7)


@fixture("conv_bn_constant_weight.onnx",
         "Conv weight comes from a Constant node (weight must be written as a new tensor)", 1, 1)
def _():
    name = "conv_bn_constant_weight"
    rng = rng_for(name)
    g = G(name)
    g.inp("X", (2, 3, 5, 5))
    g.node("Constant", [], ["conv_W"], name="const_W",
           value=make_tensor("conv_W", conv_weight(rng, (4, 3, 3, 3))))
    g.init("conv_B", conv_bias(rng, 4))
    g.node("Conv", ["X", "conv_W", "conv_B"], ["conv_out"], name="conv",
           kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    add_bn(g, "conv_out", add_bn_inits(g, rng, 4, "bn"), "Y", "bn")
    g.out("Y", (2, 4, 5, 5))
    return make_model(g.build(), 13, 7)


@fixture("conv_bn_identity_params.onnx",
         "all four BN params are Identity(initializer)", 1, 1)
def _():
    name = "conv_bn_identity_params"
    rng = rng_for(name)
    g = G(name)
    g.inp("X", (2, 3, 5, 5))
    c, _s = add_conv(g, rng, "X", 3, 4, (5, 5), "conv")
    raw = add_bn_inits(g, rng, 4, "bn_init")
    names = []
    for r, suffix in zip(raw, ("scale", "B", "mean", "var")):
        n = "bn_" + suffix
        g.node("Identity", [r], [n], name="id_" + suffix)
        names.append(n)
    add_bn(g, c, names, "Y", "bn")
    g.out("Y", (2, 4, 5, 5))
    return make_model(g.build(), 13, 7)


@fixture("conv_bn_constantofshape.onnx",
         "BN mean is ConstantOfShape(shape initializer [4], value=0.3); other params initializers",
         1, 1)
def _():
    name = "conv_bn_constantofshape"
    rng = rng_for(name)
    g = G(name)
    g.inp("X", (2, 3, 5, 5))
    c, _s = add_conv(g, rng, "X", 3, 4, (5, 5), "conv")
    sc, b, _m, v = add_bn_inits(g, rng, 4, "bn")
    g.inits = [t for t in g.inits if t.name != "bn_mean"]
    g.init("mean_shape", np.array([4], dtype=np.int64))
    g.node("ConstantOfShape", ["mean_shape"], ["bn_mean_cos"], name="mean_cos",
           value=helper.make_tensor("value", TensorProto.FLOAT, [1], [0.3]))
    add_bn(g, c, [sc, b, "bn_mean_cos", v], "Y", "bn")
    g.out("Y", (2, 4, 5, 5))
    return make_model(g.build(), 13, 7)


@fixture("conv_bn_shared_weight.onnx",
         "two Convs share one weight initializer; conv_a->BN->Y1, conv_b->Y2 directly "
         "(conv_b must keep the original weight)", 1, 1)
def _():
    name = "conv_bn_shared_weight"
    rng = rng_for(name)
    g = G(name)
    g.inp("X", (2, 3, 5, 5))
    g.init("shared_W", conv_weight(rng, (4, 3, 3, 3)))
    g.init("conv_a_B", conv_bias(rng, 4))
    g.init("conv_b_B", conv_bias(rng, 4))
    g.node("Conv", ["X", "shared_W", "conv_a_B"], ["conv_a_out"], name="conv_a",
           kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    g.node("Conv", ["X", "shared_W", "conv_b_B"], ["Y2"], name="conv_b",
           kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    add_bn(g, "conv_a_out", add_bn_inits(g, rng, 4, "bn"), "Y1", "bn")
    g.out("Y1", (2, 4, 5, 5))
    g.out("Y2", (2, 4, 5, 5))
    return make_model(g.build(), 13, 7)


@fixture("conv_bn_shared_weight_two_bn.onnx",
         "two Convs share weight AND bias initializers, each followed by its own BN "
         "(different params)", 2, 2)
def _():
    name = "conv_bn_shared_weight_two_bn"
    rng = rng_for(name)
    g = G(name)
    g.inp("X", (2, 3, 5, 5))
    g.init("shared_W", conv_weight(rng, (4, 3, 3, 3)))
    g.init("shared_B", conv_bias(rng, 4))
    g.node("Conv", ["X", "shared_W", "shared_B"], ["conv_a_out"], name="conv_a",
           kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    g.node("Conv", ["X", "shared_W", "shared_B"], ["conv_b_out"], name="conv_b",
           kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    add_bn(g, "conv_a_out", add_bn_inits(g, rng, 4, "bn_a"), "Y1", "bn_a")
    add_bn(g, "conv_b_out", add_bn_inits(g, rng, 4, "bn_b"), "Y2", "bn_b")
    g.out("Y1", (2, 4, 5, 5))
    g.out("Y2", (2, 4, 5, 5))
    return make_model(g.build(), 13, 7)


@fixture("conv_bn_epsilon.onnx", "BN with non-default epsilon=1e-3", 1, 1)
def _():
    return simple_conv_bn("conv_bn_epsilon", 13, 7, bn_attrs=dict(epsilon=1e-3))


@fixture("conv_bn_opset6.onnx",
         "opset 6 / IR 3, BN is_test=1, initializers listed in graph.input (IR 3 convention); "
         "ORT does not run BN-6", 1, 1, equivalence=False)
def _():
    return simple_conv_bn("conv_bn_opset6", 6, 3, bn_attrs=dict(is_test=1),
                          inits_as_inputs=True)


@fixture("conv_bn_opset7.onnx",
         "opset 7 / IR 3 (initializers listed in graph.input, IR 3 convention)", 1, 1)
def _():
    return simple_conv_bn("conv_bn_opset7", 7, 3, inits_as_inputs=True)


@fixture("conv_bn_opset9.onnx", "opset 9 / IR 4", 1, 1)
def _():
    return simple_conv_bn("conv_bn_opset9", 9, 4)


@fixture("conv_bn_opset14.onnx", "opset 14 with explicit training_mode=0", 1, 1)
def _():
    return simple_conv_bn("conv_bn_opset14", 14, 7, bn_attrs=dict(training_mode=0))


@fixture("conv_bn_opset15.onnx",
         "opset 15, stride-2 Conv without bias, BN momentum=0.9 and training_mode=0", 1, 1)
def _():
    return simple_conv_bn("conv_bn_opset15", 15, 8, cin=3, cout=4, spatial=(6, 6), stride=2,
                          bias=False, bn_attrs=dict(momentum=0.9, training_mode=0))


@fixture("conv_bn_ir3_inputs.onnx",
         "IR 3 / opset 9, every initializer also in graph.input (required by IR 3): folds", 1, 1)
def _():
    return simple_conv_bn("conv_bn_ir3_inputs", 9, 3, inits_as_inputs=True)


@fixture("conv_bn_unsorted.onnx",
         "node list not topologically sorted (Relu, BN, Conv); onnx.checker rejects the input",
         1, 1, checker=False, full_check=False)
def _():
    m = simple_conv_bn("conv_bn_unsorted", 13, 7, relu_after=True)
    nodes = list(m.graph.node)
    del m.graph.node[:]
    m.graph.node.extend(reversed(nodes))
    return m


@fixture("conv_bn_bn_graph_output.onnx",
         "BN output Y is a graph output and also feeds Relu->Y2; Y keeps its name", 1, 1)
def _():
    name = "conv_bn_bn_graph_output"
    rng = rng_for(name)
    g = G(name)
    g.inp("X", (2, 3, 5, 5))
    c, _s = add_conv(g, rng, "X", 3, 4, (5, 5), "conv")
    add_bn(g, c, add_bn_inits(g, rng, 4, "bn"), "Y", "bn")
    g.node("Relu", ["Y"], ["Y2"], name="relu")
    g.out("Y", (2, 4, 5, 5))
    g.out("Y2", (2, 4, 5, 5))
    return make_model(g.build(), 13, 7)


@fixture("conv_bn_value_info.onnx",
         "value_info for conv and BN outputs, metadata_props, doc_strings on model/graph/nodes",
         1, 1)
def _():
    name = "conv_bn_value_info"
    rng = rng_for(name)
    g = G(name, doc="graph doc string: keep me")
    g.inp("X", (2, 3, 5, 5))
    c, _s = add_conv(g, rng, "X", 3, 4, (5, 5), "conv")
    g.nodes[-1].doc_string = "conv node doc"
    add_bn(g, c, add_bn_inits(g, rng, 4, "bn"), "bn_out", "bn")
    g.nodes[-1].doc_string = "bn node doc"
    g.node("Relu", ["bn_out"], ["Y"], name="relu", doc="relu node doc")
    g.vi("conv_out", (2, 4, 5, 5), doc="conv output value_info")
    g.vi("bn_out", (2, 4, 5, 5), doc="bn output value_info")
    g.out("Y", (2, 4, 5, 5))
    m = make_model(g.build(), 13, 7, doc="model doc string: keep me")
    m.model_version = 3
    m.domain = "org.bnfold.fixtures"
    helper.set_model_props(m, {"author": "bnfold-fixtures", "purpose": "metadata round-trip"})
    return m


@fixture("conv_bn_empty_names.onnx",
         "all nodes have empty names (Conv->BN->Relu->Conv->BN): two fusions", 2, 2)
def _():
    name = "conv_bn_empty_names"
    rng = rng_for(name)
    g = G(name)
    g.named = False
    g.inp("X", (2, 3, 5, 5))
    c1, _s = add_conv(g, rng, "X", 3, 4, (5, 5), "conv1")
    add_bn(g, c1, add_bn_inits(g, rng, 4, "bn1"), "bn1_out", "bn1")
    g.node("Relu", ["bn1_out"], ["relu_out"])
    c2, _s = add_conv(g, rng, "relu_out", 4, 4, (5, 5), "conv2", bias=False)
    add_bn(g, c2, add_bn_inits(g, rng, 4, "bn2"), "Y", "bn2")
    g.out("Y", (2, 4, 5, 5))
    m = make_model(g.build(), 13, 7)
    assert all(n.name == "" for n in m.graph.node)
    return m


@fixture("conv_bn_overridable_fold.onnx",
         "IR 8, all initializers also listed in graph.input; with --fold-overridable: folds",
         1, 1, args=["--fold-overridable"])
def _():
    return simple_conv_bn("conv_bn_overridable_fold", 15, 8, inits_as_inputs=True)


@fixture("conv_bn_subgraph.onnx",
         "If node: then-branch Conv->BN with subgraph initializers (folds); else-branch BN on "
         "an outer-graph Conv output (not same graph: no_linear_producer)",
         2, 1, skipped={"no_linear_producer": 1})
def _():
    name = "conv_bn_subgraph"
    rng = rng_for(name)
    # then branch
    t = G("then_branch")
    ct, _s = add_conv(t, rng, "X", 3, 4, (5, 5), "then_conv")
    add_bn(t, ct, add_bn_inits(t, rng, 4, "then_bn"), "then_Y", "then_bn")
    t.out("then_Y", (2, 4, 5, 5))
    # else branch
    e = G("else_branch")
    add_bn(e, "conv0_out", add_bn_inits(e, rng, 4, "else_bn"), "else_Y", "else_bn")
    e.out("else_Y", (2, 4, 5, 5))
    # main graph
    g = G(name)
    g.inp("X", (2, 3, 5, 5))
    add_conv(g, rng, "X", 3, 4, (5, 5), "conv0")
    g.init("cond", np.array(True))
    g.node("If", ["cond"], ["Y"], name="if", then_branch=t.build(), else_branch=e.build())
    g.out("Y", (2, 4, 5, 5))
    return make_model(g.build(), 13, 7)


@fixture("conv_bn_loop.onnx",
         "Loop (2 iterations) whose body runs Conv->BN->Relu on the carried tensor, with body "
         "initializers: folds inside the body", 1, 1, patterns={"conv_bn": 1}, numeric=True)
def _():
    name = "conv_bn_loop"
    rng = rng_for(name)
    b = G("loop_body")
    b.inp("iter", (), TensorProto.INT64)
    b.inp("cond_in", (1,), TensorProto.BOOL)  # onnx 1.12 infers rank 1 here
    b.inp("x_in", (2, 4, 5, 5))
    b.node("Identity", ["cond_in"], ["cond_out"], name="loop_cond")
    c, _s = add_conv(b, rng, "x_in", 4, 4, (5, 5), "body_conv")
    add_bn(b, c, add_bn_inits(b, rng, 4, "body_bn"), "body_bn_out", "body_bn")
    b.node("Relu", ["body_bn_out"], ["x_out"], name="body_relu")
    b.out("cond_out", (1,), TensorProto.BOOL)
    b.out("x_out", (2, 4, 5, 5))
    g = G(name)
    g.inp("X", (2, 4, 5, 5))
    g.init("trip_count", np.array(2, dtype=np.int64))
    g.init("cond", np.array(True))
    g.node("Loop", ["trip_count", "cond", "X"], ["Y"], name="loop", body=b.build())
    g.out("Y", (2, 4, 5, 5))
    return make_model(g.build(), 13, 7)


@fixture("conv_bn_scan.onnx",
         "Scan over 3 steps; the body's Conv reads its weight from the main graph (outer scope, "
         "no other reader; 2304 bytes, so streamed from the input file) and its BN output is both a scan output and read by the state Add: "
         "folds, the weight is copied into the body and the unused outer one removed",
         1, 1, patterns={"conv_bn": 1}, numeric=True)
def _():
    name = "conv_bn_scan"
    rng = rng_for(name)
    b = G("scan_body")
    b.inp("s_in", (2, 8, 5, 5))
    b.inp("x_t", (2, 8, 5, 5))
    b.init("body_conv_B", conv_bias(rng, 8))
    b.node("Conv", ["x_t", "outer_W", "body_conv_B"], ["body_conv_out"], name="body_conv",
           kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    add_bn(b, "body_conv_out", add_bn_inits(b, rng, 8, "body_bn"), "body_bn_out", "body_bn")
    b.node("Add", ["s_in", "body_bn_out"], ["s_out"], name="body_acc")
    b.out("s_out", (2, 8, 5, 5))
    b.out("body_bn_out", (2, 8, 5, 5))
    g = G(name)
    g.inp("S0", (2, 8, 5, 5))
    g.inp("X_seq", (3, 2, 8, 5, 5))
    g.init("outer_W", conv_weight(rng, (8, 8, 3, 3)))
    g.node("Scan", ["S0", "X_seq"], ["S", "Y_seq"], name="scan", body=b.build(), num_scan_inputs=1)
    g.out("S", (2, 8, 5, 5))
    g.out("Y_seq", (3, 2, 8, 5, 5))
    return make_model(g.build(), 13, 7)


@fixture("conv_bn_outer_scope.onnx",
         "If then-branch: Conv->BN whose weight, bias and BN params are main-graph "
         "initializers; the weight and bias are also read by a main-graph Conv and by the "
         "else-branch: copied into the branch, never edited; the BN params lose their only "
         "reader and are removed from the main graph", 1, 1, patterns={"conv_bn": 1}, numeric=True)
def _():
    name = "conv_bn_outer_scope"
    rng = rng_for(name)
    t = G("then_branch")
    t.node("Conv", ["X", "W", "B"], ["then_conv_out"], name="then_conv",
           kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    add_bn(t, "then_conv_out", ["bn_scale", "bn_B", "bn_mean", "bn_var"], "then_Y", "then_bn")
    t.out("then_Y", (2, 4, 5, 5))
    e = G("else_branch")
    e.node("Conv", ["X", "W", "B"], ["else_Y"], name="else_conv",
           kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    e.out("else_Y", (2, 4, 5, 5))
    g = G(name)
    g.inp("X", (2, 3, 5, 5))
    g.init("W", conv_weight(rng, (4, 3, 3, 3)))
    g.init("B", conv_bias(rng, 4))
    add_bn_inits(g, rng, 4, "bn")
    g.init("cond", np.array(True))
    g.node("Conv", ["X", "W", "B"], ["Y0"], name="conv0", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    g.node("If", ["cond"], ["Y1"], name="if", then_branch=t.build(), else_branch=e.build())
    g.out("Y0", (2, 4, 5, 5))
    g.out("Y1", (2, 4, 5, 5))
    return make_model(g.build(), 13, 7)


@fixture("conv_bn_name_clash.onnx",
         "names a fold would create are already defined, unread, in subgraphs: the main Conv "
         "shares weight 'W' (so it is copied) and has no bias; 'W_bnfold' is the unused "
         "iteration input of a Loop body inside an If branch, 'W_bnfold_2' an unused initializer "
         "of the other branch, 'Y1_bnfold_bias' the unused second output of a Split in the Loop "
         "body: the new tensors are 'W_bnfold_3' and 'Y1_bnfold_bias_2'",
         1, 1, patterns={"conv_bn": 1}, numeric=True,
         fusion_names={"bn": dict(weight="W_bnfold_3", bias="Y1_bnfold_bias_2")})
def _():
    name = "conv_bn_name_clash"
    rng = rng_for(name)
    lb = G("loop_body")
    lb.inp("W_bnfold", (), TensorProto.INT64)
    lb.inp("cond_in", (1,), TensorProto.BOOL)
    lb.inp("v_in", (2, 4, 5, 5))
    lb.node("Identity", ["cond_in"], ["cond_out"], name="loop_cond")
    lb.node("Split", ["v_in"], ["v_a", "Y1_bnfold_bias"], name="loop_split", axis=1)
    lb.node("Concat", ["v_a", "v_a"], ["v_out"], name="loop_concat", axis=1)
    lb.out("cond_out", (1,), TensorProto.BOOL)
    lb.out("v_out", (2, 4, 5, 5))
    t = G("then_branch")
    t.node("Loop", ["trip_count", "", "Y2"], ["then_Y"], name="then_loop", body=lb.build())
    t.out("then_Y", (2, 4, 5, 5))
    e = G("else_branch")
    e.init("W_bnfold_2", conv_weight(rng, (4,)))
    e.node("Neg", ["Y2"], ["else_Y"], name="else_neg")
    e.out("else_Y", (2, 4, 5, 5))
    g = G(name)
    g.inp("X", (2, 3, 5, 5))
    g.init("W", conv_weight(rng, (4, 3, 3, 3)))
    add_bn_inits(g, rng, 4, "bn")
    g.init("cond", np.array(True))
    g.init("trip_count", np.array(2, dtype=np.int64))
    g.node("Conv", ["X", "W"], ["conv_out"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    add_bn(g, "conv_out", ["bn_scale", "bn_B", "bn_mean", "bn_var"], "Y1", "bn")
    g.node("Conv", ["X", "W"], ["Y2"], name="conv2", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    g.node("If", ["cond"], ["Y3"], name="if", then_branch=t.build(), else_branch=e.build())
    g.out("Y1", (2, 4, 5, 5))
    g.out("Y2", (2, 4, 5, 5))
    g.out("Y3", (2, 4, 5, 5))
    return make_model(g.build(), 13, 7)


FN_DOMAIN = "bnfold.test"


def function_conv_bn(rng, fname, cin, cout, bias=True, eps_ref=False, mean_input=False):
    """A FunctionProto x -> Conv -> BN -> Relu -> y whose weights and BN
    params are Constant nodes of the body.  eps_ref: the BN's epsilon is the
    function's attribute "eps"; mean_input: the BN mean is the function's
    second input."""
    nodes = []

    def const(name, arr, fmt="raw"):
        nodes.append(helper.make_node("Constant", [], [name], name="const_" + name,
                                      value=make_tensor(name, arr, fmt)))
        return name

    w = const("w", conv_weight(rng, (cout, cin, 3, 3)))
    ins = ["x", w] + ([const("b", conv_bias(rng, cout))] if bias else [])
    nodes.append(helper.make_node("Conv", ins, ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
    gamma, beta, mean, var = bn_params(rng, cout)
    params = [const("scale", gamma), const("B", beta, "typed"),
              "mean" if mean_input else const("mean", mean), const("var", var, "typed")]
    bn = helper.make_node("BatchNormalization", ["c"] + params, ["bn_out"], name="bn")
    if eps_ref:
        a = onnx.AttributeProto()
        a.name, a.ref_attr_name, a.type = "epsilon", "eps", onnx.AttributeProto.FLOAT
        bn.attribute.append(a)
    nodes.append(bn)
    nodes.append(helper.make_node("Relu", ["bn_out"], ["y"], name="relu"))
    return helper.make_function(FN_DOMAIN, fname, ["x", "mean"] if mean_input else ["x"], ["y"], nodes,
                                [helper.make_opsetid("", 15)], ["eps"] if eps_ref else [])


@fixture("conv_bn_function.onnx",
         "model-local functions (IR 8): ConvBnRelu's Conv->BN with Constant weight, bias and "
         "params folds in place (weight 2304 bytes: streamed); ConvBnNoBias needs a new bias "
         "tensor (unsupported_storage); ConvBnEps's epsilon is a function attribute "
         "(attribute_reference); ConvBnMean's mean is a function input (param_not_constant); "
         "a Conv->BN in the main graph folds too",
         5, 2, skipped={"unsupported_storage": 1, "attribute_reference": 1, "param_not_constant": 1},
         numeric=True)
def _():
    name = "conv_bn_function"
    rng = rng_for(name)
    funcs = [function_conv_bn(rng, "ConvBnRelu", 8, 8),
             function_conv_bn(rng, "ConvBnNoBias", 8, 4, bias=False),
             function_conv_bn(rng, "ConvBnEps", 8, 4, eps_ref=True),
             function_conv_bn(rng, "ConvBnMean", 8, 4, mean_input=True)]
    g = G(name)
    g.inp("X", (2, 8, 5, 5))
    g.node("ConvBnRelu", ["X"], ["Y1"], name="call_relu", domain=FN_DOMAIN)
    g.node("ConvBnNoBias", ["X"], ["Y2"], name="call_nobias", domain=FN_DOMAIN)
    g.node("ConvBnEps", ["X"], ["Y3"], name="call_eps", domain=FN_DOMAIN, eps=1e-3)
    g.init("call_mean", rng.normal(0.0, 0.5, 4))
    g.node("ConvBnMean", ["X", "call_mean"], ["Y4"], name="call_mean", domain=FN_DOMAIN)
    c, _s = add_conv(g, rng, "X", 8, 4, (5, 5), "conv")
    add_bn(g, c, add_bn_inits(g, rng, 4, "bn"), "Y5", "bn")
    g.out("Y1", (2, 8, 5, 5))
    for y in ("Y2", "Y3", "Y4", "Y5"):
        g.out(y, (2, 4, 5, 5))
    m = make_model(g.build(), 15, 8)
    m.opset_import.append(helper.make_opsetid(FN_DOMAIN, 1))
    m.functions.extend(funcs)
    return m


# ---------------------------------------------------------------- lossless round trip (issue 5)
#
# Fields a newer ONNX schema has (IR 10/11) are written as raw protobuf
# fields, which onnx 1.12 and Debian's onnx.proto do not know: protobuf keeps
# them as unknown fields, and bnfold must too.  Each carries a marker string
# (RT-...) that tests/oracle/test_roundtrip.py looks for in the output.


def pb_varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def pb_len(field, data):
    """A length-delimited field (wire type 2)."""
    return pb_varint(field << 3 | 2) + pb_varint(len(data)) + data


def pb_uint(field, n):
    return pb_varint(field << 3) + pb_varint(n)


def pb_entry(field, key, value):
    """A StringStringEntryProto field (metadata_props)."""
    return pb_len(field, pb_len(1, key.encode()) + pb_len(2, value.encode()))


def add_unknown(msg, data):
    """Merge encoded fields into msg; those msg's schema lacks stay unknown."""
    msg.MergeFromString(data)


@fixture("roundtrip_newer_schema.onnx",
         "lossless round trip: unknown fields (newer schema) on model, graph, nodes, tensors, "
         "attributes, value_info, function and training graph; doc strings everywhere, "
         "metadata_props, training_info whose algorithm updates W1 and reads bn2_mean, an unread "
         "sparse initializer (onnx 1.12 types it sparse_tensor, which no operator takes), a "
         "string initializer, value_info, a custom-domain opset import, a "
         "function; conv2->bn2 folds (its 2304-byte weight streamed), bn1 is left because "
         "training_info assigns W1", 2, 1, skipped={"weight_not_constant": 1},
         patterns={"conv_bn": 1}, numeric=True)
def _():
    name = "roundtrip_newer_schema"
    rng = rng_for(name)
    g = G("roundtrip", doc="graph doc string: keep")
    g.inputs.append(helper.make_tensor_value_info("X", TensorProto.FLOAT, [2, 8, 6, 6], doc_string="X doc"))
    g.inputs.append(helper.make_tensor_value_info("Z", TensorProto.FLOAT, [8], doc_string="Z doc"))
    for k in (1, 2):
        g.init("W%d" % k, conv_weight(rng, (8, 8, 3, 3)))
        g.init("B%d" % k, conv_bias(rng, 8), "typed" if k == 2 else "raw")
        add_bn_inits(g, rng, 8, "bn%d" % k)
    for t in g.inits:
        t.doc_string = "initializer %s: keep" % t.name
    labels = helper.make_tensor("labels", TensorProto.STRING, [2], [b"cat", b"dog"])
    labels.doc_string = "string initializer: keep"
    g.inits.append(labels)
    g.node("Conv", ["X", "W1", "B1"], ["c1"], name="conv1", doc="conv1 doc", kernel_shape=[3, 3],
           pads=[1, 1, 1, 1])
    add_bn(g, "c1", ["bn1_scale", "bn1_B", "bn1_mean", "bn1_var"], "b1", "bn1")
    g.nodes[-1].doc_string = "bn1 doc"
    g.node("Relu", ["b1"], ["r1"], name="relu1", doc="relu1 doc")
    g.node("Conv", ["r1", "W2", "B2"], ["c2"], name="conv2", doc="conv2 doc", kernel_shape=[3, 3],
           pads=[1, 1, 1, 1])
    add_bn(g, "c2", ["bn2_scale", "bn2_B", "bn2_mean", "bn2_var"], "Y", "bn2")
    g.nodes[-1].doc_string = "bn2 doc"
    g.node("Identity", ["labels"], ["Y3"], name="labels_out", doc="identity doc")
    g.node("Double", ["Z"], ["Y4"], name="call_double", domain="bnfold.roundtrip", doc="call doc")
    for v in ("c1", "b1", "r1", "c2"):
        g.vi(v, (2, 8, 6, 6), doc="value_info %s: keep" % v)
    g.out("Y", (2, 8, 6, 6))
    g.out("Y3", (2,), TensorProto.STRING)
    g.out("Y4", (8,))
    graph = g.build()
    sp = onnx.SparseTensorProto()
    sp.dims.extend([8])
    sp.values.CopyFrom(helper.make_tensor("sparse_bias", TensorProto.FLOAT, [2], [0.5, -1.5]))
    sp.indices.CopyFrom(helper.make_tensor("sparse_bias_indices", TensorProto.INT64, [2], [1, 5]))
    graph.sparse_initializer.append(sp)
    qa = graph.quantization_annotation.add()
    qa.tensor_name = "Z"
    qa.quant_parameter_tensor_names.add(key="SCALE_TENSOR", value="Z_scale")

    nodes = {n.name: n for n in graph.node}
    inits = {t.name: t for t in graph.initializer}
    # unknown fields: NodeProto.metadata_props (9) and overload (8), IR 10
    add_unknown(nodes["conv1"], pb_entry(9, "RT-NODE-conv1", "keep"))
    add_unknown(nodes["conv2"], pb_entry(9, "RT-NODE-conv2", "keep"))
    add_unknown(nodes["relu1"], pb_len(8, b"RT-NODE-relu1-overload"))
    # AttributeProto: no newer field exists; 1001 stands for one
    add_unknown(nodes["conv1"].attribute[0], pb_len(1001, b"RT-ATTR-conv1"))
    add_unknown(nodes["conv2"].attribute[1], pb_len(1001, b"RT-ATTR-conv2"))
    for n in graph.node:
        for a in n.attribute:
            a.doc_string = "attribute %s of %s: keep" % (a.name, n.name)
    # TensorProto.metadata_props (16), IR 10: on the folded weight and bias too
    for t in ("W1", "W2", "B2", "bn1_var", "labels"):
        add_unknown(inits[t], pb_entry(16, "RT-TENSOR-" + t, "keep"))
    add_unknown(graph.sparse_initializer[0].values, pb_entry(16, "RT-TENSOR-sparse", "keep"))
    # ValueInfoProto.metadata_props (4), GraphProto.metadata_props (16), IR 10
    add_unknown([v for v in graph.value_info if v.name == "r1"][0], pb_entry(4, "RT-VI-r1", "keep"))
    add_unknown(graph, pb_entry(16, "RT-GRAPH", "keep"))

    double = helper.make_function("bnfold.roundtrip", "Double", ["x"], ["y"],
                                  [helper.make_node("Add", ["x", "x"], ["y"], name="twice")],
                                  [helper.make_opsetid("", 15)], doc_string="function doc: keep")
    add_unknown(double, pb_entry(14, "RT-FUNCTION", "keep"))  # FunctionProto.metadata_props, IR 10

    # training_info: the algorithm updates W1 (so conv1's BN must stay) and reads bn2_mean
    a = G("rt_algorithm", doc="training algorithm doc: keep")
    a.init("lr", np.array([0.5], dtype=np.float32))
    a.node("Mul", ["W1", "lr"], ["W1_new"], name="sgd", doc="sgd doc")
    a.node("Identity", ["bn2_mean"], ["bn2_mean_seen"], name="peek")
    a.out("W1_new", (8, 8, 3, 3))
    a.out("bn2_mean_seen", (8,))
    algo = a.build()
    add_unknown(algo, pb_entry(16, "RT-TRAIN-GRAPH", "keep"))
    ti = onnx.TrainingInfoProto()
    ti.algorithm.CopyFrom(algo)
    ti.update_binding.add(key="W1", value="W1_new")

    m = make_model(graph, 15, 8, doc="model doc string: keep")
    m.model_version = 5
    m.domain = "org.bnfold.fixtures"
    helper.set_model_props(m, {"author": "bnfold-fixtures", "purpose": "lossless round trip"})
    m.opset_import.append(helper.make_opsetid("bnfold.roundtrip", 1))
    m.opset_import.append(helper.make_opsetid("com.example.unused", 3))
    m.functions.append(double)
    m.training_info.append(ti)
    # ModelProto.configuration (26, DeviceConfigurationProto, IR 11) and two fields no schema has
    add_unknown(m, pb_len(26, pb_len(1, b"RT-MODEL-configuration") + pb_uint(2, 1)))
    add_unknown(m, pb_uint(1000, 7) + pb_len(1002, b"RT-MODEL-1002"))
    data = m.SerializeToString()
    for marker in (b"RT-NODE-conv1", b"RT-ATTR-conv2", b"RT-TENSOR-W2", b"RT-VI-r1", b"RT-GRAPH",
                   b"RT-FUNCTION", b"RT-TRAIN-GRAPH", b"RT-MODEL-configuration", b"RT-MODEL-1002"):
        assert data.count(marker) == 1, marker
    return m


# ---------------------------------------------------------------- negative

@fixture("bn_standalone.onnx", "BN directly on the graph input", 1, 0,
         skipped={"no_linear_producer": 1})
def _():
    name = "bn_standalone"
    rng = rng_for(name)
    g = G(name)
    g.inp("X", (2, 4, 5, 5))
    add_bn(g, "X", add_bn_inits(g, rng, 4, "bn"), "Y", "bn")
    g.out("Y", (2, 4, 5, 5))
    return make_model(g.build(), 15, 8)


@fixture("conv_bn_conv_out_shared.onnx",
         "Conv output feeds BN and also Relu->Y2", 1, 0,
         skipped={"layer_output_has_other_consumers": 1})
def _():
    name = "conv_bn_conv_out_shared"
    rng = rng_for(name)
    g = G(name)
    g.inp("X", (2, 3, 5, 5))
    c, _s = add_conv(g, rng, "X", 3, 4, (5, 5), "conv")
    add_bn(g, c, add_bn_inits(g, rng, 4, "bn"), "Y1", "bn")
    g.node("Relu", [c], ["Y2"], name="relu")
    g.out("Y1", (2, 4, 5, 5))
    g.out("Y2", (2, 4, 5, 5))
    return make_model(g.build(), 13, 7)


@fixture("conv_bn_conv_out_graph_output.onnx",
         "Conv output is also a graph output", 1, 0,
         skipped={"layer_output_is_graph_output": 1})
def _():
    name = "conv_bn_conv_out_graph_output"
    rng = rng_for(name)
    g = G(name)
    g.inp("X", (2, 3, 5, 5))
    c, _s = add_conv(g, rng, "X", 3, 4, (5, 5), "conv")
    add_bn(g, c, add_bn_inits(g, rng, 4, "bn"), "Y", "bn")
    g.out("Y", (2, 4, 5, 5))
    g.out(c, (2, 4, 5, 5))
    return make_model(g.build(), 13, 7)


@fixture("conv_bn_training_mode14.onnx",
         "opset 14 BN with training_mode=1 (running_mean/var outputs, as schema 14 requires)",
         1, 0, skipped={"bn_training_mode": 1}, equivalence=False)
def _():
    name = "conv_bn_training_mode14"
    rng = rng_for(name)
    g = G(name)
    g.inp("X", (2, 3, 5, 5))
    c, _s = add_conv(g, rng, "X", 3, 4, (5, 5), "conv")
    p = add_bn_inits(g, rng, 4, "bn")
    g.node("BatchNormalization", [c] + p, ["Y", "running_mean", "running_var"], name="bn",
           training_mode=1)
    g.out("Y", (2, 4, 5, 5))
    g.out("running_mean", (4,))
    g.out("running_var", (4,))
    return make_model(g.build(), 14, 7)


@fixture("conv_bn_training_outputs9.onnx",
         "opset 9 BN with all 5 outputs; running mean/var are graph outputs", 1, 0,
         skipped={"bn_training_mode": 1}, equivalence=False)
def _():
    name = "conv_bn_training_outputs9"
    rng = rng_for(name)
    g = G(name)
    g.inp("X", (2, 3, 5, 5))
    c, _s = add_conv(g, rng, "X", 3, 4, (5, 5), "conv")
    p = add_bn_inits(g, rng, 4, "bn")
    # BN-9 allows 1 or 5 outputs; saved_mean/saved_var are produced but unused.
    g.node("BatchNormalization", [c] + p,
           ["Y", "running_mean", "running_var", "saved_mean", "saved_var"], name="bn")
    g.out("Y", (2, 4, 5, 5))
    g.out("running_mean", (4,))
    g.out("running_var", (4,))
    return make_model(g.build(), 9, 4)


@fixture("conv_bn_opset6_is_test0.onnx",
         "opset 6 / IR 3 BN without is_test (defaults to 0 = training)", 1, 0,
         skipped={"bn_training_mode": 1}, equivalence=False)
def _():
    return simple_conv_bn("conv_bn_opset6_is_test0", 6, 3, inits_as_inputs=True)


@fixture("conv_bn_spatial0.onnx",
         "opset 7 / IR 3 BN spatial=0 with per-activation params of shape [C,H,W]", 1, 0,
         skipped={"bn_not_spatial": 1}, equivalence=False)
def _():
    name = "conv_bn_spatial0"
    rng = rng_for(name)
    g = G(name)
    g.inp("X", (2, 3, 5, 5))
    c, _s = add_conv(g, rng, "X", 3, 4, (5, 5), "conv")
    vals = bn_params(rng, 4 * 5 * 5)
    p = [g.init("bn_" + s, v.reshape(4, 5, 5)) for s, v in zip(("scale", "B", "mean", "var"), vals)]
    add_bn(g, c, p, "Y", "bn", spatial=0)
    g.out("Y", (2, 4, 5, 5))
    return make_model(g.build(inits_as_inputs=True), 7, 3)


@fixture("conv_bn_param_runtime.onnx",
         "BN scale is a graph input without initializer", 1, 0,
         skipped={"param_not_constant": 1})
def _():
    name = "conv_bn_param_runtime"
    rng = rng_for(name)
    g = G(name)
    g.inp("X", (2, 3, 5, 5))
    g.inp("bn_scale", (4,))
    c, _s = add_conv(g, rng, "X", 3, 4, (5, 5), "conv")
    _sc, b, m, v = add_bn_inits(g, rng, 4, "bn")
    g.inits = [t for t in g.inits if t.name != "bn_scale"]
    add_bn(g, c, ["bn_scale", b, m, v], "Y", "bn")
    g.out("Y", (2, 4, 5, 5))
    return make_model(g.build(), 13, 7)


@fixture("conv_bn_param_computed.onnx",
         "BN mean = Add(init, init): computed from constants, evaluated (rounded to float32 as a runtime "
         "would) and folded; the Add goes too", 1, 1, patterns={"conv_bn": 1})
def _():
    name = "conv_bn_param_computed"
    rng = rng_for(name)
    g = G(name)
    g.inp("X", (2, 3, 5, 5))
    c, _s = add_conv(g, rng, "X", 3, 4, (5, 5), "conv")
    sc, b, m, v = add_bn_inits(g, rng, 4, "bn")
    g.init("mean_offset", rng.normal(0.0, 0.1, 4).astype(F32))
    g.node("Add", [m, "mean_offset"], ["bn_mean_sum"], name="mean_add")
    add_bn(g, c, [sc, b, "bn_mean_sum", v], "Y", "bn")
    g.out("Y", (2, 4, 5, 5))
    return make_model(g.build(), 13, 7)


@fixture("conv_bn_overridable.onnx",
         "IR 8, all initializers also listed in graph.input, no flag", 1, 0,
         skipped={"param_is_graph_input": 1})
def _():
    return simple_conv_bn("conv_bn_overridable", 15, 8, inits_as_inputs=True)


@fixture("conv_bn_weight_runtime.onnx",
         "Conv weight is a graph input without initializer", 1, 0,
         skipped={"weight_not_constant": 1})
def _():
    name = "conv_bn_weight_runtime"
    rng = rng_for(name)
    g = G(name)
    g.inp("X", (2, 3, 5, 5))
    g.inp("conv_W", (4, 3, 3, 3))
    g.init("conv_B", conv_bias(rng, 4))
    g.node("Conv", ["X", "conv_W", "conv_B"], ["conv_out"], name="conv",
           kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    add_bn(g, "conv_out", add_bn_inits(g, rng, 4, "bn"), "Y", "bn")
    g.out("Y", (2, 4, 5, 5))
    return make_model(g.build(), 13, 7)


@fixture("conv_bn_bad_weight_shape.onnx",
         "2-D Conv (kernel_shape [3,3]) whose weight initializer has rank 2, shape [4,27]; "
         "W.dims[0] matches the BN length", 1, 0,
         skipped={"bad_weight_shape": 1}, equivalence=False)
def _():
    name = "conv_bn_bad_weight_shape"
    rng = rng_for(name)
    g = G(name)
    g.inp("X", (2, 3, 5, 5))
    g.init("conv_W", conv_weight(rng, (4, 27)))
    g.init("conv_B", conv_bias(rng, 4))
    g.node("Conv", ["X", "conv_W", "conv_B"], ["conv_out"], name="conv",
           kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    add_bn(g, "conv_out", add_bn_inits(g, rng, 4, "bn"), "Y", "bn")
    g.out("Y", (2, 4, 5, 5))
    return make_model(g.build(), 13, 7)


@fixture("conv_bn_channel_mismatch.onnx",
         "Conv has 4 output channels, BN params have length 3", 1, 0,
         skipped={"channel_mismatch": 1}, equivalence=False)
def _():
    name = "conv_bn_channel_mismatch"
    rng = rng_for(name)
    g = G(name)
    g.inp("X", (2, 3, 5, 5))
    c, _s = add_conv(g, rng, "X", 3, 4, (5, 5), "conv")
    add_bn(g, c, add_bn_inits(g, rng, 3, "bn"), "Y", "bn")
    g.out("Y", (2, 4, 5, 5))
    return make_model(g.build(), 13, 7)


@fixture("conv_bn_negative_var.onnx",
         "BN var = -1 on channel 1 (var+eps <= 0)", 1, 0,
         skipped={"nonpositive_variance": 1}, equivalence=False)
def _():
    name = "conv_bn_negative_var"
    rng = rng_for(name)
    g = G(name)
    g.inp("X", (2, 3, 5, 5))
    c, _s = add_conv(g, rng, "X", 3, 4, (5, 5), "conv")
    gamma, beta, mean, var = bn_params(rng, 4)
    var[1] = -1.0
    p = [g.init("bn_" + s, v) for s, v in zip(("scale", "B", "mean", "var"), (gamma, beta, mean, var))]
    add_bn(g, c, p, "Y", "bn", epsilon=1e-5)
    g.out("Y", (2, 4, 5, 5))
    return make_model(g.build(), 13, 7)


def set_element(g, name, index, value):
    """Set one element of initializer `name` of g (stored as raw_data again)."""
    t = [t for t in g.inits if t.name == name][0]
    arr = numpy_helper.to_array(t).copy()
    arr[index] = value
    t.CopyFrom(make_tensor(name, arr))


def nonfinite_fixture(name, which, value):
    rng = rng_for(name)
    g = G(name)
    g.inp("X", (2, 3, 5, 5))
    c, _s = add_conv(g, rng, "X", 3, 4, (5, 5), "conv")
    params = dict(zip(("scale", "B", "mean", "var"), bn_params(rng, 4)))
    if which in params:
        params[which][2] = value
    else:  # conv bias
        set_element(g, "conv_B", 0, value)
    p = [g.init("bn_" + s, params[s]) for s in ("scale", "B", "mean", "var")]
    add_bn(g, c, p, "Y", "bn")
    g.out("Y", (2, 4, 5, 5))
    return make_model(g.build(), 13, 7)


@fixture("conv_bn_nan.onnx", "BN scale (gamma) is NaN on channel 2", 1, 0,
         skipped={"non_finite_param": 1}, equivalence=False)
def _():
    return nonfinite_fixture("conv_bn_nan", "scale", np.nan)


@fixture("conv_bn_nan_weight.onnx",
         "Conv weight (2.3 KB, read in place) holds a NaN: met while scaling, folded again with the scan", 1, 0,
         skipped={"non_finite_param": 1}, equivalence=False)
def _():
    name = "conv_bn_nan_weight"
    rng = rng_for(name)
    g = G(name)
    g.inp("X", (1, 8, 5, 5))
    c, _s = add_conv(g, rng, "X", 8, 8, (5, 5), "conv")
    set_element(g, "conv_W", (5, 1, 1, 1), np.nan)
    p = [g.init("bn_" + s, v) for s, v in zip(("scale", "B", "mean", "var"), bn_params(rng, 8))]
    add_bn(g, c, p, "Y", "bn")
    g.out("Y", (1, 8, 5, 5))
    return make_model(g.build(), 13, 7)


@fixture("conv_bn_inf.onnx", "BN B (beta) is +Inf on channel 2", 1, 0,
         skipped={"non_finite_param": 1}, equivalence=False)
def _():
    return nonfinite_fixture("conv_bn_inf", "B", np.inf)


@fixture("conv_bn_inf_bias.onnx", "Conv bias is -Inf on channel 0 (BN params finite)", 1, 0,
         skipped={"non_finite_param": 1}, equivalence=False)
def _():
    return nonfinite_fixture("conv_bn_inf_bias", "conv_bias", -np.inf)



# ---------------------------------------------------------------- other layers (issue 4)

def convtranspose_bn(name, cin, cout, group, bias, spatial=(4, 4), k=3, stride=2, out_pad=1, pad=1,
                     dtype=F32, fmt="raw", opset=13, ir=7):
    """X -> ConvTranspose(group, stride, output_padding) -> BN -> Y.
    Weight [C_in, C_out/group, k, k]."""
    rng = rng_for(name)
    g = G(name, dtype)
    g.inp("X", (2, cin) + spatial)
    w = conv_weight(rng, (cin, cout // group, k, k))
    ins = ["X", g.init("ct_W", w, fmt)]
    if bias:
        ins.append(g.init("ct_B", conv_bias(rng, cout), fmt))
    g.node("ConvTranspose", ins, ["ct_out"], name="ct", kernel_shape=[k, k], strides=[stride, stride],
           pads=[pad] * 4, output_padding=[out_pad, out_pad], group=group)
    osp = tuple((n - 1) * stride - 2 * pad + k + out_pad for n in spatial)
    add_bn(g, "ct_out", add_bn_inits(g, rng, cout, "bn", fmt=fmt), "Y", "bn")
    g.out("Y", (2, cout) + osp)
    return make_model(g.build(), opset, ir)


@fixture("convtranspose_bn.onnx", "ConvTranspose (group 1, stride 2, output_padding 1, bias) -> BN",
         1, 1, patterns={"convtranspose_bn": 1})
def _():
    return convtranspose_bn("convtranspose_bn", 3, 4, 1, True)


@fixture("convtranspose_bn_group2.onnx", "ConvTranspose group 2 (weight [4, 3, 3, 3], C_out 6), no bias -> BN",
         1, 1, patterns={"convtranspose_bn": 1})
def _():
    return convtranspose_bn("convtranspose_bn_group2", 4, 6, 2, False)


@fixture("convtranspose_bn_depthwise.onnx", "depthwise ConvTranspose (group = C_in = C_out = 4) -> BN",
         1, 1, patterns={"convtranspose_bn": 1})
def _():
    return convtranspose_bn("convtranspose_bn_depthwise", 4, 4, 4, True)


@fixture("convtranspose_add_bn.onnx",
         "ConvTranspose without bias -> Add([C,1,1] constant) -> BN, as PaddleOCR exports: "
         "the Add becomes the bias, then the BN folds", 1, 1,
         patterns={"convtranspose_add": 1, "convtranspose_bn": 1}, affine_folded=1)
def _():
    name = "convtranspose_add_bn"
    rng = rng_for(name)
    g = G(name)
    g.inp("X", (2, 4, 4, 4))
    g.init("ct_W", conv_weight(rng, (4, 3, 2, 2)))
    g.node("ConvTranspose", ["X", "ct_W"], ["ct_out"], name="ct", kernel_shape=[2, 2], strides=[2, 2])
    g.init("add_C", conv_bias(rng, 3).reshape(3, 1, 1))
    g.node("Add", ["ct_out", "add_C"], ["add_out"], name="add")
    add_bn(g, "add_out", add_bn_inits(g, rng, 3, "bn"), "Y", "bn")
    g.out("Y", (2, 3, 8, 8))
    return make_model(g.build(), 11, 7)


def gemm_bn(name, trans_b, c_shape, alpha=1.0, beta=1.0, m=2, k=5, n=4, dtype=F32, fmt="raw",
            bn_fmt=None, stats_dtype=None, opset=13, ir=7):
    """A -> Gemm -> BN -> Y; stats_dtype: BN mean/var in another type (BN-15)."""
    rng = rng_for(name)
    g = G(name, dtype)
    g.inp("A", (m, k))
    b = conv_weight(rng, (n, k) if trans_b else (k, n))
    ins = ["A", g.init("gemm_B", b, fmt)]
    if c_shape is not None:
        ins.append(g.init("gemm_C", rng.normal(0, 0.3, c_shape).astype(F32), fmt))
    attrs = {}
    if trans_b:
        attrs["transB"] = 1
    if alpha != 1.0:
        attrs["alpha"] = alpha
    if beta != 1.0:
        attrs["beta"] = beta
    g.node("Gemm", ins, ["gemm_out"], name="gemm", **attrs)
    add_bn(g, "gemm_out", add_bn_inits(g, rng, n, "bn", fmt=bn_fmt or fmt, stats_dtype=stats_dtype),
           "Y", "bn")
    g.out("Y", (m, n))
    return make_model(g.build(), opset, ir)


@fixture("gemm_bn_transb0.onnx", "Gemm transB=0 (B [K,N]: columns scale), C [N] -> BN", 1, 1,
         patterns={"gemm_bn": 1})
def _():
    return gemm_bn("gemm_bn_transb0", False, (4,))


@fixture("gemm_bn_transb1.onnx", "Gemm transB=1 (B [N,K]: rows scale), alpha 0.5, beta 2, C [1,N] -> BN",
         1, 1, patterns={"gemm_bn": 1})
def _():
    return gemm_bn("gemm_bn_transb1", True, (1, 4), alpha=0.5, beta=2.0)


@fixture("gemm_bn_noc.onnx", "Gemm without C, alpha 2 -> BN (C is created)", 1, 1, patterns={"gemm_bn": 1})
def _():
    return gemm_bn("gemm_bn_noc", False, None, alpha=2.0)


@fixture("gemm_bn_scalar_c.onnx", "Gemm with a one-element C, beta 0.5 -> BN (C broadcast to [N])", 1, 1,
         patterns={"gemm_bn": 1})
def _():
    return gemm_bn("gemm_bn_scalar_c", True, (1,), beta=0.5)


@fixture("conv_bn_bf16.onnx",
         "bfloat16 throughout: Conv with bias -> BN (ORT CPU has no bfloat16 Conv; "
         "the Conv type constraints of onnx 1.12 full_check reject bfloat16)", 1, 1,
         equivalence=False, full_check=False, patterns={"conv_bn": 1})
def _():
    name = "conv_bn_bf16"
    rng = rng_for(name)
    gamma, beta, mean, var = bn_params(rng, 4)
    inits = [bf16_tensor("conv_W", conv_weight(rng, (4, 3, 3, 3))), bf16_tensor("conv_B", conv_bias(rng, 4)),
             bf16_tensor("bn_scale", gamma), bf16_tensor("bn_B", beta), bf16_tensor("bn_mean", mean),
             bf16_tensor("bn_var", var)]
    nodes = [helper.make_node("Conv", ["X", "conv_W", "conv_B"], ["conv_out"], name="conv",
                              kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["conv_out", "bn_scale", "bn_B", "bn_mean", "bn_var"], ["Y"],
                              name="bn")]
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("X", TensorProto.BFLOAT16, [2, 3, 5, 5])],
                              [helper.make_tensor_value_info("Y", TensorProto.BFLOAT16, [2, 4, 5, 5])], inits)
    return make_model(graph, 15, 8)


def matmul_bn(name, a_shape, n, bn_c, value_info=True, relu_first=False, dtype=F32, fmt="raw",
              stats_dtype=None, opset=13, ir=7):
    rng = rng_for(name)
    g = G(name, dtype)
    g.inp("A", a_shape)
    a = "A"
    if relu_first:
        g.node("Relu", ["A"], ["a_relu"], name="relu")
        a = "a_relu"
        if value_info:
            g.vi("a_relu", a_shape)
    g.init("mm_B", conv_weight(rng, (a_shape[-1], n)), fmt)
    g.node("MatMul", [a, "mm_B"], ["mm_out"], name="mm")
    add_bn(g, "mm_out", add_bn_inits(g, rng, bn_c, "bn", fmt=fmt, stats_dtype=stats_dtype), "Y", "bn")
    g.out("Y", tuple(a_shape[:-1]) + (n,))
    return make_model(g.build(), opset, ir)


@fixture("matmul_bn.onnx", "MatMul (A [2,5], constant B [5,4]) -> BN: becomes one Gemm with a bias",
         1, 1, patterns={"matmul_bn": 1})
def _():
    return matmul_bn("matmul_bn", (2, 5), 4, 4)


@fixture("matmul_bn_rank3.onnx",
         "MatMul with A [2,3,5] -> BN: BN's channel axis is 1 (length 3), not the MatMul's last axis",
         1, 0, skipped={"channel_axis_mismatch": 1})
def _():
    return matmul_bn("matmul_bn_rank3", (2, 3, 5), 4, 3)


@fixture("matmul_bn_relu_rank.onnx",
         "MatMul whose input comes from a Relu with no recorded shape -> BN: the rank follows the Relu back",
         1, 1, patterns={"matmul_bn": 1})
def _():
    return matmul_bn("matmul_bn_relu_rank", (2, 5), 4, 4, value_info=False, relu_first=True)


@fixture("matmul_bn_unknown_rank.onnx",
         "MatMul whose input comes from an op of a custom domain (its output rank is unknown) -> BN "
         "(shape_unknown; onnxruntime cannot run the custom op)",
         1, 0, skipped={"shape_unknown": 1}, equivalence=False)
def _():
    m = matmul_bn("matmul_bn_unknown_rank", (2, 5), 4, 4)
    mm = next(n for n in m.graph.node if n.op_type == "MatMul")
    mm.input[0] = "opaque_out"
    m.graph.node.insert(0, helper.make_node("Opaque", ["A"], ["opaque_out"], name="opaque", domain="com.example"))
    m.opset_import.append(helper.make_opsetid("com.example", 1))
    return m


def conv_affine(name, ops, bias=True):
    """X -> Conv -> (Mul|Add with per-channel constants)... -> Y.  ops: list of
    (op, const shape) applied in order; the constant is put on the left for Mul."""
    rng = rng_for(name)
    g = G(name)
    g.inp("X", (2, 3, 5, 5))
    cur, _s = add_conv(g, rng, "X", 3, 4, (5, 5), "conv", bias=bias)
    for i, (op, shape) in enumerate(ops):
        vals = (rng.uniform(0.5, 1.5, shape) * np.where(rng.rand(*shape) < 0.3, -1, 1)).astype(F32) \
            if op == "Mul" else rng.normal(0, 0.5, shape).astype(F32)
        cname = g.init("%s%d_const" % (op.lower(), i), vals)
        out = "Y" if i == len(ops) - 1 else "%s%d_out" % (op.lower(), i)
        ins = [cname, cur] if op == "Mul" else [cur, cname]
        g.node(op, ins, [out], name="%s%d" % (op.lower(), i))
        cur = out
    g.out("Y", (2, 4, 5, 5))
    return make_model(g.build(), 13, 7)


@fixture("conv_mul_add.onnx", "Conv -> Mul([4,1,1]) -> Add([1,4,1,1]): an exported inference BN",
         0, 0, patterns={"conv_mul": 1, "conv_add": 1}, affine_folded=2)
def _():
    return conv_affine("conv_mul_add", [("Mul", (4, 1, 1)), ("Add", (1, 4, 1, 1))])


@fixture("conv_mul_scalar.onnx", "Conv without bias -> Mul(scalar): the weight scales, no bias is added",
         0, 0, patterns={"conv_mul": 1}, affine_folded=1)
def _():
    return conv_affine("conv_mul_scalar", [("Mul", ())], bias=False)


@fixture("conv_add.onnx", "Conv without bias -> Add([4,1,1]): the constant becomes the bias",
         0, 0, patterns={"conv_add": 1}, affine_folded=1)
def _():
    return conv_affine("conv_add", [("Add", (4, 1, 1))], bias=False)


@fixture("conv_add_spatial.onnx", "Conv -> Add([1,4,5,5]) varies over space: not a bias, stays",
         0, 0, patterns={}, byte_identical=True, affine_skipped={"channel_mismatch": 1})
def _():
    return conv_affine("conv_add_spatial", [("Add", (1, 4, 5, 5))])


def bn_conv(name, group=1, pads=0, auto_pad=None, bias=True, extra_reader=False, cin=4, cout=6):
    rng = rng_for(name)
    g = G(name)
    g.inp("X", (2, cin, 6, 6))
    add_bn(g, "X", add_bn_inits(g, rng, cin, "bn"), "bn_out", "bn")
    w = conv_weight(rng, (cout, cin // group, 3, 3))
    ins = ["bn_out", g.init("conv_W", w)]
    if bias:
        ins.append(g.init("conv_B", conv_bias(rng, cout)))
    attrs = dict(kernel_shape=[3, 3], group=group)
    if auto_pad:
        attrs["auto_pad"] = auto_pad
    else:
        attrs["pads"] = [pads] * 4
    g.node("Conv", ins, ["Y"], name="conv", **attrs)
    osp = 6 if (auto_pad or pads) else 4
    g.out("Y", (2, cout, osp, osp))
    if extra_reader:
        g.node("Relu", ["bn_out"], ["R"], name="relu")
        g.out("R", (2, cin, 6, 6))
    return make_model(g.build(), 13, 7)


@fixture("bn_conv.onnx", "BN on the graph input -> Conv without padding: folds into the Conv's input channels",
         1, 1, patterns={"bn_conv": 1})
def _():
    return bn_conv("bn_conv")


@fixture("bn_conv_group.onnx", "BN -> grouped Conv (group 2), no padding, no bias: folds, bias created",
         1, 1, patterns={"bn_conv": 1})
def _():
    return bn_conv("bn_conv_group", group=2, bias=False)


@fixture("bn_conv_padded.onnx", "BN -> Conv with pads 1: the shift would reach the zero border",
         1, 0, skipped={"bn_before_conv_with_padding": 1})
def _():
    return bn_conv("bn_conv_padded", pads=1)


@fixture("bn_conv_same.onnx", "BN -> Conv with auto_pad SAME_UPPER: skipped",
         1, 0, skipped={"bn_before_conv_with_padding": 1})
def _():
    return bn_conv("bn_conv_same", auto_pad="SAME_UPPER")


@fixture("bn_conv_two_readers.onnx", "BN output read by a Conv and a Relu: nothing to fold into",
         1, 0, skipped={"no_linear_producer": 1})
def _():
    return bn_conv("bn_conv_two_readers", extra_reader=True)


def conv_transposes_bn(name, perms):
    """X -> Conv -> Transpose(p) for p in perms (with an Identity between) -> BN -> Y."""
    rng = rng_for(name)
    g = G(name)
    g.inp("X", (2, 3, 5, 5))
    cur, _s = add_conv(g, rng, "X", 3, 4, (5, 5), "conv")
    shape = [2, 4, 5, 5]
    for i, perm in enumerate(perms):
        out = "t%d" % i
        g.node("Transpose", [cur], [out], name="transpose%d" % i, perm=list(perm))
        shape = [shape[k] for k in perm]
        cur = out
        if i == 0:
            g.node("Identity", [cur], ["ident"], name="identity")
            cur = "ident"
    add_bn(g, cur, add_bn_inits(g, rng, shape[1], "bn"), "Y", "bn")
    g.out("Y", tuple(shape))
    return make_model(g.build(), 13, 7)


@fixture("conv_nhwc_roundtrip_bn.onnx",
         "Conv -> Transpose(0,2,3,1) -> Identity -> Transpose(0,3,1,2) -> BN, as TF converters emit: the "
         "transposes undo each other, so the BN folds into the Conv", 1, 1, patterns={"conv_bn": 1})
def _():
    return conv_transposes_bn("conv_nhwc_roundtrip_bn", [(0, 2, 3, 1), (0, 3, 1, 2)])


@fixture("conv_transpose_moves_channel_bn.onnx",
         "Conv -> Transpose(0,2,1,3) -> BN: the BN's channel axis is the Conv's height, nothing to fold",
         1, 0, skipped={"channel_axis_mismatch": 1})
def _():
    return conv_transposes_bn("conv_transpose_moves_channel_bn", [(0, 2, 1, 3)])

# ---------------------------------------------------------------- mixed / other

@fixture("conv_bn_mixed.onnx",
         "conv1->bn1 folds; bn2 after Relu feeds conv2, which pads (bn_before_conv_with_padding); "
         "conv2 output is a graph output so bn3 is skipped (layer_output_is_graph_output)",
         3, 1, skipped={"bn_before_conv_with_padding": 1, "layer_output_is_graph_output": 1})
def _():
    name = "conv_bn_mixed"
    rng = rng_for(name)
    g = G(name)
    g.inp("X", (2, 3, 6, 6))
    c1, _s = add_conv(g, rng, "X", 3, 4, (6, 6), "conv1")
    add_bn(g, c1, add_bn_inits(g, rng, 4, "bn1"), "bn1_out", "bn1")
    g.node("Relu", ["bn1_out"], ["relu1_out"], name="relu1")
    add_bn(g, "relu1_out", add_bn_inits(g, rng, 4, "bn2"), "bn2_out", "bn2")
    c2, _s = add_conv(g, rng, "bn2_out", 4, 5, (6, 6), "conv2", bias=False)
    add_bn(g, c2, add_bn_inits(g, rng, 5, "bn3"), "Y", "bn3")
    g.out("Y", (2, 5, 6, 6))
    g.out(c2, (2, 5, 6, 6))
    return make_model(g.build(), 13, 7)


@fixture("nothing_to_fold.onnx", "Conv->Relu, no BN: output must be byte-identical", 0, 0,
         byte_identical=True)
def _():
    name = "nothing_to_fold"
    rng = rng_for(name)
    g = G(name)
    g.inp("X", (2, 3, 5, 5))
    c, _s = add_conv(g, rng, "X", 3, 4, (5, 5), "conv")
    g.node("Relu", [c], ["Y"], name="relu")
    g.out("Y", (2, 4, 5, 5))
    return make_model(g.build(), 13, 7)


@fixture("demo.onnx",
         "README demo: ResNet-like block (conv-bn-relu-conv-bn + projection conv-bn, Add, "
         "Relu, GlobalAveragePool, Flatten, Gemm); 3 fusions", 3, 3)
def _():
    name = "demo"
    rng = rng_for(name)
    g = G("resnet_block")
    g.inp("input", (2, 3, 8, 8))
    # main path
    g.init("conv1.weight", conv_weight(rng, (8, 3, 3, 3)))
    g.node("Conv", ["input", "conv1.weight"], ["conv1_out"], name="conv1",
           kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    add_bn(g, "conv1_out", add_bn_inits(g, rng, 8, "bn1"), "bn1_out", "bn1")
    g.node("Relu", ["bn1_out"], ["relu1_out"], name="relu1")
    g.init("conv2.weight", conv_weight(rng, (8, 8, 3, 3)))
    g.node("Conv", ["relu1_out", "conv2.weight"], ["conv2_out"], name="conv2",
           kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    add_bn(g, "conv2_out", add_bn_inits(g, rng, 8, "bn2"), "bn2_out", "bn2")
    # projection shortcut
    g.init("downsample.weight", conv_weight(rng, (8, 3, 1, 1)))
    g.node("Conv", ["input", "downsample.weight"], ["downsample_out"], name="downsample_conv",
           kernel_shape=[1, 1])
    add_bn(g, "downsample_out", add_bn_inits(g, rng, 8, "downsample_bn"), "downsample_bn_out",
           "downsample_bn")
    g.node("Add", ["bn2_out", "downsample_bn_out"], ["add_out"], name="add")
    g.node("Relu", ["add_out"], ["relu2_out"], name="relu2")
    g.node("GlobalAveragePool", ["relu2_out"], ["pool_out"], name="pool")
    g.node("Flatten", ["pool_out"], ["flat_out"], name="flatten", axis=1)
    g.init("fc.weight", conv_weight(rng, (10, 8)))
    g.init("fc.bias", conv_bias(rng, 10))
    g.node("Gemm", ["flat_out", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1)
    g.out("logits", (2, 10))
    return make_model(g.build(), 13, 7)


# ---------------------------------------------------------------- data types (issue 5)
#
# ORT 1.30 (CPU) runs float16 Conv/ConvTranspose/Gemm/BN and float64 Gemm/BN,
# but has no float64 Conv and no bfloat16 Gemm/MatMul kernel: those fixtures
# rely on the numpy oracle ("numeric") instead of equivalence.
#
# float16 tolerances: the fold rounds each folded weight to float16 (half an
# ulp, up to 2^-11 relative) where the original rounds the Conv output to
# float16 before BN, and both round their output to float16, so the two
# outputs may differ by an ulp.  The driver compares them decoded to float32
# with rtol 1e-3 and atol 4e-3: values one float16 ulp apart always pass (an
# ulp is at most 2^-10 = 9.8e-4 of the value), and below |y| = 4 two ulps do,
# because values near 0 have no relative precision to speak of.  Measured:
# never more than one ulp apart (worst margin 0.86, 3.9e-3 at |y| = 4.5).
FP16_TOL = dict(rtol16=1e-3, atol16=4e-3)


@fixture("conv_bn_fp16.onnx",
         "float16 Conv with bias -> BN (float16 params), all raw_data, opset 15", 1, 1,
         patterns={"conv_bn": 1}, numeric=True, tol=FP16_TOL)
def _():
    return simple_conv_bn("conv_bn_fp16", 15, 8, cin=3, cout=4, spatial=(6, 6), dtype=F16)


@fixture("conv_bn_fp16_depthwise.onnx",
         "float16 depthwise Conv (64 channels, weight [64,1,3,3]: 1152 bytes, streamed) -> BN",
         1, 1, patterns={"conv_bn": 1}, numeric=True, tol=FP16_TOL)
def _():
    return simple_conv_bn("conv_bn_fp16_depthwise", 15, 8, cin=64, cout=64, spatial=(4, 4),
                          group=64, dtype=F16)


@fixture("conv_bn_fp16_typed.onnx",
         "float16 Conv without bias -> BN, every tensor in int32_data (float16 bit patterns); "
         "the new bias is float16", 1, 1, patterns={"conv_bn": 1}, numeric=True, tol=FP16_TOL)
def _():
    return simple_conv_bn("conv_bn_fp16_typed", 15, 8, cin=3, cout=5, dtype=F16, bias=False,
                          fmt="typed", relu_after=True)


@fixture("conv_bn_fp16_mixed15.onnx",
         "BN-15 with mixed types: X, scale, B float16, mean and var float32 (T2); "
         "the Conv weight stays float16", 1, 1, patterns={"conv_bn": 1}, numeric=True,
         tol=FP16_TOL)
def _():
    name = "conv_bn_fp16_mixed15"
    rng = rng_for(name)
    g = G(name, F16)
    g.inp("X", (2, 3, 5, 5))
    c, _s = add_conv(g, rng, "X", 3, 4, (5, 5), "conv")
    p = add_bn_inits(g, rng, 4, "bn", fmts=("raw", "typed", "raw", "typed"), stats_dtype=F32)
    add_bn(g, c, p, "Y", "bn")
    g.out("Y", (2, 4, 5, 5))
    return make_model(g.build(), 15, 8)


@fixture("gemm_bn_fp16.onnx",
         "float16 Gemm transB=1, C [N] in int32_data -> BN (float16 params in raw_data)", 1, 1,
         patterns={"gemm_bn": 1}, numeric=True, tol=FP16_TOL)
def _():
    return gemm_bn("gemm_bn_fp16", True, (4,), dtype=F16, fmt="typed", bn_fmt="raw", opset=15, ir=8)


@fixture("convtranspose_bn_fp16.onnx",
         "float16 ConvTranspose group 2 (weight [4, 3, 3, 3]) with bias -> BN", 1, 1,
         patterns={"convtranspose_bn": 1}, numeric=True, tol=FP16_TOL)
def _():
    return convtranspose_bn("convtranspose_bn_fp16", 4, 6, 2, True, dtype=F16, opset=15, ir=8)


@fixture("gemm_bn_bf16.onnx",
         "bfloat16 Gemm transB=0, B [40, 16] (1280 bytes: streamed), C [N], beta 0.5 -> BN, all "
         "raw_data (ORT has no bfloat16 Gemm: numpy oracle only)", 1, 1, equivalence=False,
         patterns={"gemm_bn": 1}, numeric=True)
def _():
    return gemm_bn("gemm_bn_bf16", False, (16,), beta=0.5, k=40, n=16, dtype=BF16, opset=15, ir=8)


@fixture("matmul_bn_bf16_typed.onnx",
         "bfloat16 MatMul (B in int32_data) -> BN-15 with float32 mean/var: becomes a bfloat16 "
         "Gemm (numpy oracle only)", 1, 1, equivalence=False, patterns={"matmul_bn": 1},
         numeric=True)
def _():
    return matmul_bn("matmul_bn_bf16_typed", (2, 5), 4, 4, dtype=BF16, fmt="typed",
                     stats_dtype=F32, opset=15, ir=8)


@fixture("gemm_bn_double.onnx",
         "float64 Gemm transB=1, B and BN params in double_data, C [1,N] raw -> BN "
         "(ORT runs float64 Gemm)", 1, 1, patterns={"gemm_bn": 1}, numeric=True)
def _():
    return gemm_bn("gemm_bn_double", True, (1, 4), alpha=0.5, dtype=F64, fmt="typed", opset=15, ir=8)


@fixture("conv_bn_fp16_overflow.onnx",
         "float16: conv1's folded weight (40000 x 4.7) and conv2's folded bias ((0 + 30000) x 2.9) "
         "exceed 65504: both skipped, nothing written as Inf", 2, 0,
         skipped={"overflow": 2}, equivalence=False)
def _():
    name = "conv_bn_fp16_overflow"
    rng = rng_for(name)
    g = G(name, F16)
    g.inp("X", (2, 3, 5, 5))
    w1 = conv_weight(rng, (4, 3, 3, 3))
    w1[0, 0, 0, 0] = 40000.0
    g.init("conv1_W", w1)
    g.node("Conv", ["X", "conv1_W"], ["conv1_out"], name="conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    g1, b1, m1, v1 = bn_params(rng, 4, F64)
    g1[0], v1[0] = 1.5, 0.1  # s = 1.5 / sqrt(0.1) = 4.74
    p1 = [g.init("bn1_" + k, v) for k, v in zip(("scale", "B", "mean", "var"), (g1, b1, m1, v1))]
    add_bn(g, "conv1_out", p1, "Y1", "bn1")
    c2, _s = add_conv(g, rng, "X", 3, 4, (5, 5), "conv2", bias=False)
    g2, b2, m2, v2 = bn_params(rng, 4, F64)
    g2[1], v2[1], m2[1] = 1.3, 0.2, -30000.0  # bias (0 - mean) * s = 30000 * 2.9
    p2 = [g.init("bn2_" + k, v) for k, v in zip(("scale", "B", "mean", "var"), (g2, b2, m2, v2))]
    add_bn(g, c2, p2, "Y2", "bn2")
    g.out("Y1", (2, 4, 5, 5))
    g.out("Y2", (2, 4, 5, 5))
    return make_model(g.build(), 15, 8)


# --------------------------------------------------------------------------
# checks and output


def iter_graphs(graph):
    yield graph
    for n in graph.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                yield from iter_graphs(a.g)
            elif a.type == onnx.AttributeProto.GRAPHS:
                for sg in a.graphs:
                    yield from iter_graphs(sg)


def count_bn(model):
    """BatchNormalization nodes in the graphs and function bodies."""
    bodies = list(iter_graphs(model.graph)) + list(model.functions)
    return sum(1 for g in bodies for n in g.node
               if n.op_type == "BatchNormalization" and n.domain in ("", "ai.onnx"))


def topo_sorted(model):
    """Copy of model with the main graph's nodes in topological order."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    nodes = list(m.graph.node)
    avail = {i.name for i in m.graph.input} | {t.name for t in m.graph.initializer} | {""}
    ordered = []
    pending = nodes
    while pending:
        rest = []
        for n in pending:
            if all(i in avail for i in n.input):
                ordered.append(n)
                avail.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            raise RuntimeError("graph has a cycle or undefined input")
        pending = rest
    del m.graph.node[:]
    m.graph.node.extend(ordered)
    return m


def run_checker(model, full):
    try:
        onnx.checker.check_model(model, full_check=full)
        return None
    except Exception as e:  # noqa: BLE001 - report any checker failure
        return "%s: %s" % (type(e).__name__, str(e).strip().splitlines()[0] if str(e).strip() else "")


def verify(fx, model):
    name = fx["file"]
    errs = []
    plain = run_checker(model, False)
    full = run_checker(model, True) if plain is None else plain
    if fx["checker"]:
        if plain is not None:
            errs.append("onnx.checker rejects the model: " + plain)
        if fx["full_check"] and full is not None:
            errs.append("full_check fails: " + full)
        if not fx["full_check"] and full is None:
            errs.append("full_check unexpectedly passes (update the expectation)")
    else:
        if plain is None:
            errs.append("checker was expected to reject the model but accepts it")
        sorted_m = topo_sorted(model)
        err = run_checker(sorted_m, True)
        if err is not None:
            errs.append("model still fails the checker after topological sort: " + err)
    # hand-written expectations must be self-consistent and match the model
    n_bn = count_bn(model)
    if n_bn != fx["bn_before"]:
        errs.append("bn_before=%d but the model has %d BatchNormalization nodes"
                    % (fx["bn_before"], n_bn))
    if fx["folded"] + sum(fx["skipped"].values()) != fx["bn_before"]:
        errs.append("folded + skipped != bn_before")
    if fx["bn_after"] != fx["bn_before"] - fx["folded"]:
        errs.append("bn_after != bn_before - folded")
    if model.producer_name != PRODUCER_NAME:
        errs.append("producer_name not set")
    opsets = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if len(opsets) != 1:
        errs.append("expected exactly one default-domain opset import")
    for vi in model.graph.input:
        dims = vi.type.tensor_type.shape.dim
        if not all(d.HasField("dim_value") for d in dims):
            errs.append("graph input %s has a non-static shape" % vi.name)
    if errs:
        raise SystemExit("FIXTURE %s INVALID:\n  %s" % (name, "\n  ".join(errs)))
    return full


# ------------------------------------------------- shapes and constants
# Folds that need shape inference (the rank of a MatMul's output, where a
# chain of Reshape/Transpose/Squeeze/Unsqueeze puts the channels) or
# constant evaluation (Unsqueeze of a per-channel vector, a weight computed
# from initializers).  No value_info: every shape comes from inference.

def mlp(name, widths, batch=4, opset=13, ir=7):
    """A -> (MatMul -> BN -> Relu) per layer, PyTorch's Linear + BatchNorm1d."""
    rng = rng_for(name)
    g = G(name)
    x = g.inp("A", (batch, widths[0]))
    for i in range(1, len(widths)):
        w = g.init("fc%d_W" % i, conv_weight(rng, (widths[i - 1], widths[i])))
        g.node("MatMul", [x, w], ["fc%d_out" % i], name="fc%d" % i)
        y = add_bn(g, "fc%d_out" % i, add_bn_inits(g, rng, widths[i], "bn%d" % i), "bn%d_out" % i, "bn%d" % i)
        x = "relu%d_out" % i if i < len(widths) - 1 else "Y"
        g.node("Relu", [y], [x], name="relu%d" % i)
    g.out("Y", (batch, widths[-1]))
    return make_model(g.build(), opset, ir)


@fixture("mlp_bn_deep.onnx",
         "MLP MatMul -> BN -> Relu, three deep: each MatMul's rank 2 comes from inference",
         3, 3, patterns={"matmul_bn": 3})
def _():
    return mlp("mlp_bn_deep", (6, 8, 5, 3))


def unsqueezed(g, name, vec, axes, opset):
    """Unsqueeze of a [C] initializer: axes as an attribute before opset 13, an input from 13."""
    g.init(name + "_vec", vec)
    if opset >= 13:
        g.init(name + "_axes", np.array(axes, dtype=np.int64))
        g.node("Unsqueeze", [name + "_vec", name + "_axes"], [name], name=name + "_unsq")
    else:
        g.node("Unsqueeze", [name + "_vec"], [name], name=name + "_unsq", axes=list(axes))
    return name


def conv_mul_add_unsqueezed(name, opset, axes, bias, with_add=True):
    rng = rng_for(name)
    g = G(name)
    x = g.inp("X", (2, 3, 6, 6))
    c, osp = add_conv(g, rng, x, 3, 4, (6, 6), "conv", bias=bias)
    s = unsqueezed(g, "scale", rng.uniform(0.5, 1.5, 4) * np.array([1, -1, 1, 1]), axes, opset)
    g.node("Mul", [c, s], ["mul_out" if with_add else "Y"], name="mul")
    if with_add:
        b = unsqueezed(g, "shift", rng.normal(0, 0.5, 4), axes, opset)
        g.node("Add", ["mul_out", b], ["Y"], name="add")
    g.out("Y", (2, 4) + osp)
    return make_model(g.build(), opset, 8 if opset >= 13 else 6)


@fixture("conv_mul_add_unsqueeze.onnx",
         "Conv with bias -> Mul -> Add, each constant an Unsqueeze(axes=[1,2] input, opset 13) of a [4] vector",
         0, 0, affine_folded=2, patterns={"conv_mul": 1, "conv_add": 1})
def _():
    return conv_mul_add_unsqueezed("conv_mul_add_unsqueeze", 13, [1, 2], bias=True)


@fixture("conv_mul_add_unsqueeze_neg11.onnx",
         "Conv without bias -> Mul -> Add, constants Unsqueeze(axes=[-2,-1] attribute, opset 11) of [4]",
         0, 0, affine_folded=2, patterns={"conv_mul": 1, "conv_add": 1})
def _():
    return conv_mul_add_unsqueezed("conv_mul_add_unsqueeze_neg11", 11, [-2, -1], bias=False)


@fixture("conv_mul_unsqueeze_nobias.onnx",
         "Conv without bias -> Mul by Unsqueeze(axes=[-1,-2]) of [4], no Add: the bias stays absent",
         0, 0, affine_folded=1, patterns={"conv_mul": 1})
def _():
    return conv_mul_add_unsqueezed("conv_mul_unsqueeze_nobias", 13, [-1, -2], bias=False, with_add=False)


def matmul_chain_bn(name, a_shape, n, chain, bn_c, opset=13, ir=7, out_shape=None):
    """A -> MatMul -> chain (list of (op, attrs, const inputs)) -> BN -> Y."""
    rng = rng_for(name)
    g = G(name)
    g.inp("A", a_shape)
    g.init("mm_B", conv_weight(rng, (a_shape[-1], n)))
    g.node("MatMul", ["A", "mm_B"], ["mm_out"], name="mm")
    x = "mm_out"
    for i, (op, attrs, consts) in enumerate(chain):
        ins = [x]
        for j, v in enumerate(consts):
            ins.append(g.init("%s%d_in%d" % (op.lower(), i, j + 1), np.array(v, dtype=np.int64)))
        x = "%s%d_out" % (op.lower(), i)
        g.node(op, ins, [x], name="%s%d" % (op.lower(), i), **attrs)
    add_bn(g, x, add_bn_inits(g, rng, bn_c, "bn"), "Y", "bn")
    g.out("Y", out_shape)
    return make_model(g.build(), opset, ir)


@fixture("matmul_reshape_transpose_bn.onnx",
         "MatMul [4,8] -> Reshape [2,2,8] -> Transpose [0,2,1] -> BN over 8: the columns reach axis 1",
         1, 1, patterns={"matmul_bn": 1})
def _():
    return matmul_chain_bn("matmul_reshape_transpose_bn", (4, 6), 8,
                           [("Reshape", {}, [[2, 2, 8]]), ("Transpose", {"perm": [0, 2, 1]}, [])], 8,
                           out_shape=(2, 8, 2))


@fixture("matmul_reshape_moves_channel_bn.onnx",
         "MatMul [4,8] -> Reshape [2,8,2] -> BN over 8: axis 1 has 8 elements but not the columns (near miss)",
         1, 0, skipped={"channel_axis_mismatch": 1})
def _():
    return matmul_chain_bn("matmul_reshape_moves_channel_bn", (4, 6), 8, [("Reshape", {}, [[2, 8, 2]])], 8,
                           out_shape=(2, 8, 2))


@fixture("matmul_unsqueeze_bn_opset11.onnx",
         "MatMul [4,8] -> Unsqueeze(axes=[0]) -> Squeeze(axes=[0]) -> Unsqueeze(axes=[2,3]) -> BN, opset 11 attributes",
         1, 1, patterns={"matmul_bn": 1})
def _():
    return matmul_chain_bn("matmul_unsqueeze_bn_opset11", (4, 6), 8,
                           [("Unsqueeze", {"axes": [0]}, []), ("Squeeze", {"axes": [0]}, []),
                            ("Unsqueeze", {"axes": [2, 3]}, [])], 8, opset=11, ir=6, out_shape=(4, 8, 1, 1))


@fixture("matmul_unsqueeze_bn_opset13.onnx",
         "MatMul [4,8] -> Unsqueeze(axes input [1]) -> Squeeze(axes input [1]) -> Unsqueeze([-1]) -> BN, opset 13",
         1, 1, patterns={"matmul_bn": 1})
def _():
    return matmul_chain_bn("matmul_unsqueeze_bn_opset13", (4, 6), 8,
                           [("Unsqueeze", {}, [[1]]), ("Squeeze", {}, [[1]]), ("Unsqueeze", {}, [[-1]])], 8,
                           out_shape=(4, 8, 1))


@fixture("conv_weight_sub_bn.onnx",
         "Conv whose weight is Sub(W1, W2) of two initializers -> BN: the weight is evaluated, folded into a new one",
         1, 1, patterns={"conv_bn": 1})
def _():
    name = "conv_weight_sub_bn"
    rng = rng_for(name)
    g = G(name)
    g.inp("X", (2, 3, 5, 5))
    g.init("W1", conv_weight(rng, (4, 3, 3, 3)))
    g.init("W2", conv_weight(rng, (4, 3, 3, 3)))
    g.node("Sub", ["W1", "W2"], ["W"], name="w_sub")
    g.init("conv_B", conv_bias(rng, 4))
    g.node("Conv", ["X", "W", "conv_B"], ["conv_out"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    add_bn(g, "conv_out", add_bn_inits(g, rng, 4, "bn"), "Y", "bn")
    g.out("Y", (2, 4, 5, 5))
    return make_model(g.build(), 13, 7)


def matmul_affine(name, a_shape, n, ops):
    """A -> MatMul -> (Mul|Add of a constant) ... -> Y."""
    rng = rng_for(name)
    g = G(name)
    g.inp("A", a_shape)
    g.init("mm_B", conv_weight(rng, (a_shape[-1], n)))
    g.node("MatMul", ["A", "mm_B"], ["mm_out"], name="mm")
    x = "mm_out"
    for i, (op, shape) in enumerate(ops):
        k = g.init("%s%d_k" % (op.lower(), i), rng.uniform(0.5, 1.5, shape))
        y = "Y" if i == len(ops) - 1 else "%s%d_out" % (op.lower(), i)
        g.node(op, [x, k], [y], name="%s%d" % (op.lower(), i))
        x = y
    g.out("Y", tuple(a_shape[:-1]) + (n,))
    return make_model(g.build(), 13, 7)


@fixture("matmul_add.onnx", "MatMul [4,6]x[6,8] -> Add of a [8] bias: becomes one Gemm with that bias",
         0, 0, affine_folded=1, patterns={"matmul_add": 1})
def _():
    return matmul_affine("matmul_add", (4, 6), 8, [("Add", (8,))])


@fixture("matmul_mul_add_rank3.onnx",
         "MatMul with A [2,3,6] -> Mul by [1,1,8] (folds into the weight's columns) -> Add of [8] (needs a Gemm: rank 3)",
         0, 0, affine_folded=1, patterns={"matmul_mul": 1}, affine_skipped={"matmul_not_2d": 1})
def _():
    return matmul_affine("matmul_mul_add_rank3", (2, 3, 6), 8, [("Mul", (1, 1, 8)), ("Add", (8,))])


@fixture("gemm_mul_add.onnx",
         "Gemm (transB, alpha 0.5, beta 2, C [5]) -> Mul by [5] -> Add of [1,5]: both fold into B and C",
         0, 0, affine_folded=2, patterns={"gemm_mul": 1, "gemm_add": 1})
def _():
    name = "gemm_mul_add"
    rng = rng_for(name)
    g = G(name)
    g.inp("A", (3, 6))
    g.init("gemm_B", conv_weight(rng, (5, 6)))
    g.init("gemm_C", conv_bias(rng, 5))
    g.node("Gemm", ["A", "gemm_B", "gemm_C"], ["gemm_out"], name="gemm", transB=1, alpha=0.5, beta=2.0)
    g.init("mul_k", rng.uniform(0.5, 1.5, 5))
    g.node("Mul", ["gemm_out", "mul_k"], ["mul_out"], name="mul")
    g.init("add_k", rng.normal(0, 0.5, (1, 5)))
    g.node("Add", ["mul_out", "add_k"], ["Y"], name="add")
    g.out("Y", (3, 5))
    return make_model(g.build(), 13, 7)


@fixture("conv_mul_shared.onnx",
         "Conv -> Mul by a per-channel constant, the Conv's output also read by a Relu: a Mul row, not folded",
         0, 0, affine_skipped={"layer_output_has_other_consumers": 1})
def _():
    name = "conv_mul_shared"
    rng = rng_for(name)
    g = G(name)
    x = g.inp("X", (2, 3, 5, 5))
    c, osp = add_conv(g, rng, x, 3, 4, (5, 5), "conv")
    g.init("mul_k", rng.uniform(0.5, 1.5, (4, 1, 1)))
    g.node("Mul", [c, "mul_k"], ["Y"], name="mul")
    g.node("Relu", [c], ["Z"], name="relu")
    g.out("Y", (2, 4) + osp)
    g.out("Z", (2, 4) + osp)
    return make_model(g.build(), 13, 7)


@fixture("matmul_bn_shape_conflict.onnx",
         "MatMul [4,6]x[6,8] -> BN, with a value_info declaring the MatMul output [4,9]: shape_conflict",
         1, 0, skipped={"shape_conflict": 1}, full_check=False, equivalence=False)
def _():
    name = "matmul_bn_shape_conflict"
    m = matmul_bn(name, (4, 6), 8, 8)
    m.graph.value_info.append(helper.make_tensor_value_info("mm_out", TensorProto.FLOAT, [4, 9]))
    return m


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    outdir = argv[1] if len(argv) > 1 else os.path.join(os.path.dirname(here), "testdata")
    os.makedirs(outdir, exist_ok=True)

    seen = set()
    entries = []
    for fx in FIXTURES:
        if fx["file"] in seen:
            raise SystemExit("duplicate fixture file " + fx["file"])
        seen.add(fx["file"])
        model = fx["build"]()
        verify(fx, model)
        data = model.SerializeToString()
        if len(data) >= MAX_FILE_SIZE:
            raise SystemExit("%s is %d bytes (limit %d)" % (fx["file"], len(data), MAX_FILE_SIZE))
        # round trip: what we write is what we checked
        back = onnx.load_from_string(data)
        if back.SerializeToString() != data or count_bn(back) != fx["bn_before"]:
            raise SystemExit("%s does not round-trip" % fx["file"])
        with open(os.path.join(outdir, fx["file"]), "wb") as f:
            f.write(data)
        opset = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")][0]
        e = dict(file=fx["file"], desc=fx["desc"], args=fx["args"],
                 bn_before=fx["bn_before"], bn_after=fx["bn_after"], folded=fx["folded"],
                 skipped=dict(sorted(fx["skipped"].items())),
                 equivalence=fx["equivalence"], ir_version=model.ir_version, opset=opset,
                 checker=fx["checker"], full_check=fx["full_check"])
        if fx["byte_identical"]:
            e["byte_identical"] = True
        if fx["patterns"] is not None:
            e["patterns"] = dict(sorted(fx["patterns"].items()))
        if fx["affine_folded"]:
            e["affine_folded"] = fx["affine_folded"]
        if fx["affine_skipped"]:
            e["affine_skipped"] = dict(sorted(fx["affine_skipped"].items()))
        if fx["numeric"]:
            e["numeric"] = True
        if fx["fusion_names"]:
            e["fusion_names"] = fx["fusion_names"]
        for k, v in sorted(fx["tol"].items()):
            if k not in ("rtol", "atol", "rtol16", "atol16"):
                raise SystemExit("%s: unknown tolerance %s" % (fx["file"], k))
            e[k] = v
        entries.append(e)
        print("%-40s %6d bytes  bn %d -> %d  folded %d  skipped %s"
              % (fx["file"], len(data), fx["bn_before"], fx["bn_after"], fx["folded"],
                 json.dumps(e["skipped"], sort_keys=True)))

    with open(os.path.join(outdir, "expected.json"), "w", encoding="utf-8", newline="\n") as f:
        json.dump({"fixtures": entries}, f, indent=2, ensure_ascii=True)
        f.write("\n")
    print("wrote %d fixtures and expected.json to %s" % (len(entries), outdir))


if __name__ == "__main__":
    main(sys.argv)
