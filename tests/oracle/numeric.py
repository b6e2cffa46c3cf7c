"""Numpy oracle for folded tensors: recompute what each BN fusion must write
from the INPUT model, in extended precision, and compare with the tensors of
the OUTPUT model.  Independent of bnfold: it reads both models with the
onnx package, decodes tensors itself (float32/float64/float16/bfloat16, from
raw_data or the typed fields) and takes only names from the report.

A folded value passes when it is the correctly rounded value of the exact
result in the tensor's type:  |out - exact| <= ulp(exact)/2 + slack, where
slack = 8 * 2^-53 * (the largest term of the sum), the room that computing in
double needs.  For float16/bfloat16/float32 the slack is far below half an
ulp; for float64 it is what "computed in double" can promise (a few ulps of
the largest term), since a float64 result cannot be rounded once from
double arithmetic.
"""

import numpy as np

try:
    import onnx
except ImportError:  # the driver reports it
    onnx = None

LD = np.longdouble
FLOAT, FLOAT16, DOUBLE, BFLOAT16 = 1, 10, 11, 16
# (stored mantissa bits, exponent of the smallest normal)
FORMATS = {FLOAT16: (10, -14), BFLOAT16: (7, -126), FLOAT: (23, -126), DOUBLE: (52, -1022)}
NAMES = {FLOAT: "float32", FLOAT16: "float16", DOUBLE: "float64", BFLOAT16: "bfloat16"}


# ------------------------------------------------------------------ tensors

def decode(t):
    """TensorProto -> (numpy longdouble array in its shape, dtype code)."""
    dt = t.data_type
    shape = tuple(t.dims)
    if t.raw_data:
        raw = t.raw_data
        if dt == FLOAT:
            a = np.frombuffer(raw, "<f4")
        elif dt == DOUBLE:
            a = np.frombuffer(raw, "<f8")
        elif dt == FLOAT16:
            a = np.frombuffer(raw, "<f2")
        elif dt == BFLOAT16:
            a = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError("tensor %s: data type %d" % (t.name, dt))
    elif dt == FLOAT:
        a = np.array(t.float_data, np.float32)
    elif dt == DOUBLE:
        a = np.array(t.double_data, np.float64)
    elif dt == FLOAT16:
        a = np.array(t.int32_data, np.uint32).astype(np.uint16).view(np.float16)
    elif dt == BFLOAT16:
        a = (np.array(t.int32_data, np.uint32) << 16).view(np.float32)
    else:
        raise ValueError("tensor %s: data type %d" % (t.name, dt))
    return a.astype(LD).reshape(shape), dt


def ulp(x, dt):
    """ulp of the format at |x| (elementwise)."""
    mant, emin = FORMATS[dt]
    ax = np.abs(x.astype(np.float64))
    e = np.floor(np.log2(np.where(ax > 0, ax, 1.0)))
    e = np.maximum(e, emin)
    return np.ldexp(1.0, (e - mant).astype(int)).astype(LD)


# ------------------------------------------------------------------ scopes

class Scope:
    """A graph or function body, with the enclosing scope for outer names."""

    def __init__(self, key, name, nodes, inits, parent):
        self.key, self.name, self.nodes, self.parent = key, name, list(nodes), parent
        self.inits = {t.name: t for t in inits}
        self.producer = {o: n for n in self.nodes for o in n.output if o}

    def node(self, name, op=None):
        hits = [n for n in self.nodes if n.name == name and (op is None or n.op_type == op)]
        return hits[0] if len(hits) == 1 else None

    def tensor(self, name, hops=0):
        """The TensorProto that `name` is, through Identity and Constant; None
        when it is not a plain constant of this scope or an enclosing one."""
        if hops > 32:
            return None
        if name in self.inits:
            return self.inits[name]
        n = self.producer.get(name)
        if n is None:
            return self.parent.tensor(name, hops) if self.parent else None
        if n.op_type == "Identity":
            return self.tensor(n.input[0], hops + 1)
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value" and a.HasField("t"):
                    return a.t
        return None


def scopes(model):
    """Every graph (nested subgraphs too) and function body, keyed by its path
    of (node name, attribute name) from the main graph, or ("function", domain,
    name)."""
    out = []

    def walk(g, key, parent):
        s = Scope(key, g.name, g.node, g.initializer, parent)
        out.append(s)
        for n in g.node:
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g, key + ((n.name, a.name, 0),), s)
                elif a.type == onnx.AttributeProto.GRAPHS:
                    for i, sg in enumerate(a.graphs):
                        walk(sg, key + ((n.name, a.name, i),), s)

    walk(model.graph, (), None)
    for f in model.functions:
        label = "function %s%s" % (f.domain + "." if f.domain else "", f.name)  # as the report names it
        out.append(Scope(("function", f.domain, f.name), label, f.node, [], None))
    return out


def attr(node, name, default):
    for a in node.attribute:
        if a.name == name:
            if a.type == onnx.AttributeProto.FLOAT:
                return a.f
            if a.type == onnx.AttributeProto.INT:
                return a.i
    return default


# ------------------------------------------------------------------ the folds

def expected(fu, s_in, layer, bn):
    """{slot: (exact values, largest-term magnitude)} for the layer's inputs
    1 (weight) and 2 (bias) after the fusion, computed from the input."""
    def get(name):
        t = s_in.tensor(name)
        if t is None:
            raise ValueError("'%s' is not a constant of the input" % name)
        return decode(t)[0]

    gamma, beta, mean, var = (get(bn.input[i]).reshape(-1) for i in range(1, 5))
    eps = LD(float(np.float32(attr(bn, "epsilon", 1e-5))))
    s = gamma / np.sqrt(var + eps)
    w = get(layer.input[1])
    has_b = len(layer.input) > 2 and layer.input[2] != ""
    pat = fu["pattern"]
    if pat == "conv_bn":
        sw = s.reshape((-1,) + (1,) * (w.ndim - 1))
        b = get(layer.input[2]).reshape(-1) if has_b else np.zeros_like(s)
    elif pat == "convtranspose_bn":
        g = attr(layer, "group", 1)
        cin, cpg = w.shape[0], w.shape[1]
        ch = (np.arange(cin)[:, None] // (cin // g)) * cpg + np.arange(cpg)[None, :]
        sw = s[ch].reshape(ch.shape + (1,) * (w.ndim - 2))
        b = get(layer.input[2]).reshape(-1) if has_b else np.zeros_like(s)
    elif pat in ("gemm_bn", "matmul_bn"):
        transb = pat == "gemm_bn" and attr(layer, "transB", 0)
        sw = s[:, None] if transb else s[None, :]
        b = np.zeros_like(s)
        if pat == "gemm_bn" and has_b:
            c = get(layer.input[2]).reshape(-1)
            b = LD(float(np.float32(attr(layer, "beta", 1.0)))) * (c if c.size == s.size else np.repeat(c, s.size))
    elif pat == "bn_conv":
        g = attr(layer, "group", 1)
        cout, cin_g = w.shape[0], w.shape[1]
        iglob = (np.arange(cout)[:, None] // (cout // g)) * cin_g + np.arange(cin_g)[None, :]
        sw = s[iglob].reshape(iglob.shape + (1,) * (w.ndim - 2))
        t = beta - mean * s
        tw = t[iglob].reshape(sw.shape)
        b0 = get(layer.input[2]).reshape(-1) if has_b else np.zeros(cout, LD)
        terms = (w * tw).reshape(cout, -1)
        nb = b0 + terms.sum(axis=1)
        mag = np.maximum(np.abs(b0), np.abs(terms).sum(axis=1))
        return {1: (w * sw, np.abs(w * sw)), 2: (nb, mag)}
    else:
        raise ValueError("pattern %s is not checked by the numpy oracle" % pat)
    nb = (b - mean) * s + beta
    mag = np.maximum(np.abs((b - mean) * s), np.abs(beta))
    return {1: (w * sw, np.abs(w * sw)), 2: (nb, mag)}


def check(in_model, out_model, report):
    """One result per BN fusion of the report: (ok, text, diag lines, worst)
    where worst = {dtype name: (largest error in ulps, largest relative error)}."""
    results = []
    ins = {s.key: s for s in scopes(in_model)}
    outs = {s.key: s for s in scopes(out_model)}
    for fu in report.get("fusions", []):
        label = "%s <- %s (%s, %s)" % (fu.get("layer"), fu.get("bn"), fu.get("pattern"), fu.get("graph"))
        try:
            cands = [s for s in ins.values() if s.node(fu["bn"], "BatchNormalization") is not None
                     and s.node(fu["layer"]) is not None]
            if len(cands) > 1:
                cands = [s for s in cands if s.name == fu.get("graph")]
            if len(cands) != 1:
                raise ValueError("cannot tell which graph of the input holds the fusion (%d candidates)" % len(cands))
            s_in = cands[0]
            s_out = outs.get(s_in.key)
            if s_out is None:
                raise ValueError("the output has no graph at %r" % (s_in.key,))
            layer, bn = s_in.node(fu["layer"]), s_in.node(fu["bn"], "BatchNormalization")
            layer_out = s_out.node(fu["layer"])
            if layer_out is None:
                raise ValueError("layer '%s' is missing from the output" % fu["layer"])
            want = expected(fu, s_in, layer, bn)
            wdt = decode(s_in.tensor(layer.input[1]))[1]
            diag, ok, worst = [], True, {}
            for slot, (exact, mag) in sorted(want.items()):
                what = "weight" if slot == 1 else "bias"
                if len(layer_out.input) <= slot or not layer_out.input[slot]:
                    raise ValueError("the folded layer has no %s" % what)
                t = s_out.tensor(layer_out.input[slot])
                if t is None:
                    raise ValueError("folded %s '%s' is not a constant of the output" % (what, layer_out.input[slot]))
                got, dt = decode(t)
                if dt != wdt:
                    ok = False
                    diag.append("%s '%s' is %s, the layer's weight was %s" % (what, t.name, NAMES.get(dt, dt), NAMES.get(wdt, wdt)))
                    continue
                mag = np.broadcast_to(mag, exact.shape).reshape(-1)
                got = got.reshape(-1)
                exact = exact.reshape(-1)
                if got.size != exact.size:
                    ok = False
                    diag.append("%s '%s' has %d values, expected %d" % (what, t.name, got.size, exact.size))
                    continue
                err = np.abs(got - exact)
                u = ulp(exact, dt)
                allowed = u / 2 + LD(8) * LD(2.0) ** -53 * mag
                bad = np.nonzero(err > allowed)[0]
                in_ulps = float(np.max(err / u)) if err.size else 0.0
                rel = float(np.max(err / np.maximum(np.abs(exact), LD(1e-300)))) if err.size else 0.0
                name = NAMES[dt]
                pw = worst.get(name, (0.0, 0.0))
                worst[name] = (max(pw[0], in_ulps), max(pw[1], rel))
                diag.append("%s '%s' (%s, %d values): worst %.3g ulp, relative %.3g" % (
                    what, t.name, name, got.size, in_ulps, rel))
                if bad.size:
                    ok = False
                    i = int(bad[0])
                    diag.append("  %d values not correctly rounded; [%d] = %r, exact %r (%.3g ulp)" % (
                        bad.size, i, float(got[i]), float(exact[i]), float(err[i] / u[i])))
            results.append((ok, label, diag, worst))
        except Exception as e:  # noqa: BLE001 - every problem is a failed line
            results.append((False, label, ["%s: %s" % (type(e).__name__, e)], {}))
    return results
