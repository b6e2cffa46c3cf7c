/* Shape rules of the arithmetic, matrix, convolution and pooling ops,
 * after ONNX's own inference functions (onnx/defs). */
#include <string.h>

#include "shapes_internal.h"

void bnf_rule_same(const bnf_shape_node *sn, bnf_shape *out, size_t n_out)
{
	(void)n_out;
	bnf_shape_input(sn, 0, &out[0]);
}

/* Dropout: the output and its mask (bool since opset 10) both have the
 * input's shape. */
void bnf_rule_same_all(const bnf_shape_node *sn, bnf_shape *out, size_t n_out)
{
	bnf_shape_input(sn, 0, &out[0]);
	if (n_out > 1) {
		out[1] = out[0];
		if (sn->opset >= 10)
			out[1].elem_type = BNF_ELEM_BOOL;
	}
}

/* BatchNormalization: Y has X's shape; the statistics outputs (running or
 * saved mean and variance, training forms) have the mean's. */
void bnf_rule_batchnorm(const bnf_shape_node *sn, bnf_shape *out, size_t n_out)
{
	bnf_shape_input(sn, 0, &out[0]);
	for (size_t k = 1; k < n_out; k++)
		bnf_shape_input(sn, 3, &out[k]);
}

void bnf_rule_cast(const bnf_shape_node *sn, bnf_shape *out, size_t n_out)
{
	const Onnx__AttributeProto *to = bnf_node_attr(sn->node, "to");

	(void)n_out;
	bnf_shape_input(sn, 0, &out[0]);
	/* Cast-1 names the type with a string: left unknown */
	out[0].elem_type = to && to->has_i && to->i > 0 && to->i < 64 ? (int)to->i : 0;
}

/* Every input (at least one) broadcast together; any input missing or of
 * unknown rank leaves the output unknown.  Folding pairwise gives what
 * broadcasting all at once gives. */
void bnf_rule_broadcast(const bnf_shape_node *sn, bnf_shape *out, size_t n_out)
{
	bnf_shape acc, in[2];

	(void)n_out;
	if (sn->node->n_input == 0 || !bnf_shape_input(sn, 0, &acc))
		return;
	for (size_t i = 1; i < sn->node->n_input; i++) {
		in[0] = acc;
		if (!bnf_shape_input(sn, i, &in[1]) || !bnf_shape_broadcast(in, 2, &acc))
			return;
	}
	out[0] = acc;
	out[0].elem_type = 0;
}

/* Before opset 7 (Add, Mul, Equal, And...) a `broadcast` attribute only
 * let B follow A: the output has A's shape. */
void bnf_rule_broadcast7(const bnf_shape_node *sn, bnf_shape *out, size_t n_out)
{
	if (sn->opset < 7)
		bnf_rule_same(sn, out, n_out);
	else
		bnf_rule_broadcast(sn, out, n_out);
}

/* Max, Min, Sum, Mean before opset 8: inputs of one shape. */
void bnf_rule_broadcast8(const bnf_shape_node *sn, bnf_shape *out, size_t n_out)
{
	if (sn->opset < 8)
		bnf_rule_same(sn, out, n_out);
	else
		bnf_rule_broadcast(sn, out, n_out);
}

void bnf_rule_where(const bnf_shape_node *sn, bnf_shape *out, size_t n_out)
{
	if (sn->node->n_input == 3)
		bnf_rule_broadcast(sn, out, n_out);
}

/* Matrix product: 1-D operands promoted (a row, a column) and dropped
 * again; the batch dims broadcast; the inner sizes must agree. */
void bnf_rule_matmul(const bnf_shape_node *sn, bnf_shape *out, size_t n_out)
{
	bnf_shape a, b, l, r, batch;
	bnf_dim one = bnf_dim_of(1);

	(void)n_out;
	if (!bnf_shape_input(sn, 0, &a) || !bnf_shape_input(sn, 1, &b) || a.rank == 0 || b.rank == 0)
		return;
	l = a, r = b;
	if (a.rank == 1)
		l.rank = 2, l.dims[0] = one, l.dims[1] = a.dims[0];
	if (b.rank == 1)
		r.rank = 2, r.dims[0] = b.dims[0], r.dims[1] = one;
	if (l.dims[l.rank - 1].value >= 0 && r.dims[r.rank - 2].value >= 0 &&
	    l.dims[l.rank - 1].value != r.dims[r.rank - 2].value)
		return;
	l.rank -= 2, r.rank -= 2;
	{
		bnf_shape pre[2] = {l, r};
		if (!bnf_shape_broadcast(pre, 2, &batch))
			return;
	}
	if (batch.rank + (a.rank != 1) + (b.rank != 1) > BNF_SHAPE_MAX_RANK)
		return;
	if (a.rank != 1)
		batch.dims[batch.rank++] = l.dims[l.rank]; /* rows: the dim before the inner one */
	if (b.rank != 1)
		batch.dims[batch.rank++] = r.dims[r.rank + 1];
	out[0] = batch;
}

void bnf_rule_gemm(const bnf_shape_node *sn, bnf_shape *out, size_t n_out)
{
	bnf_shape a, b;
	bool ta = bnf_node_attr_int(sn->node, "transA", 0) != 0, tb = bnf_node_attr_int(sn->node, "transB", 0) != 0;

	(void)n_out;
	if (!bnf_shape_input(sn, 0, &a) || !bnf_shape_input(sn, 1, &b) || a.rank != 2 || b.rank != 2)
		return;
	if (a.dims[ta ? 0 : 1].value >= 0 && b.dims[tb ? 1 : 0].value >= 0 &&
	    a.dims[ta ? 0 : 1].value != b.dims[tb ? 1 : 0].value)
		return; /* inner sizes disagree */
	out[0].rank = 2;
	out[0].dims[0] = a.dims[ta ? 1 : 0];
	out[0].dims[1] = b.dims[tb ? 0 : 1];
}

/* The window of a convolution or pooling over n spatial axes. */
typedef struct window {
	int n;
	int64_t kernel[BNF_SHAPE_MAX_RANK];    /* dilated: (k - 1) * d + 1 */
	int64_t strides[BNF_SHAPE_MAX_RANK];
	int64_t pads[2 * BNF_SHAPE_MAX_RANK];  /* begins, then ends */
} window;

/* An attribute of n positive integers into v, all 1 when absent. */
static bool positive_ints(const Onnx__NodeProto *node, const char *name, int n, int64_t *v)
{
	int got = bnf_shape_attr_ints(node, name, v, BNF_SHAPE_MAX_RANK);

	if (got == -1) {
		for (int i = 0; i < n; i++)
			v[i] = 1;
		return true;
	}
	if (got != n)
		return false;
	for (int i = 0; i < n; i++)
		if (v[i] < 1)
			return false;
	return true;
}

/* SAME_UPPER / SAME_LOWER pads of a convolution or pooling, as ONNX works
 * them out: the total makes the output ceil(in / stride). */
static void same_pads(const bnf_shape *x, bool lower, window *w)
{
	for (int i = 0; i < w->n; i++) {
		int64_t residual = 0, total, small;
		if (w->strides[i] > 1) {
			if (x->dims[2 + i].value < 0)
				continue; /* the output dim is unknown anyway */
			residual = x->dims[2 + i].value % w->strides[i];
		}
		total = residual == 0 ? w->kernel[i] - w->strides[i] : w->kernel[i] - residual;
		if (total < 0)
			total = 0;
		small = total / 2;
		w->pads[i] = lower ? total - small : small;
		w->pads[i + w->n] = lower ? small : total - small;
	}
}

/* The window of node over x (rank >= 3): kernel from the attribute or the
 * weight's dims (kernel_w, may be NULL for pooling), strides, dilations
 * when the op has them, and pads (explicit or auto_pad).  False when an
 * attribute is missing, of the wrong length or out of range. */
static bool conv_window(const bnf_shape_node *sn, const bnf_shape *x, const bnf_shape *kernel_w, bool dilated,
			bool transpose, window *w)
{
	const Onnx__NodeProto *node = sn->node;
	int64_t dil[BNF_SHAPE_MAX_RANK];
	int n = x->rank - 2, got;

	if (n < 1)
		return false;
	w->n = n;
	if (!positive_ints(node, "strides", n, w->strides))
		return false;
	if (dilated && !positive_ints(node, "dilations", n, dil))
		return false;
	for (int i = 0; !dilated && i < n; i++)
		dil[i] = 1;
	got = bnf_shape_attr_ints(node, "kernel_shape", w->kernel, BNF_SHAPE_MAX_RANK);
	if (got == -1 && kernel_w) {
		if (kernel_w->rank != n + 2)
			return false;
		for (int i = 0; i < n; i++)
			w->kernel[i] = kernel_w->dims[2 + i].value;
	} else if (got != n) {
		return false;
	}
	for (int i = 0; i < n; i++)
		if (w->kernel[i] < 1 || !bnf_dim_mul(w->kernel[i] - 1, dil[i], &w->kernel[i]) ||
		    !bnf_dim_add(w->kernel[i], 1, &w->kernel[i]))
			return false;
	got = bnf_shape_attr_ints(node, "pads", w->pads, 2 * BNF_SHAPE_MAX_RANK);
	if (got != -1) {
		for (int i = 0; i < 2 * n; i++)
			if (got != 2 * n || w->pads[i] < 0)
				return false;
		return true;
	}
	memset(w->pads, 0, sizeof(w->pads));
	if (bnf_shape_attr_is(node, "auto_pad", "NOTSET", "NOTSET") || bnf_shape_attr_is(node, "auto_pad", "", "VALID"))
		return true;
	if (!bnf_shape_attr_is(node, "auto_pad", "", "SAME_UPPER") && !bnf_shape_attr_is(node, "auto_pad", "", "SAME_LOWER"))
		return false;
	if (transpose) { /* ONNX pads kernel - stride in all, whatever the input size */
		for (int i = 0; i < n; i++) {
			int64_t total = w->kernel[i] > w->strides[i] ? w->kernel[i] - w->strides[i] : 0;
			bool lower = bnf_shape_attr_is(node, "auto_pad", "", "SAME_LOWER");
			w->pads[i] = lower ? total - total / 2 : total / 2;
			w->pads[i + n] = total - w->pads[i];
		}
		return true;
	}
	same_pads(x, bnf_shape_attr_is(node, "auto_pad", "", "SAME_LOWER"), w);
	return true;
}

/* The spatial dims of a convolution or pooling output into out->dims[2..]:
 * floor (or ceil with ceil_mode) of (in + pads - kernel) / stride, + 1. */
static void window_output(const bnf_shape *x, const window *w, bool ceil_mode, bnf_shape *out)
{
	for (int i = 0; i < w->n; i++) {
		int64_t in = x->dims[2 + i].value, span, steps;
		out->dims[2 + i] = bnf_dim_of(-1);
		if (in < 0 || !bnf_dim_add(in, w->pads[i], &span) || !bnf_dim_add(span, w->pads[i + w->n], &span) ||
		    span < w->kernel[i])
			continue;
		span -= w->kernel[i];
		steps = span / w->strides[i];
		if (ceil_mode && span % w->strides[i]) {
			steps++;
			/* A last window that starts in the end padding is dropped by
			 * onnxruntime and newer onnx, kept by onnx 1.12: unknown. */
			if (steps > (in + w->pads[i] - 1) / w->strides[i])
				continue;
		}
		out->dims[2 + i] = bnf_dim_of(steps + 1);
	}
	out->rank = x->rank;
}

void bnf_rule_conv(const bnf_shape_node *sn, bnf_shape *out, size_t n_out)
{
	bnf_shape x, wt;
	window w;
	int64_t group = bnf_node_attr_int(sn->node, "group", 1), per_group;

	(void)n_out;
	if (!bnf_shape_input(sn, 0, &x) || !bnf_shape_input(sn, 1, &wt) || wt.rank != x.rank || group < 1 ||
	    !conv_window(sn, &x, &wt, true, false, &w))
		return;
	/* input channels = group * the weight's channels per group */
	if (x.dims[1].value >= 0 && wt.dims[1].value >= 0 &&
	    (!bnf_dim_mul(wt.dims[1].value, group, &per_group) || per_group != x.dims[1].value))
		return;
	window_output(&x, &w, false, &out[0]);
	out[0].dims[0] = x.dims[0];
	out[0].dims[1] = wt.dims[0];
}

/* MaxPool (dilations since opset 10; a second output, the indices, of the
 * same shape), AveragePool (dilations since 19), LpPool (since 18). */
void bnf_rule_pool(const bnf_shape_node *sn, bnf_shape *out, size_t n_out)
{
	bnf_shape x;
	window w;
	bool max = bnf_node_is_onnx(sn->node, "MaxPool");
	bool dilated = max ? sn->opset >= 10 : bnf_node_is_onnx(sn->node, "LpPool") ? sn->opset >= 18 : sn->opset >= 19;
	int64_t ceil_mode = bnf_node_attr_int(sn->node, "ceil_mode", 0);

	if (!bnf_shape_input(sn, 0, &x) || (ceil_mode != 0 && ceil_mode != 1) ||
	    !conv_window(sn, &x, NULL, dilated, false, &w))
		return;
	window_output(&x, &w, ceil_mode == 1, &out[0]);
	out[0].dims[0] = x.dims[0];
	out[0].dims[1] = x.dims[1];
	if (max && n_out > 1) {
		out[1] = out[0];
		out[1].elem_type = BNF_ELEM_INT64;
	}
}

void bnf_rule_global_pool(const bnf_shape_node *sn, bnf_shape *out, size_t n_out)
{
	(void)n_out;
	if (!bnf_shape_input(sn, 0, &out[0]) || out[0].rank < 2) {
		out[0] = bnf_shape_unknown();
		return;
	}
	for (int i = 2; i < out[0].rank; i++)
		out[0].dims[i] = bnf_dim_of(1);
}

/* The spatial dims of a ConvTranspose output: output_shape when given,
 * else stride * (in - 1) + output_padding + kernel - pads.  False when
 * an attribute is invalid. */
static bool transpose_output(const bnf_shape_node *sn, const bnf_shape *x, const window *w, bnf_shape *out)
{
	int64_t shape[BNF_SHAPE_MAX_RANK], opad[BNF_SHAPE_MAX_RANK];
	int n = w->n, got = bnf_shape_attr_ints(sn->node, "output_shape", shape, BNF_SHAPE_MAX_RANK);

	if (got != -1) {
		if (got != n)
			return false;
		for (int i = 0; i < n; i++) {
			if (shape[i] < 0 || (x->dims[2 + i].value >= 0 && shape[i] < x->dims[2 + i].value))
				return false;
			out->dims[2 + i] = bnf_dim_of(shape[i]);
		}
		return true;
	}
	got = bnf_shape_attr_ints(sn->node, "output_padding", opad, BNF_SHAPE_MAX_RANK);
	if (got != -1 && got != n)
		return false;
	for (int i = 0; i < n; i++) {
		int64_t in = x->dims[2 + i].value, size, p = got >= 0 ? opad[i] : 0;
		out->dims[2 + i] = bnf_dim_of(-1);
		if (p < 0)
			return false;
		if (in < 1 || !bnf_dim_mul(w->strides[i], in - 1, &size) || !bnf_dim_add(size, p, &size) ||
		    !bnf_dim_add(size, w->kernel[i], &size))
			continue;
		if (size < w->pads[i] || size - w->pads[i] < w->pads[i + n])
			continue; /* pads larger than the output: left unknown */
		out->dims[2 + i] = bnf_dim_of(size - w->pads[i] - w->pads[i + n]);
	}
	return true;
}

void bnf_rule_conv_transpose(const bnf_shape_node *sn, bnf_shape *out, size_t n_out)
{
	bnf_shape x, wt;
	window w;
	int64_t group = bnf_node_attr_int(sn->node, "group", 1), channels = -1;

	(void)n_out;
	if (!bnf_shape_input(sn, 0, &x) || !bnf_shape_input(sn, 1, &wt) || wt.rank != x.rank || group < 1 ||
	    !conv_window(sn, &x, &wt, true, true, &w))
		return;
	if (x.dims[1].value >= 0 && wt.dims[0].value >= 0 && x.dims[1].value != wt.dims[0].value)
		return; /* the weight is [C_in, C_out / group, k...] */
	if (wt.dims[1].value >= 0 && !bnf_dim_mul(wt.dims[1].value, group, &channels))
		return;
	out[0].rank = x.rank;
	if (!transpose_output(sn, &x, &w, &out[0])) {
		out[0] = bnf_shape_unknown();
		return;
	}
	out[0].dims[0] = x.dims[0];
	out[0].dims[1] = bnf_dim_of(channels);
	if (group == 1 && channels < 0)
		out[0].dims[1] = wt.dims[1];
}

/* The axes a reduction reads: ArgMax / ArgMin's `axis`; the `axes`
 * attribute, or the input from ReduceSum-13 and every Reduce op from 18.
 * Their number, -1 when none is given, -2 when the input is unreadable,
 * -3 when the attribute is not a list of integers. */
static int reduce_axes(const bnf_shape_node *sn, int64_t *axes)
{
	int n;

	if (bnf_node_is_onnx(sn->node, "ArgMax") || bnf_node_is_onnx(sn->node, "ArgMin")) {
		axes[0] = bnf_node_attr_int(sn->node, "axis", 0);
		return 1;
	}
	if (sn->opset < 18 && !(sn->opset >= 13 && bnf_node_is_onnx(sn->node, "ReduceSum")))
		return (n = bnf_shape_attr_ints(sn->node, "axes", axes, BNF_SHAPE_MAX_RANK)) == -2 ? -3 : n;
	if (!bnf_shape_has_input(sn, 1))
		return -1;
	n = bnf_shape_const_ints(sn, 1, axes, BNF_SHAPE_MAX_RANK);
	return n < 0 ? -2 : n;
}

/* Reductions and ArgMax / ArgMin: the reduced axes become 1 (keepdims)
 * or go; no axes reduce all of them, or none with noop_with_empty_axes. */
void bnf_rule_reduce(const bnf_shape_node *sn, bnf_shape *out, size_t n_out)
{
	int64_t axes[BNF_SHAPE_MAX_RANK];
	bool mark[BNF_SHAPE_MAX_RANK] = {false}, keep = bnf_node_attr_int(sn->node, "keepdims", 1) != 0;
	bnf_shape x, r = {.rank = 0};
	int n = reduce_axes(sn, axes);

	(void)n_out;
	if (!bnf_shape_input(sn, 0, &x) || n > BNF_SHAPE_MAX_RANK || n < -2)
		return;
	if (n == -2) {
		if (keep)
			bnf_shape_rank_only(&out[0], x.rank);
		return;
	}
	if (n <= 0 && bnf_node_attr_int(sn->node, "noop_with_empty_axes", 0) != 0) {
		out[0] = x;
		return;
	}
	for (int i = 0; i < n; i++) {
		int a;
		if (!bnf_shape_axis(axes[i], x.rank, &a) || mark[a])
			return;
		mark[a] = true;
	}
	for (int i = 0; i < x.rank; i++) {
		if (n > 0 && !mark[i])
			r.dims[r.rank++] = x.dims[i];
		else if (keep)
			r.dims[r.rank++] = bnf_dim_of(1);
	}
	out[0] = r;
}
