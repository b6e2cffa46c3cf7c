#!/usr/bin/python3
"""Generate a ResNet-50-shaped float32 model for benchmarks and memory tests.

    /usr/bin/python3 tools/gen_big.py OUT.onnx [--width-scale S] [--seed N] [--external]

Real ResNet-50 topology (stem, bottleneck stages 3-4-6-3 with projection
shortcuts, global pool, Gemm): 53 Conv->BN pairs, weights ~25.5 M params
(~102 MB) at scale 1.  --width-scale multiplies every channel count (size
grows with its square: 1.6 -> ~260 MB, 3.2 -> ~1 GB).  Deterministic for a
given seed and scale.  With --external every weight larger than 1 KiB is
stored in OUT.onnx.data (ONNX external data).  Not used by bnfold itself.
"""
import argparse
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--width-scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=50)
    ap.add_argument("--external", action="store_true")
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    nodes, inits = [], []
    counter = [0]

    def ch(c):
        return max(1, int(round(c * a.width_scale)))

    def init(name, arr):
        inits.append(numpy_helper.from_array(arr, name))
        return name

    def conv_bn(x, cin, cout, k, stride, relu=True):
        i = counter[0]
        counter[0] += 1
        w = (rng.standard_normal((cout, cin, k, k), dtype=np.float32) * np.float32(np.sqrt(2.0 / (cin * k * k))))
        init("conv%d.w" % i, w)
        pad = k // 2
        nodes.append(helper.make_node("Conv", [x, "conv%d.w" % i], ["conv%d" % i], name="conv%d" % i,
                                      kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4))
        g = rng.uniform(0.5, 1.5, cout).astype(np.float32)
        b = rng.normal(0, 0.1, cout).astype(np.float32)
        m = rng.normal(0, 0.1, cout).astype(np.float32)
        v = rng.uniform(0.5, 1.5, cout).astype(np.float32)
        ps = [init("bn%d.%s" % (i, n), t) for n, t in (("scale", g), ("B", b), ("mean", m), ("var", v))]
        nodes.append(helper.make_node("BatchNormalization", ["conv%d" % i] + ps, ["bn%d" % i], name="bn%d" % i))
        if not relu:
            return "bn%d" % i
        nodes.append(helper.make_node("Relu", ["bn%d" % i], ["relu%d" % i], name="relu%d" % i))
        return "relu%d" % i

    x = conv_bn("input", 3, ch(64), 7, 2)
    nodes.append(helper.make_node("MaxPool", [x], ["pool0"], name="pool0", kernel_shape=[3, 3], strides=[2, 2],
                                  pads=[1, 1, 1, 1]))
    x, cin = "pool0", ch(64)
    for stage, (blocks, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512))):
        w, cout = ch(width), ch(width * 4)
        for blk in range(blocks):
            stride = 2 if blk == 0 and stage > 0 else 1
            y = conv_bn(x, cin, w, 1, 1)
            y = conv_bn(y, w, w, 3, stride)
            y = conv_bn(y, w, cout, 1, 1, relu=False)
            sc = conv_bn(x, cin, cout, 1, stride, relu=False) if blk == 0 else x
            name = "add%d_%d" % (stage, blk)
            nodes.append(helper.make_node("Add", [y, sc], [name], name=name))
            nodes.append(helper.make_node("Relu", [name], [name + "_r"], name=name + "_relu"))
            x, cin = name + "_r", cout
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"], name="gap"))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"))
    init("fc.w", (rng.standard_normal((cin, 1000), dtype=np.float32) * np.float32(0.01)))
    init("fc.b", np.zeros(1000, np.float32))
    nodes.append(helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], name="fc"))
    graph = helper.make_graph(nodes, "resnet50_shaped",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 224, 224])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="bnfold-bench")
    model.ir_version = 7
    if a.external:
        loc = os.path.basename(a.out) + ".data"
        onnx.save_model(model, a.out, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=loc, size_threshold=1024)
    else:
        with open(a.out, "wb") as f:
            f.write(model.SerializeToString())
    return 0


if __name__ == "__main__":
    sys.exit(main())
