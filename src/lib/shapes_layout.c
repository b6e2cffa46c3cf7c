/* Shape rules of the ops that move, select or make data (Reshape, Slice,
 * Concat, Pad, Resize, Constant...), after ONNX's own inference functions
 * (onnx/defs).  Lists read from constants are those of the node's inputs
 * that bnfold resolves (constants.h); others leave the output unknown. */
#include <math.h>
#include <string.h>

#include "shapes_internal.h"

/* Product of x's dims not marked in skip (may be NULL) into *p; false
 * when one is unknown or it overflows. */
static bool dims_product(const bnf_shape *x, const bool *skip, int64_t *p)
{
	*p = 1;
	for (int i = 0; i < x->rank; i++)
		if (!(skip && skip[i]) && (x->dims[i].value < 0 || !bnf_dim_mul(*p, x->dims[i].value, p)))
			return false;
	return true;
}

/* Axes (at most BNF_SHAPE_MAX_RANK) made non-negative for rank r into
 * mark[]: false when one is out of range or repeated. */
static bool mark_axes(const int64_t *axes, int n, int r, bool *mark)
{
	memset(mark, 0, BNF_SHAPE_MAX_RANK * sizeof(bool));
	for (int i = 0; i < n; i++) {
		int a;
		if (!bnf_shape_axis(axes[i], r, &a) || mark[a])
			return false;
		mark[a] = true;
	}
	return true;
}

/* Reshape: a 0 copies the input's dim (unless allowzero), one -1 is
 * worked out from the element count, which must match. */
void bnf_rule_reshape(const bnf_shape_node *sn, bnf_shape *out, size_t n_out)
{
	int64_t t[BNF_SHAPE_MAX_RANK], in_count, out_count = 1;
	bool copied[BNF_SHAPE_MAX_RANK] = {false}, allowzero = sn->opset >= 14 &&
								  bnf_node_attr_int(sn->node, "allowzero", 0) != 0;
	bnf_shape x, r = {.rank = 0};
	bool x_known = bnf_shape_input(sn, 0, &x), in_ok;
	int n = sn->opset < 5 ? bnf_shape_attr_ints(sn->node, "shape", t, BNF_SHAPE_MAX_RANK)
			      : bnf_shape_const_ints(sn, 1, t, BNF_SHAPE_MAX_RANK), infer = -1;

	(void)n_out;
	if (n < 0 && sn->opset >= 5) {
		/* Shape values computed at run time: the output's rank is the
		 * length of the shape tensor, when that is known. */
		bnf_shape s;
		if (bnf_shape_input(sn, 1, &s) && s.rank == 1 && s.dims[0].value >= 0 &&
		    s.dims[0].value <= BNF_SHAPE_MAX_RANK) {
			r.rank = (int)s.dims[0].value;
			for (int i = 0; i < r.rank; i++)
				r.dims[i] = bnf_dim_of(-1);
			out[0] = r;
		}
		return;
	}
	if (n < 0 || n > BNF_SHAPE_MAX_RANK)
		return;
	r.rank = n;
	for (int i = 0; i < n; i++) {
		r.dims[i] = bnf_dim_of(t[i]);
		if (t[i] == -1 && infer < 0) {
			infer = i;
		} else if (t[i] == 0 && !allowzero) {
			if (x_known && i >= x.rank)
				return;
			r.dims[i] = bnf_dim_of(-1);
			if (x_known)
				r.dims[i] = x.dims[i], copied[i] = true; /* the same dim on both sides */
		} else if (t[i] < 0) {
			return;
		}
		if (r.dims[i].value >= 0 && !copied[i] && !bnf_dim_mul(out_count, t[i], &out_count))
			return;
	}
	in_ok = x_known && dims_product(&x, copied, &in_count);
	if (infer >= 0 && in_ok) {
		if (out_count == 0 || in_count % out_count != 0)
			return;
		r.dims[infer] = bnf_dim_of(in_count / out_count);
	} else if (infer < 0 && in_ok && in_count != out_count) {
		return; /* a different number of elements */
	}
	out[0] = r;
}

void bnf_rule_transpose(const bnf_shape_node *sn, bnf_shape *out, size_t n_out)
{
	int64_t perm[BNF_SHAPE_MAX_RANK];
	bool seen[BNF_SHAPE_MAX_RANK] = {false};
	bnf_shape x;
	int n;

	(void)n_out;
	if (!bnf_shape_input(sn, 0, &x))
		return;
	n = bnf_shape_attr_ints(sn->node, "perm", perm, BNF_SHAPE_MAX_RANK);
	if (n == -1) {
		n = x.rank;
		for (int i = 0; i < n; i++)
			perm[i] = n - 1 - i;
	}
	if (n != x.rank)
		return;
	for (int i = 0; i < n; i++) {
		if (perm[i] < 0 || perm[i] >= n || seen[perm[i]])
			return;
		seen[perm[i]] = true;
		out[0].dims[i] = x.dims[perm[i]];
	}
	out[0].rank = n;
}

/* The axes of Squeeze / Unsqueeze: the attribute before opset 13, the
 * input from 13.  -1 when absent, -2 when present but unreadable or not
 * a list of integers. */
static int squeeze_axes(const bnf_shape_node *sn, int64_t *axes)
{
	int n;
	if (sn->opset < 13)
		return bnf_shape_attr_ints(sn->node, "axes", axes, BNF_SHAPE_MAX_RANK);
	if (!bnf_shape_has_input(sn, 1))
		return -1;
	n = bnf_shape_const_ints(sn, 1, axes, BNF_SHAPE_MAX_RANK);
	return n < 0 ? -2 : n;
}

void bnf_rule_squeeze(const bnf_shape_node *sn, bnf_shape *out, size_t n_out)
{
	int64_t axes[BNF_SHAPE_MAX_RANK];
	bool mark[BNF_SHAPE_MAX_RANK] = {false};
	bnf_shape x, r = {.rank = 0};
	int n = squeeze_axes(sn, axes);

	(void)n_out;
	if (n == 0)
		return; /* empty axes: onnxruntime squeezes every size-1 dim, onnx 1.12 none */
	if (!bnf_shape_input(sn, 0, &x) || n < -1 || n > BNF_SHAPE_MAX_RANK)
		return;
	if (n >= 0 && !mark_axes(axes, n, x.rank, mark))
		return;
	for (int i = 0; n < 0 && i < x.rank; i++) {
		if (x.dims[i].value < 0)
			return; /* whether it goes is known only at run time */
		mark[i] = x.dims[i].value == 1;
	}
	for (int i = 0; i < x.rank; i++) {
		if (!mark[i])
			r.dims[r.rank++] = x.dims[i];
		else if (x.dims[i].value >= 0 && x.dims[i].value != 1)
			return;
	}
	out[0] = r;
}

void bnf_rule_unsqueeze(const bnf_shape_node *sn, bnf_shape *out, size_t n_out)
{
	int64_t axes[BNF_SHAPE_MAX_RANK];
	bool mark[BNF_SHAPE_MAX_RANK];
	bnf_shape x;
	int n = squeeze_axes(sn, axes), r, k = 0;

	(void)n_out;
	if (!bnf_shape_input(sn, 0, &x) || n < 0 || n > BNF_SHAPE_MAX_RANK || x.rank + n > BNF_SHAPE_MAX_RANK)
		return;
	r = x.rank + n;
	if (!mark_axes(axes, n, r, mark))
		return;
	for (int i = 0; i < r; i++)
		out[0].dims[i] = mark[i] ? bnf_dim_of(1) : x.dims[k++];
	out[0].rank = r;
}

void bnf_rule_flatten(const bnf_shape_node *sn, bnf_shape *out, size_t n_out)
{
	int64_t axis = bnf_node_attr_int(sn->node, "axis", 1), p;
	bnf_shape x, head, tail;

	(void)n_out;
	if (!bnf_shape_input(sn, 0, &x))
		return;
	if (axis < 0 && sn->opset >= 11)
		axis += x.rank;
	if (axis < 0 || axis > x.rank)
		return;
	head = x, tail = x;
	head.rank = (int)axis;
	tail.rank = x.rank - (int)axis;
	memmove(tail.dims, x.dims + axis, (size_t)tail.rank * sizeof(bnf_dim));
	out[0].rank = 2;
	out[0].dims[0] = bnf_dim_of(dims_product(&head, NULL, &p) ? p : -1);
	out[0].dims[1] = bnf_dim_of(dims_product(&tail, NULL, &p) ? p : -1);
}

/* Dim d of every input of Concat other than the axis: a size from any
 * input (they must agree), else a name all of them share. */
static bool concat_dim(const bnf_shape *in, size_t n, int d, bnf_dim *out)
{
	*out = in[0].dims[d];
	for (size_t i = 1; i < n; i++) {
		const bnf_dim *x = &in[i].dims[d];
		if (out->value >= 0 && x->value >= 0 && out->value != x->value)
			return false;
		if (out->value < 0 && (x->value >= 0 || !bnf_dim_same(out, x)))
			*out = x->value >= 0 ? *x : bnf_dim_of(-1);
	}
	return true;
}

void bnf_rule_concat(const bnf_shape_node *sn, bnf_shape *out, size_t n_out)
{
	bnf_shape in[16];
	size_t n = sn->node->n_input;
	int64_t axis_attr = bnf_node_attr_int(sn->node, "axis", sn->opset < 4 ? 1 : INT64_MIN), sum = 0;
	int axis;

	(void)n_out;
	if (n == 0 || n > sizeof(in) / sizeof(in[0]))
		return; /* a longer list is left unknown rather than held on the stack */
	for (size_t i = 0; i < n; i++)
		if (!bnf_shape_input(sn, i, &in[i]) || in[i].rank != in[0].rank)
			return;
	if (!bnf_shape_axis(axis_attr, in[0].rank, &axis))
		return;
	out[0].rank = in[0].rank;
	for (int d = 0; d < in[0].rank; d++)
		if (d != axis && !concat_dim(in, n, d, &out[0].dims[d])) {
			out[0] = bnf_shape_unknown();
			return;
		}
	for (size_t i = 0; i < n && sum >= 0; i++)
		if (in[i].dims[axis].value < 0 || !bnf_dim_add(sum, in[i].dims[axis].value, &sum))
			sum = -1;
	out[0].dims[axis] = bnf_dim_of(sum);
}

void bnf_rule_expand(const bnf_shape_node *sn, bnf_shape *out, size_t n_out)
{
	int64_t t[BNF_SHAPE_MAX_RANK];
	bnf_shape in[2];
	int n = bnf_shape_const_ints(sn, 1, t, BNF_SHAPE_MAX_RANK);

	(void)n_out;
	if (!bnf_shape_input(sn, 0, &in[0]) || n < 0)
		return;
	in[1].rank = n;
	for (int i = 0; i < n; i++) {
		if (t[i] < 0)
			return;
		in[1].dims[i] = bnf_dim_of(t[i]);
	}
	if (bnf_shape_broadcast(in, 2, &out[0]))
		out[0].elem_type = 0;
}

void bnf_rule_gather(const bnf_shape_node *sn, bnf_shape *out, size_t n_out)
{
	bnf_shape data, idx;
	int axis, k = 0;

	(void)n_out;
	if (!bnf_shape_input(sn, 0, &data) || !bnf_shape_input(sn, 1, &idx) || data.rank < 1 ||
	    !bnf_shape_axis(bnf_node_attr_int(sn->node, "axis", 0), data.rank, &axis) ||
	    data.rank - 1 + idx.rank > BNF_SHAPE_MAX_RANK)
		return;
	for (int i = 0; i < axis; i++)
		out[0].dims[k++] = data.dims[i];
	for (int i = 0; i < idx.rank; i++)
		out[0].dims[k++] = idx.dims[i];
	for (int i = axis + 1; i < data.rank; i++)
		out[0].dims[k++] = data.dims[i];
	out[0].rank = k;
}

/* A Shape bound (start, end, opset 15) clamped to [0, rank]. */
static int64_t shape_bound(const Onnx__NodeProto *node, const char *name, int64_t def, int rank)
{
	int64_t v = bnf_node_attr_int(node, name, def);
	if (v < 0)
		v = v < -(int64_t)rank ? 0 : v + rank;
	return v > rank ? rank : v;
}

void bnf_rule_shape(const bnf_shape_node *sn, bnf_shape *out, size_t n_out)
{
	bnf_shape x;
	int64_t start = 0, end;

	(void)n_out;
	if (!bnf_shape_input(sn, 0, &x))
		return;
	end = x.rank;
	if (sn->opset >= 15) {
		start = shape_bound(sn->node, "start", 0, x.rank);
		end = shape_bound(sn->node, "end", x.rank, x.rank);
	}
	out[0].rank = 1;
	out[0].dims[0] = bnf_dim_of(end > start ? end - start : 0);
}

void bnf_rule_size(const bnf_shape_node *sn, bnf_shape *out, size_t n_out)
{
	(void)sn, (void)n_out;
	out[0].rank = 0;
}

void bnf_rule_tile(const bnf_shape_node *sn, bnf_shape *out, size_t n_out)
{
	int64_t rep[BNF_SHAPE_MAX_RANK];
	bnf_shape x;
	int n = bnf_shape_const_ints(sn, 1, rep, BNF_SHAPE_MAX_RANK);

	(void)n_out;
	if (!bnf_shape_input(sn, 0, &x) || n != x.rank)
		return;
	for (int i = 0; i < n; i++) {
		int64_t v;
		if (rep[i] < 0)
			return;
		out[0].dims[i] = rep[i] == 1 ? x.dims[i] : bnf_dim_of(-1);
		if (x.dims[i].value >= 0 && bnf_dim_mul(x.dims[i].value, rep[i], &v))
			out[0].dims[i] = bnf_dim_of(v);
	}
	out[0].rank = n;
}

void bnf_rule_constant_of_shape(const bnf_shape_node *sn, bnf_shape *out, size_t n_out)
{
	int64_t t[BNF_SHAPE_MAX_RANK];
	const Onnx__AttributeProto *val = bnf_node_attr(sn->node, "value");
	int n = bnf_shape_const_ints(sn, 0, t, BNF_SHAPE_MAX_RANK);

	(void)n_out;
	out[0].elem_type = val && val->t ? (val->t->has_data_type ? val->t->data_type : 0) : BNF_ELEM_FLOAT;
	for (int i = 0; i < n; i++)
		if (t[i] < 0)
			return;
	for (int i = 0; i < n; i++)
		out[0].dims[i] = bnf_dim_of(t[i]);
	out[0].rank = n < 0 ? -1 : n;
}

/* The shape of dims of a tensor (TensorProto or sparse). */
static void tensor_dims(const int64_t *dims, size_t n, bnf_shape *out)
{
	if (n > BNF_SHAPE_MAX_RANK)
		return;
	for (size_t i = 0; i < n; i++) {
		if (dims[i] < 0)
			return;
		out->dims[i] = bnf_dim_of(dims[i]);
	}
	out->rank = (int)n;
}

void bnf_rule_constant(const bnf_shape_node *sn, bnf_shape *out, size_t n_out)
{
	static const struct {
		const char *name;
		int elem;
		bool list;
	} scalars[] = {{"value_float", 1, false}, {"value_floats", 1, true},  {"value_int", 7, false},
		       {"value_ints", 7, true},   {"value_string", 8, false}, {"value_strings", 8, true}};
	const Onnx__AttributeProto *a;

	(void)n_out;
	if ((a = bnf_node_attr(sn->node, "value")) && a->t) {
		out[0].elem_type = a->t->has_data_type ? a->t->data_type : 0;
		tensor_dims(a->t->dims, a->t->n_dims, &out[0]);
		return;
	}
	if ((a = bnf_node_attr(sn->node, "sparse_value")) && a->sparse_tensor) {
		tensor_dims(a->sparse_tensor->dims, a->sparse_tensor->n_dims, &out[0]);
		return;
	}
	for (size_t i = 0; i < sizeof(scalars) / sizeof(scalars[0]); i++) {
		if (!(a = bnf_node_attr(sn->node, scalars[i].name)))
			continue;
		out[0].elem_type = scalars[i].elem;
		out[0].rank = scalars[i].list ? 1 : 0;
		out[0].dims[0] = bnf_dim_of((int64_t)(scalars[i].elem == 1 ? a->n_floats
						      : scalars[i].elem == 7 ? a->n_ints : a->n_strings));
		return;
	}
}

/* DepthToSpace moves blocks of channels into space, SpaceToDepth back:
 * [N, C, H, W] and [N, C / b², H * b, W * b]; sizes must divide. */
void bnf_rule_depth_space(const bnf_shape_node *sn, bnf_shape *out, size_t n_out)
{
	int64_t b = bnf_node_attr_int(sn->node, "blocksize", 0), bb, v;
	bool to_space = bnf_node_is_onnx(sn->node, "DepthToSpace");
	bnf_shape x;

	(void)n_out;
	if (!bnf_shape_input(sn, 0, &x) || x.rank != 4 || b < 1 || !bnf_dim_mul(b, b, &bb))
		return;
	out[0] = x;
	out[0].elem_type = 0;
	for (int i = 1; i < 4; i++) {
		int64_t d = x.dims[i].value, f = i == 1 ? bb : b;
		out[0].dims[i] = bnf_dim_of(-1);
		if (d < 0)
			continue;
		if ((i == 1) == to_space) { /* divided */
			if (d % f) {
				out[0] = bnf_shape_unknown();
				return;
			}
			out[0].dims[i] = bnf_dim_of(d / f);
		} else if (bnf_dim_mul(d, f, &v)) {
			out[0].dims[i] = bnf_dim_of(v);
		}
	}
}
