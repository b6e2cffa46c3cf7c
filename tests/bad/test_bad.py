#!/usr/bin/python3
"""Malformed and hostile input: every case is generated here, at test time,
from a small Conv -> BatchNormalization model built with onnx.helper or from
bytes edited by hand, then run through bnfold.  Prints TAP.

Each case states what bnfold must do, written by hand from the ONNX and
protobuf rules, never taken from bnfold's output:
  error: exit 1, exactly one stderr line "bnfold: error: FILE: ..." matching
         a pattern (naming the tensor or node where there is one), no output
         file and no temp file left, and a report whose one entry is that
         error;
  skip:  exit 0, the report lists the BN as skipped with the reason code and
         a message matching a pattern, and the output is the input unchanged.
Any run that crashes, hangs, or makes a sanitizer or valgrind speak fails.
"""
import argparse
import json
import os
import random
import re
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import bnftest  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--bnfold")
ap.add_argument("--testdata", required=True)
ap.add_argument("--source-root")
ap.add_argument("--sanitized", action="store_true", help="bnfold is built with ASan: no address-space limit")
ap.add_argument("--write-cases", metavar="DIR", help="only write the generated inputs to DIR (fuzzing seeds; tools/fuzz)")
ap.add_argument("--export-cases", metavar="DIR",
                help="only write every case to DIR with DIR/cases.json saying what each expects (tests/api)")
args = ap.parse_args()
if not (args.write_cases or args.export_cases) and not (args.bnfold and args.source_root):
    ap.error("--bnfold and --source-root are needed to run the cases")

BNFOLD = os.path.abspath(args.bnfold) if args.bnfold else None
DEMO = os.path.join(os.path.abspath(args.testdata), "demo.onnx")
tap = bnftest.Tap()
# Memory a run may use: generous for a few-KB model, far below "gigabytes".
# Not under ASan or valgrind, which reserve large address ranges themselves.
LIMIT_AS = None if (args.sanitized or bnftest.WRAPPER) else 1 << 30


def limit_memory():
    if LIMIT_AS:
        resource.setrlimit(resource.RLIMIT_AS, (LIMIT_AS, LIMIT_AS))


# ------------------------------------------------------------ protobuf bytes

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, payload):
    """A length-delimited field."""
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def top_fields(data):
    """(field number, wire type, start, payload start, end) of a message's fields."""
    pos, out = 0, []
    while pos < len(data):
        start = pos
        key, shift = 0, 0
        while True:
            b = data[pos]
            pos += 1
            key |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        wt = key & 7
        if wt == 0:
            while data[pos] & 0x80:
                pos += 1
            pos += 1
            out.append((key >> 3, wt, start, start, pos))
        elif wt == 2:
            n, shift = 0, 0
            while True:
                b = data[pos]
                pos += 1
                n |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    break
            out.append((key >> 3, wt, start, pos, pos + n))
            pos += n
        else:
            pos += 8 if wt == 1 else 4
            out.append((key >> 3, wt, start, start, pos))
    return out


# ------------------------------------------------------------ models

C = 2  # output channels of the base model


def base_model(weight=None, bias=True, scale=None, b=None, mean=None, var=None, eps=None, opset=13, ir=8, hw=3):
    """x[1,1,hw,hw] -> Conv 'conv' (W [2,1,1,1], Bc) -> 'c' -> BatchNormalization 'bn' -> 'y'."""
    rng = np.random.RandomState(8)
    W = weight if weight is not None else numpy_helper.from_array(rng.rand(C, 1, 1, 1).astype(np.float32), "W")
    inits = [W]
    conv_in = ["x", "W"]
    if bias:
        inits.append(numpy_helper.from_array(np.array([0.5, -0.5], np.float32), "Bc"))
        conv_in.append("Bc")
    for name, given, default in (("scale", scale, [1.5, 0.5]), ("B", b, [0.1, 0.2]),
                                 ("mean", mean, [0.3, -0.3]), ("var", var, [2.0, 0.5])):
        inits.append(given if given is not None else numpy_helper.from_array(np.array(default, np.float32), name))
    bn_attrs = {} if eps is None else {"epsilon": eps}
    nodes = [helper.make_node("Conv", conv_in, ["c"], name="conv"),
             helper.make_node("BatchNormalization", ["c", "scale", "B", "mean", "var"], ["y"], name="bn", **bn_attrs)]
    g = helper.make_graph(nodes, "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, hw, hw])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, C, 3, 3] if hw == 3 else [1, C, 1, 1])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="bnfold-bad")
    m.ir_version = ir
    return m


def init(m, name):
    return next(t for t in m.graph.initializer if t.name == name)


def node(m, name):
    return next(n for n in m.graph.node if n.name == name)


def f32(name, values, dims=None):
    t = numpy_helper.from_array(np.array(values, np.float32), name)
    if dims is not None:
        del t.dims[:]
        t.dims.extend(dims)
    return t


def raw_tensor(name, dtype, dims, raw):
    t = TensorProto(name=name, data_type=dtype, raw_data=raw)
    t.dims.extend(dims)
    return t


def save(m):
    return m.SerializeToString()


# ------------------------------------------------------------ the cases
# Each: (description, bytes or callable(path) making the input, expectation)
# expectation: ("error", regex) or ("skip", reason code, message regex)

cases = []


def error(desc, data, regex):
    cases.append((desc, data, ("error", regex)))


def skip(desc, data, reason, msg_regex="", args=()):
    cases.append((desc, data, ("skip", reason, msg_regex, list(args))))


demo = open(DEMO, "rb").read()
rnd = random.Random(8)
NOT_ONNX = r"not an ONNX model"

# --- not a model at all
error("empty file", b"", r"file is empty")
error("16 random bytes", bytes(rnd.getrandbits(8) for _ in range(16)), NOT_ONNX)
error("4 KiB of random bytes", bytes(rnd.getrandbits(8) for _ in range(4096)), NOT_ONNX)
error("random bytes after a valid ir_version field", b"\x08\x08" + bytes(rnd.getrandbits(8) for _ in range(512)), NOT_ONNX)
error("text, not protobuf", b"ir_version: 8\ngraph { node { op_type: 'Conv' } }\n", NOT_ONNX)
error("a gzip header", b"\x1f\x8b\x08\x00" + bytes(60), NOT_ONNX)

# --- truncated: the graph field's length then runs past the end of the file
for cut in (1, 7, 50, 200, len(demo) // 3, len(demo) // 2, len(demo) - 10, len(demo) - 1):
    error(f"demo.onnx truncated to {cut} of {len(demo)} bytes", demo[:cut], NOT_ONNX + r" \((truncated or corrupt|no graph)")

# --- framing
gf = next(f for f in top_fields(demo) if f[0] == 7)  # ModelProto.graph
error("graph length 1000 bytes past the end of the file",
      demo[:gf[2]] + varint(7 << 3 | 2) + varint(gf[4] - gf[3] + 1000) + demo[gf[3]:gf[4]],
      r"truncated or corrupt: a length runs past the end of its message, at byte %d" % gf[2])
error("graph length of 2^62 bytes",
      demo[:gf[2]] + varint(7 << 3 | 2) + varint(1 << 62) + demo[gf[3]:gf[4]],
      r"a length runs past the end of its message")
inner = field(9, b"\x00" * 4)[:1] + varint(100) + b"\x00" * 4  # raw_data says 100, holds 4
tensor = field(5, inner)  # GraphProto.initializer
error("raw_data length past the end of its tensor (not of the file)",
      b"\x08\x08" + field(7, tensor + field(2, b"g" * 200)), r"a length runs past the end of its message")
error("a varint that never ends", b"\x08" + b"\xff" * 12, r"a number is cut off")
error("a field tag cut off at the end", b"\x08\x08\x80", r"a field tag is cut off")
basic = open(os.path.join(os.path.abspath(args.testdata), "conv_bn_basic.onnx"), "rb").read()
error("field number 0 spelt in two bytes (protobuf-c reads it, then writes a model it cannot read)",
      basic + b"\x80\x00\x04", r"a field number is 0 or above 2\^29 - 1, at byte %d" % len(basic))
error("field number 2^29", basic + b"\x80\x80\x80\x80\x10\x04", r"a field number is 0 or above 2\^29 - 1")
cases.append(("field number 2^29 - 1 is an unknown field like any other", basic + b"\xf8\xff\xff\xff\x0f\x04", ("ok",)))
m = base_model()
m.doc_string = "before\x00after"
error("a string with a NUL byte in it", save(m), r"a string holds a NUL byte")
error("a deprecated group wire type", b"\x08\x08\x3b\x3c", r"wire type")
error("valid protobuf without a graph", b"\x08\x08\x12\x03abc", r"not an ONNX model \(no graph\)")
error("a graph but no ir_version", field(7, field(2, b"g")), r"not an ONNX model \(no ir_version\)")


def nested(depth):
    g = b""
    for _ in range(depth):
        attr = field(1, b"then_branch") + varint(20 << 3) + varint(5) + field(6, g)  # AttributeProto name, type=GRAPH, g
        g = field(1, field(4, b"If") + field(5, attr))                                # GraphProto.node{op_type, attribute}
    return b"\x08\x08" + field(7, g)


error("subgraphs nested 40 deep", nested(40), r"nested more than 100 deep")
error("subgraphs nested 20000 deep (stack overflow in a recursive parser)", nested(20000), r"nested more than 100 deep")
skip_nested_ok = nested(30)  # 91 levels of messages: allowed
cases.append(("subgraphs nested 30 deep are read", skip_nested_ok, ("ok",)))
error("5 million empty nodes in 10 MB (unpacked they would take ~400 MB)",
      b"\x08\x08" + field(7, b"\x0a\x00" * 5_000_000), r"unpacking would take about \d+ MiB")

# --- tensors whose data disagrees with their dims: errors naming the tensor
m = base_model()
init(m, "W").raw_data = init(m, "W").raw_data[:-4]
error("weight raw_data 4 bytes short", save(m), r"tensor 'W' \(weight\): raw_data has 4 bytes but 2 elements of float32 need 8")
m = base_model()
init(m, "var").raw_data += b"\x00\x00\x80\x3f"
error("variance raw_data 4 bytes too long", save(m), r"tensor 'var' \(var\): raw_data has 12 bytes but 2 elements of float32 need 8")
m = base_model(scale=f32("scale", [1.0, 2.0]))
t = init(m, "scale")
t.float_data.extend(np.frombuffer(t.raw_data, np.float32).tolist()[:1])
t.ClearField("raw_data")
error("scale float_data holds 1 value for dims [2]", save(m), r"tensor 'scale' \(scale\): holds 1 float32 values but its dims need 2")
m = base_model(weight=raw_tensor("W", TensorProto.FLOAT, [2, -1, 1, 1], b"\x00" * 8))
error("weight with a negative dimension", save(m), r"tensor 'W' \(weight\): dimension 1 is negative \(-1\)")
m = base_model(weight=raw_tensor("W", TensorProto.FLOAT, [1 << 40, 1 << 40, 1 << 40, 1], b"\x00" * 8))
error("weight dims whose product overflows 64 bits", save(m), r"tensor 'W' \(weight\): element count overflows")
m = base_model(weight=raw_tensor("W", TensorProto.FLOAT, [1 << 20, 1 << 20, 1, 1], b"\x00" * 16))
error("weight declaring 2^40 elements with 16 bytes of data", save(m), r"tensor 'W' \(weight\): raw_data has 16 bytes but 1099511627776 elements")
m = base_model(weight=raw_tensor("W", TensorProto.FLOAT, [1 << 31, 1 << 31, 1, 1], b"\x00" * 16))
error("weight whose byte count overflows though its element count does not", save(m), r"more bytes than a machine has")

# --- names
m = base_model()
m.graph.node.append(helper.make_node("Relu", ["x"], ["c"], name="relu"))
error("two nodes produce the same tensor", save(m), r"tensor 'c' is produced twice \(node 'relu' and another node\)")
m = base_model()
m.graph.initializer.append(f32("mean", [0.0, 0.0]))
error("an initializer defined twice", save(m), r"initializer 'mean' is defined twice")
m = base_model()
m.graph.node.append(helper.make_node("Relu", ["x"], ["var"], name="relu"))
error("a node output named like an initializer", save(m), r"tensor 'var' is produced twice \(node 'relu' and an initializer\)")
m = base_model()
node(m, "conv").input[0] = "y"
error("a cycle: the Conv reads the BatchNormalization's output", save(m), r"graph 'g' has a cycle through node '(conv|bn)'")
m = base_model()
node(m, "bn").input[1] = "s1"
m.graph.node.extend([helper.make_node("Identity", ["s2"], ["s1"], name="id1"),
                     helper.make_node("Identity", ["s1"], ["s2"], name="id2")])
error("a cycle of two Identity nodes feeding the scale", save(m), r"graph 'g' has a cycle through node 'id[12]'")
m = base_model(weight=None)
m.graph.initializer.remove(init(m, "W"))
m.graph.node.insert(0, helper.make_node("ConstantOfShape", ["W"], ["W"], name="cos"))
error("a ConstantOfShape reading its own output as the Conv weight", save(m), r"cycle through node 'cos'")
# The same loop one graph down: the resolver climbs to the outer graph.
outer = base_model()
body = helper.make_graph([helper.make_node("Conv", ["x", "Wo"], ["c2"], name="conv2"),
                          helper.make_node("BatchNormalization", ["c2", "scale", "B", "mean", "var"], ["z"], name="bn2")],
                         "then", [], [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)])
els = helper.make_graph([helper.make_node("Identity", ["x"], ["z2"])], "else", [],
                        [helper.make_tensor_value_info("z2", TensorProto.FLOAT, None)])
outer.graph.node.extend([helper.make_node("ConstantOfShape", ["Wo"], ["Wo"], name="cos_outer"),
                         helper.make_node("If", ["cond"], ["w_out"], name="if", then_branch=body, else_branch=els)])
outer.graph.input.append(helper.make_tensor_value_info("cond", TensorProto.BOOL, []))
error("a self-reading ConstantOfShape in the outer graph, used from a subgraph", save(outer), r"cycle through node 'cos_outer'")

# Names are bytes from the file: control characters must not split the error
# line, and bytes that are not UTF-8 must not make the JSON report invalid.
m = base_model()
m.graph.node.append(helper.make_node("Relu", ["x"], ["c"], name="r\nbnfold: error: forged line\x1b[31m\x07"))
error("a node name with a newline and escape codes in an error", save(m),
      r"node 'r\\x0abnfold: error: forged line\\x1b\[31m\\x07'")
m = base_model()
del node(m, "bn").input[3:]
data = save(m).replace(b"\x1a\x02bn", b"\x1a\x02\xff\xfe")  # NodeProto.name, 2 bytes
skip("a BN named with bytes that are not UTF-8: the report stays valid JSON", data, "bn_malformed", r"has 3 inputs")

# --- BN structure: reasoned skips
m = base_model()
del node(m, "bn").input[3:]
skip("BatchNormalization with 3 inputs", save(m), "bn_malformed", r"has 3 inputs")
m = base_model()
node(m, "bn").input[4] = ""
skip("BatchNormalization with an empty variance input", save(m), "bn_malformed", r"input 4 is empty")
m = base_model()
node(m, "bn").input[2] = "ghost"
skip("BN bias named but defined nowhere", save(m), "param_not_constant", r"'ghost' is not defined in the graph")
m = base_model()
node(m, "conv").input[1] = "nowhere"
skip("Conv weight named but defined nowhere", save(m), "weight_not_constant", r"'nowhere' is not defined")
m = base_model()
del node(m, "conv").input[1:]
skip("Conv without a weight input", save(m), "weight_not_constant", r"no weight input")
skip("scale with 3 values for 2 channels", save(base_model(scale=f32("scale", [1, 1, 1]))), "channel_mismatch",
     r"scale 'scale' has 3 elements \(rank 1\), the Conv has 2 output channels")
skip("mean of shape [2,1]", save(base_model(mean=f32("mean", [[0], [0]]))), "channel_mismatch", r"mean 'mean' has 2 elements \(rank 2\)")
skip("NaN in the mean", save(base_model(mean=f32("mean", [0, float("nan")]))), "non_finite_param", r"channel 1")
skip("Inf in the scale", save(base_model(scale=f32("scale", [float("inf"), 1]))), "non_finite_param", r"channel 0")
skip("NaN epsilon", save(base_model(eps=float("nan"))), "non_finite_param", r"epsilon=nan")
skip("negative variance", save(base_model(var=f32("var", [1, -1]))), "nonpositive_variance", r"channel 1: .*var=-1")
skip("variance + epsilon == 0", save(base_model(var=f32("var", [0, 0]), eps=0.0)), "nonpositive_variance", r"channel 0")
skip("Inf in the Conv weight", save(base_model(weight=f32("W", [[[[1]]], [[[float("inf")]]]]))), "non_finite_param",
     r"weight 'W' element 1 is (inf|not finite)")
# Weights of 2 KB stay in the file and are streamed; the scan for NaN, Inf
# and overflow is then left to the scaling, which sends bnfold back to scan
# first: through verify's check, or (--no-verify) while writing.
big = np.random.RandomState(3).uniform(-1, 1, (C, 1, 16, 16)).astype(np.float32)
for extra in ([], ["--no-verify"]):
    how = " with --no-verify" if extra else ""
    w = big.copy()
    w[1, 0, 5, 7] = np.nan
    skip("NaN in a streamed 2 KB Conv weight" + how, save(base_model(weight=numpy_helper.from_array(w, "W"), hw=16)),
         "non_finite_param", r"weight 'W' element 343 is not finite", extra)
    w = big.copy()
    w[0, 0, 2, 2] = 3.3e38  # times the BN scale 1.5 / sqrt(2 + 1e-5): beyond float32
    skip("a streamed 2 KB Conv weight that folds past float32" + how,
         save(base_model(weight=numpy_helper.from_array(w, "W"), hw=16)), "overflow",
         r"folded weight 'W' reaches 3\.5\d*e\+38 in channel 0, beyond float32", extra)
    # float16 likewise (1 KiB: the smallest payload left in the file)
    h = big.astype(np.float16)
    params = {k: numpy_helper.from_array(np.array(v, np.float16), n) for k, n, v in (
        ("scale", "scale", [1.5, 0.5]), ("b", "B", [0.1, 0.2]), ("mean", "mean", [0.3, -0.3]), ("var", "var", [2.0, 0.5]))}
    w = h.copy()
    w[1, 0, 5, 7] = np.inf
    skip("Inf in a streamed 1 KB float16 Conv weight" + how,
         save(base_model(weight=numpy_helper.from_array(w, "W"), bias=False, hw=16, **params)),
         "non_finite_param", r"weight 'W' element 343 is not finite", extra)
    w = h.copy()
    w[0, 0, 2, 2] = 65000  # times 1.5 / sqrt(2 + 1e-5): beyond float16
    skip("a streamed 1 KB float16 Conv weight that folds past float16" + how,
         save(base_model(weight=numpy_helper.from_array(w, "W"), bias=False, hw=16, **params)), "overflow",
         r"folded weight 'W' reaches 6893\d\.\d+ in channel 0, beyond float16", extra)
m = base_model()
node(m, "bn").input[0] = "t"
m.graph.node.insert(1, helper.make_node("Transpose", [], ["t"], name="tr", perm=[0, 1, 2, 3]))
skip("a Transpose without inputs before the BN (it crashed the walk back to a layer)", save(m), "no_linear_producer")
skip("Conv weight of rank 1", save(base_model(weight=f32("W", [1, 2]))), "bad_weight_shape", r"weight 'W' has rank 1")
skip("Conv weight of rank 0", save(base_model(weight=f32("W", 1.0))), "bad_weight_shape", r"weight 'W' has rank 0")
skip("Conv weight with 0 output channels", save(base_model(weight=f32("W", np.zeros((0, 1, 1, 1))))), "bad_weight_shape",
     r"at least one output channel")

# --- constants bnfold reads in other forms (valid: folds or skips, never errors)
m = base_model()
for name in ("scale", "B", "mean", "var"):
    t = init(m, name)
    m.graph.initializer.remove(t)
    m.graph.node.insert(0, helper.make_node("Constant", [], [name], name="const_" + name,
                                            value_floats=numpy_helper.to_array(t).tolist()))
cases.append(("BN parameters from Constant value_floats are read", save(m), ("ok",)))
m = base_model()
m.graph.initializer.remove(init(m, "scale"))
m.graph.node.insert(0, helper.make_node("Constant", [], ["scale"], name="const_scale", value_float=2.0))
skip("a one-value Constant value_float scale for 2 channels", save(m), "channel_mismatch", r"scale 'scale' has 1 elements")
m = base_model(weight=helper.make_tensor("W", TensorProto.FLOAT16, [2, 1, 1, 1], np.array([1, 2], np.float16).view(np.uint16).tolist()))
m.graph.initializer.remove(init(m, "Bc"))
m.graph.initializer.append(helper.make_tensor("Bc", TensorProto.FLOAT16, [2], np.array([0.5, -0.5], np.float16).view(np.uint16).tolist()))
cases.append(("float16 weight and bias in int32_data are read", save(m), ("ok",)))
m = base_model()
node(m, "bn").input[1] = "s0"
m.graph.node.extend(helper.make_node("Identity", [f"s{i + 1}" if i < 69 else "scale"], [f"s{i}"], name=f"id{i}") for i in range(70))
skip("the scale behind 70 Identity nodes", save(m), "param_not_constant", r"more than 64 Identity nodes")
inner = base_model(bias=False, ir=3, opset=7)
body = helper.make_graph(list(inner.graph.node), "then", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
els = helper.make_graph([helper.make_node("Identity", ["x"], ["y2"])], "else", [], [helper.make_tensor_value_info("y2", TensorProto.FLOAT, None)])
outer = helper.make_graph([helper.make_node("If", ["cond"], ["out"], name="if", then_branch=body, else_branch=els)], "g",
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT if n != "cond" else TensorProto.BOOL, None)
                           for n in ["x", "cond", "W", "scale", "B", "mean", "var"]],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], list(inner.graph.initializer))
m = helper.make_model(outer, opset_imports=[helper.make_opsetid("", 7)])
m.ir_version = 3
skip("IR 3: a fold inside a subgraph that needs a new bias", save(m), "unsupported_storage", r"IR 3 cannot declare")

# --- data types
skip("weight of unknown data type 99", save(base_model(weight=raw_tensor("W", 99, [2, 1, 1, 1], b"\x00" * 8))),
     "unsupported_dtype", r"data type 99")
skip("weight without a data type", save(base_model(weight=raw_tensor("W", 0, [2, 1, 1, 1], b"\x00" * 8))),
     "unsupported_dtype", r"data type 0")
skip("string-typed scale", save(base_model(scale=helper.make_tensor("scale", TensorProto.STRING, [2], [b"a", b"b"]))),
     "unsupported_dtype", r"scale")
skip("int8 weight", save(base_model(weight=raw_tensor("W", TensorProto.INT8, [2, 1, 1, 1], b"\x01\x02"))),
     "unsupported_dtype", r"weight 'W'")

# --- external data: hostile locations are refused before anything is read
# (the files are made beside each case's model by the runner: only the model
# is written, so weights.bin does not exist)
for desc, entries, regex in (
        ("outside the model's folder", {"location": "../../../../etc/passwd"},
         r"tensor 'W': external data location '\.\./\.\./\.\./\.\./etc/passwd' leaves the model's directory"),
        ("that does not exist", {"location": "weights.bin", "offset": str(1 << 40), "length": "8"},
         r"tensor 'W': external data 'weights\.bin': No such file or directory"),
        ("with an absolute path", {"location": "/proc/self/mem", "offset": "0", "length": "8"},
         r"tensor 'W': external data location '/proc/self/mem' is absolute")):
    m = base_model()
    t = init(m, "W")
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for k, v in entries.items():
        t.external_data.append(onnx.StringStringEntryProto(key=k, value=v))
    error(f"weight in external data {desc}", save(m), regex)

# --- resource limits: declared sizes must not turn into allocations
# A consistent model whose weight and parameters all come from ConstantOfShape:
# folding it would write a 4 TiB weight.
m = base_model(bias=False)
for name in ("W", "scale", "B", "mean", "var"):
    m.graph.initializer.remove(init(m, name))
m.graph.initializer.extend([numpy_helper.from_array(np.array([1 << 16, 1 << 24, 1, 1], np.int64), "wshape"),
                            numpy_helper.from_array(np.array([1 << 16], np.int64), "pshape")])
one = numpy_helper.from_array(np.array([1.0], np.float32))
m.graph.node.insert(0, helper.make_node("ConstantOfShape", ["wshape"], ["W"], name="cos", value=one))
for name in ("scale", "B", "mean", "var"):
    m.graph.node.insert(0, helper.make_node("ConstantOfShape", ["pshape"], [name], name="cos_" + name, value=one))
skip("ConstantOfShape weight of 2^40 elements with matching parameters", save(m), "weight_too_large",
     r"weight 'W' \(1099511627776 elements\) is made by ConstantOfShape, so folding writes a new copy")
m = base_model()
m.graph.initializer.remove(init(m, "mean"))
m.graph.initializer.append(numpy_helper.from_array(np.array([1 << 40], np.int64), "mshape"))
m.graph.node.insert(0, helper.make_node("ConstantOfShape", ["mshape"], ["mean"], name="cos"))
skip("ConstantOfShape mean of 2^40 elements", save(m), "channel_mismatch", r"mean 'mean' has 1099511627776 elements")
m = base_model()
m.graph.initializer.remove(init(m, "W"))
m.graph.initializer.append(numpy_helper.from_array(np.array([2, -1, 1, 1], np.int64), "wshape"))
m.graph.node.insert(0, helper.make_node("ConstantOfShape", ["wshape"], ["W"], name="cos"))
error("ConstantOfShape with a negative dimension", save(m), r"tensor 'W' \(weight\): ConstantOfShape shape is negative or overflows")
m = base_model()
m.graph.initializer.remove(init(m, "W"))
m.graph.initializer.append(numpy_helper.from_array(np.array([1 << 62, 1 << 62, 1, 1], np.int64), "wshape"))
m.graph.node.insert(0, helper.make_node("ConstantOfShape", ["wshape"], ["W"], name="cos"))
error("ConstantOfShape whose shape overflows", save(m), r"tensor 'W' \(weight\): ConstantOfShape shape is negative or overflows")


# --- shapes and computed constants: contradictions, impossible dims and
# runaway computations are skips, never a crash or a guess
def mm_bn(a_dims=(4, 6), n=2, extra_nodes=(), extra_inits=(), value_info=(), a_name="a", opset=13):
    """A [a_dims] -> MatMul (B [6, n]) -> 'mm' -> BN over n -> 'y'."""
    inits = [numpy_helper.from_array(np.ones((a_dims[-1], n), np.float32), "Bm")]
    for name, v in (("scale", 1.5), ("B", 0.1), ("mean", 0.3), ("var", 2.0)):
        inits.append(numpy_helper.from_array(np.full(n, v, np.float32), name))
    nodes = list(extra_nodes) + [helper.make_node("MatMul", [a_name, "Bm"], ["mm"], name="mm"),
                                 helper.make_node("BatchNormalization", ["mm", "scale", "B", "mean", "var"], ["y"], name="bn")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("A", TensorProto.FLOAT, list(a_dims))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits + list(extra_inits),
                          value_info=list(value_info))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="bnfold-bad")
    m.ir_version = 8
    return m


skip("a value_info declaring the MatMul output [4,3] where its nodes give [4,2]",
     save(mm_bn(a_name="A", value_info=[helper.make_tensor_value_info("mm", TensorProto.FLOAT, [4, 3])])),
     "shape_conflict", r"'mm'")
skip("a value_info declaring the MatMul output rank 3", save(mm_bn(a_name="A", value_info=[
     helper.make_tensor_value_info("mm", TensorProto.FLOAT, [4, 2, 1])])), "shape_conflict", r"'mm'")
m = mm_bn(a_name="A")
m.graph.input[0].type.tensor_type.shape.dim[0].dim_value = -5
for dims, what in (([-5, 6], "negative"), ([1 << 62, 6], "2^62")):
    m = mm_bn(a_dims=(4, 6), a_name="A")
    for i, d in enumerate(dims):
        m.graph.input[0].type.tensor_type.shape.dim[i].dim_value = d
    cases.append(("a graph input with a %s dim is read without trouble" % what, save(m), ("ok",)))
m = mm_bn(a_name="r", extra_nodes=[helper.make_node("Reshape", ["A", "rshape"], ["r"], name="reshape")],
          extra_inits=[numpy_helper.from_array(np.array([5, 5], np.int64), "rshape")])
skip("the MatMul's input is a Reshape of 24 elements to [5,5]: no shape, no fold", save(m), "shape_unknown", r"")
m = mm_bn(a_name="r", extra_nodes=[
    helper.make_node("Shape", ["A"], ["sh"], name="shape"),
    helper.make_node("Gather", ["sh", "zero"], ["d0"], name="gather", axis=0),
    helper.make_node("Unsqueeze", ["d0", "ax0"], ["d0u"], name="unsq"),
    helper.make_node("Concat", ["d0u", "minus1"], ["rs"], name="concat", axis=0),
    helper.make_node("Reshape", ["A", "rs"], ["r"], name="reshape")],
    extra_inits=[numpy_helper.from_array(np.array(0, np.int64), "zero"),
                 numpy_helper.from_array(np.array([0], np.int64), "ax0"),
                 numpy_helper.from_array(np.array([-1], np.int64), "minus1")])
cases.append(("Shape -> Gather -> Concat -> Reshape of the MatMul's input: the shape is computed, the BN folds",
              save(m), ("ok",)))
# A value_info left from before the input was made dynamic: it claims the
# Conv's output is [1,4,4,4], so a Reshape to [-1,4,16] would seem to keep
# the channels on axis 1; with an 8x8 input they are not.  Declarations are
# not checked at run time: bnfold takes no sizes from them.
W4 = numpy_helper.from_array(np.random.RandomState(3).rand(4, 3, 1, 1).astype(np.float32), "W")
nodes = [helper.make_node("Conv", ["x", "W"], ["c"], name="conv"),
         helper.make_node("Reshape", ["c", "shp"], ["r"], name="reshape"),
         helper.make_node("BatchNormalization", ["r", "s", "b", "m", "v"], ["y"], name="bn")]
g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "H", "W"])],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                      [W4, numpy_helper.from_array(np.array([-1, 4, 16], np.int64), "shp")] +
                      [f32(n, [1.5, 0.5, 1.0, 2.0]) for n in "sbmv"],
                      value_info=[helper.make_tensor_value_info("c", TensorProto.FLOAT, [1, 4, 4, 4])])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="bnfold-bad")
m.ir_version = 8
skip("a stale value_info gives the Conv output static dims that a Reshape chain would rely on", save(m),
     "shape_unknown", r"of .c. from the channel axis on are not all known")
m = base_model()
m.graph.initializer.remove(init(m, "mean"))
m.graph.initializer.extend([f32("mean4", [0.3, -0.3, 0.1, 0.2]), numpy_helper.from_array(np.array([5], np.int64), "mshape")])
m.graph.node.insert(0, helper.make_node("Reshape", ["mean4", "mshape"], ["mean"], name="reshape_mean"))
skip("the BN mean is a Reshape of 4 values to [5]", save(m), "constant_invalid", r"Reshape")
m = base_model()
m.graph.initializer.remove(init(m, "mean"))
m.graph.initializer.extend([f32("mean1", [0.3]), numpy_helper.from_array(np.array([1 << 40], np.int64), "eshape")])
m.graph.node.insert(0, helper.make_node("Expand", ["mean1", "eshape"], ["mean"], name="expand_mean"))
skip("the BN mean is an Expand of one value to 2^40", save(m), "constant_too_large", r"")
m = base_model()
m.graph.initializer.remove(init(m, "mean"))
m.graph.initializer.extend([f32("mean1", [0.3]), numpy_helper.from_array(np.array([1 << 62, 1 << 62], np.int64), "eshape")])
m.graph.node.insert(0, helper.make_node("Expand", ["mean1", "eshape"], ["mean"], name="expand_mean"))
skip("the BN mean is an Expand to dims whose product overflows", save(m), "constant_too_large", r"")


# --- the evaluator's work is bounded per run, not per query: one Expand to
# 30M values read by many nodes was computed in full for each reader
# (seconds per ten readers), by the shape rules (Reshape's shape) and by the
# planners (a Mul's factor after a Conv).  The limits leave room for a
# sanitizer build on a loaded machine (the Muls take 0.6 s in a release
# build, 11 s before the budget).
def many_readers(op, n):
    """Expand([1], [3e7]) -> 'big', read by n nodes of op."""
    inits = [numpy_helper.from_array(np.array([30000000], np.int64), "bigshape"),
             numpy_helper.from_array(np.ones((4, 3, 1, 1), np.float32), "W")]
    nodes = [helper.make_node("Expand", ["one", "bigshape"], ["big"], name="expand")]
    if op == "Reshape":
        inits.append(numpy_helper.from_array(np.array([1], np.int64), "one"))
        nodes += [helper.make_node("Reshape", ["x", "big"], [f"y{i}"], name=f"r{i}") for i in range(n)]
    else:
        inits.append(numpy_helper.from_array(np.array([1.0], np.float32), "one"))
        nodes.append(helper.make_node("Conv", ["x", "W"], ["c"], name="conv"))
        nodes += [helper.make_node("Mul", ["c", "big"], [f"y{i}"], name=f"m{i}") for i in range(n)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 2, 2])],
                          [helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, None) for i in range(n)], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()


cases.append(("an Expand to 3e7 values read as the shape of 80 Reshapes costs no more than one", many_readers("Reshape", 80),
              ("ok", 4)))
cases.append(("an Expand to 3e7 values read as the factor of 40 Muls after a Conv: the run's budget ends it",
              many_readers("Mul", 40), ("ok", 6)))

# --- size must cost linear time: a chain of 20000 BNs listed backwards,
# every tensor with a value_info (quadratic passes took minutes)
N_CHAIN = 20000
nodes = [helper.make_node("Conv", ["x", "W"], ["t0"], name="conv")]
nodes += [helper.make_node("BatchNormalization", [f"t{i}", "s", "b", "m", "v"], [f"t{i + 1}"], name=f"bn{i}")
          for i in reversed(range(N_CHAIN))]
g = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])],
                      [helper.make_tensor_value_info(f"t{N_CHAIN}", TensorProto.FLOAT, None)],
                      [numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "W")] +
                      [numpy_helper.from_array(np.ones(1, np.float32), n) for n in "sbmv"],
                      value_info=[helper.make_tensor_value_info(f"t{i}", TensorProto.FLOAT, None) for i in range(N_CHAIN)])
CHAIN = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()
cases.append((f"a chain of {N_CHAIN} Conv->BN->BN... listed backwards folds in seconds", CHAIN, ("ok", 10)))
# ... and 20000 Conv->BN pairs without a bias in an IR 3 model: 20000 new
# bias initializers, each also listed as a graph input
N_PAIRS = 20000
nodes = []
for i in range(N_PAIRS):
    nodes += [helper.make_node("Conv", ["x", "W"], [f"c{i}"], name=f"conv{i}"),
              helper.make_node("BatchNormalization", [f"c{i}", "s", "b", "m", "v"], [f"y{i}"], name=f"bn{i}")]
g = helper.make_graph(nodes, "pairs", [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ["x", "W", "s", "b", "m", "v"]],
                      [helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, None) for i in range(N_PAIRS)],
                      [numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "W")] +
                      [numpy_helper.from_array(np.ones(1, np.float32), n) for n in "sbmv"])
PAIRS = helper.make_model(g, opset_imports=[helper.make_opsetid("", 7)])
PAIRS.ir_version = 3
cases.append((f"{N_PAIRS} Conv->BN pairs sharing one weight, no bias, IR 3, fold in seconds", PAIRS.SerializeToString(), ("ok", 10)))


# ------------------------------------------------------------ running them

def failed_report_problems(rep, inp, lines):
    """The report of a failed input: one entry, its error of exit 1 with
    the line bnfold printed, counted in the totals."""
    try:
        doc = json.load(open(rep))
        e = doc["inputs"][0]
        said = lines[0][len("bnfold: error: "):] if lines else None
        if len(doc["inputs"]) != 1 or set(e) != {"input", "error"} or e["input"] != inp:
            return [f"report entry {e!r}, expected the input and its error"]
        # the report keeps the message's bytes; stderr shows control bytes as \xNN
        shown = re.sub(r"[\x00-\x1f\x7f]", lambda m: "\\x%02x" % ord(m.group(0)), e["error"]["message"])
        if e["error"]["exit"] != 1 or shown != said or doc["totals"]["failed"] != 1:
            return [f"report error {e['error']!r}, totals {doc['totals']!r}, expected exit 1 and the line printed"]
    except (OSError, ValueError, KeyError, IndexError, TypeError) as x:
        return [f"no usable report: {x!r}"]
    return []


def run_case(tmp, desc, data, expect, n):
    folder = os.path.join(tmp, f"case{n:03d}")
    os.mkdir(folder)
    inp = os.path.join(folder, "in.onnx")
    out = os.path.join(folder, "out.onnx")
    rep = os.path.join(folder, "report.json")
    with open(inp, "wb") as f:
        f.write(data)
    t0 = time.monotonic()
    extra = expect[3] if expect[0] == "skip" else []
    r = bnftest.run(BNFOLD, [inp, "-o", out, "--report", rep] + extra, cwd=folder, preexec_fn=limit_memory)
    secs = time.monotonic() - t0
    problems = []
    why = r.crashed()
    if why:
        problems.append(why)
    max_secs = expect[1] if expect[0] == "ok" and len(expect) > 1 else 20
    # a guard against quadratic work (minutes, not seconds); sanitizers cost a few times
    if secs > max_secs * (30 if bnftest.WRAPPER else 5 if args.sanitized else 1):
        problems.append(f"took {secs:.1f} s")
    left = bnftest.debris(folder)
    if left:
        problems.append(f"temp files left: {left}")
    lines = [l for l in r.err.splitlines() if l.strip()]
    if expect[0] == "error":
        if r.rc != 1:
            problems.append("expected exit 1")
        if len(lines) != 1 or not lines[0].startswith(f"bnfold: error: {inp}: "):
            problems.append("expected one line 'bnfold: error: FILE: ...'")
        elif not re.search(expect[1], lines[0]):
            problems.append(f"stderr does not match /{expect[1]}/")
        if os.path.exists(out):
            problems.append("out.onnx was written")
        problems.extend(failed_report_problems(rep, inp, lines))
    else:
        if r.rc != 0:
            problems.append("expected exit 0")
        elif expect[0] == "skip":
            try:
                report = json.load(open(rep))["inputs"][0]
                skips = report["skipped"]
                if report["counts"]["folded"] != 0 or len(skips) != 1:
                    problems.append(f"expected one skip and no fold, report counts {report['counts']}")
                elif skips[0]["reason"] != expect[1]:
                    problems.append(f"reason {skips[0]['reason']}, expected {expect[1]} ({skips[0]['message']})")
                elif not re.search(expect[2], skips[0]["message"]):
                    problems.append(f"message {skips[0]['message']!r} does not match /{expect[2]}/")
            except (OSError, ValueError, KeyError) as e:
                problems.append(f"no usable report: {e}")
            if not os.path.exists(out) or open(out, "rb").read() != data:
                problems.append("output is not the input unchanged")
    outcome = {"error": "error", "ok": "read"}.get(expect[0]) or f"skip {expect[1]}"
    tap.check(not problems, f"{desc}: {outcome}", "; ".join(problems) + "\n" + r.diag())


def reason_tables(root):
    """Reason codes as patterns.h, the report schema and docs/reasons.md list them."""
    fold_h = open(os.path.join(root, "src", "lib", "patterns.h")).read()
    codes = re.findall(r'X\(BNF_\w+,\s*"(\w+)"', fold_h)
    schema = json.load(open(os.path.join(root, "src", "lib", "report.schema.json")))
    enum = schema["definitions"]["reason"]["enum"]
    page = open(os.path.join(root, "docs", "reasons.md")).read()
    table = re.findall(r"^\| `(\w+)` \|", page.split("## Why a BN is skipped", 1)[1].split("\n## ", 1)[0], re.M)
    return [c for c in codes if c != "fold"], enum, table


if args.write_cases:
    os.makedirs(args.write_cases, exist_ok=True)
    for n, (desc, data, expect) in enumerate(cases):
        if len(data) <= 1 << 15:  # the fuzzer's -max_len
            with open(os.path.join(args.write_cases, f"bad-{n:03d}"), "wb") as f:
                f.write(data)
    sys.exit(0)
if args.export_cases:
    os.makedirs(args.export_cases, exist_ok=True)
    manifest = []
    for n, (desc, data, expect) in enumerate(cases):
        name = f"case-{n:03d}.onnx"
        with open(os.path.join(args.export_cases, name), "wb") as f:
            f.write(data)
        e = {"file": name, "desc": desc, "expect": expect[0]}
        if expect[0] == "error":
            e["regex"] = expect[1]
        elif expect[0] == "skip":
            e.update(reason=expect[1], message_regex=expect[2], args=expect[3])
        else:
            e["max_secs"] = expect[1] if len(expect) > 1 else 20
        manifest.append(e)
    with open(os.path.join(args.export_cases, "cases.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    sys.exit(0)

os.umask(0o022)
tmp = tempfile.mkdtemp(prefix="bnfold-bad-")
try:
    for n, (desc, data, expect) in enumerate(cases):
        run_case(tmp, desc, data, expect, n)

    # --- inputs that are not regular files
    out = os.path.join(tmp, "o.onnx")
    r = bnftest.run(BNFOLD, [tmp, "-o", out])
    tap.check(not r.crashed() and r.rc == 1 and re.search(r"^bnfold: error: .*: is a directory, not an ONNX model$", r.err.strip())
              and not os.path.exists(out), "a directory as input: error", r.diag())
    plain = os.path.join(tmp, "plain.onnx")
    shutil.copy(DEMO, plain)
    r = bnftest.run(BNFOLD, [plain + "/model.onnx", "-o", out])
    tap.check(not r.crashed() and r.rc == 1 and "cannot open: Not a directory" in r.err and not os.path.exists(out),
              "a path through a regular file: error", r.diag())
    loop = os.path.join(tmp, "loop.onnx")
    os.symlink(loop, loop)
    r = bnftest.run(BNFOLD, [loop, "-o", out])
    tap.check(not r.crashed() and r.rc == 1 and "cannot open: Too many levels of symbolic links" in r.err,
              "a symlink pointing at itself: error", r.diag())
    r = bnftest.run(BNFOLD, ["-", "-o", out], stdin=b"")
    tap.check(not r.crashed() and r.rc == 1 and "bnfold: error: (stdin): input is empty" in r.err
              and not os.path.exists(out), "empty stdin: error", r.diag())
    r = bnftest.run(BNFOLD, ["-", "-o", out], stdin=bytes(rnd.getrandbits(8) for _ in range(3000)))
    tap.check(not r.crashed() and r.rc == 1 and NOT_ONNX in r.err and not os.path.exists(out),
              "random bytes on stdin: error", r.diag())
    fifo = os.path.join(tmp, "in.fifo")
    os.mkfifo(fifo)
    writer = subprocess.Popen(["sh", "-c", f"head -c 100000 /dev/urandom > '{fifo}'"])
    r = bnftest.run(BNFOLD, [fifo, "-o", out])
    writer.wait(timeout=30)
    tap.check(not r.crashed() and r.rc == 1 and NOT_ONNX in r.err and not os.path.exists(out),
              "random bytes through a FIFO: error", r.diag())

    # --- an unreadable file: as root permissions do not stop reads, so the
    # run drops to nobody (setpriv) to meet a real EACCES
    unread = os.path.join(tmp, "unreadable", "model.onnx")
    os.mkdir(os.path.dirname(unread))
    shutil.copy(DEMO, unread)
    os.chmod(unread, 0)
    os.chmod(tmp, 0o755)
    os.chmod(os.path.dirname(unread), 0o755)
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0:
        r = bnftest.run(BNFOLD, [unread, "-o", "-"])
    elif setpriv:
        cmd = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--"] + bnftest.WRAPPER + [BNFOLD, unread, "-o", "-"]
        p = subprocess.run(cmd, capture_output=True, timeout=120)
        r = bnftest.Run(p.returncode, p.stdout, p.stderr.decode(errors="replace"))
    if os.geteuid() != 0 or setpriv:
        tap.check(not r.crashed() and r.rc == 1 and re.search(r"model\.onnx: cannot open: Permission denied$", r.err.strip())
                  and r.out == b"", "an unreadable file: error" + (" (run as nobody)" if os.geteuid() == 0 else ""), r.diag())
    else:
        tap.skip("an unreadable file", "running as root and setpriv is not installed to drop to nobody")

    # --- the three lists of reason codes agree
    codes, enum, table = reason_tables(args.source_root)
    tap.check(sorted(codes) == sorted(enum), "patterns.h reason codes == report schema enum",
              f"only in patterns.h: {sorted(set(codes) - set(enum))}; only in the schema: {sorted(set(enum) - set(codes))}")
    tap.check(sorted(codes) == sorted(table), "patterns.h reason codes == docs/reasons.md table",
              f"only in patterns.h: {sorted(set(codes) - set(table))}; only in docs/reasons.md: {sorted(set(table) - set(codes))}")
finally:
    shutil.rmtree(tmp, ignore_errors=True)

sys.exit(tap.emit())
