/* Shape rules of Slice, Pad and Resize / Upsample, whose output sizes come
 * from per-axis lists (attributes in early opsets, constant inputs later),
 * after ONNX's own inference functions (onnx/defs). */
#include <math.h>
#include <string.h>

#include "shapes_internal.h"

/* What reading a node's lists gives. */
enum { LISTS_OK = 0, LISTS_UNREAD = -1, LISTS_INVALID = -2 };

typedef struct slice_lists {
	int n;
	int64_t starts[BNF_SHAPE_MAX_RANK], ends[BNF_SHAPE_MAX_RANK];
	int64_t axes[BNF_SHAPE_MAX_RANK], steps[BNF_SHAPE_MAX_RANK];
} slice_lists;

/* Optional list i of Slice (axes, steps) into v, n long; absent: def(k). */
static int slice_optional(const bnf_shape_node *sn, size_t i, int n, int64_t *v, bool count_up)
{
	int got;

	if (!bnf_shape_has_input(sn, i)) {
		for (int k = 0; k < n; k++)
			v[k] = count_up ? k : 1;
		return LISTS_OK;
	}
	got = bnf_shape_const_ints(sn, i, v, BNF_SHAPE_MAX_RANK);
	return got < 0 ? LISTS_UNREAD : got != n ? LISTS_INVALID : LISTS_OK;
}

/* Slice's lists: attributes before opset 10, constant inputs from 10. */
static int slice_read(const bnf_shape_node *sn, slice_lists *l)
{
	const Onnx__NodeProto *node = sn->node;
	int ne, r;

	if (sn->opset < 10) {
		l->n = bnf_shape_attr_ints(node, "starts", l->starts, BNF_SHAPE_MAX_RANK);
		ne = bnf_shape_attr_ints(node, "ends", l->ends, BNF_SHAPE_MAX_RANK);
		if (l->n < 0 || l->n > BNF_SHAPE_MAX_RANK || ne != l->n)
			return LISTS_INVALID;
		r = bnf_shape_attr_ints(node, "axes", l->axes, BNF_SHAPE_MAX_RANK);
		for (int k = 0; k < l->n; k++) {
			l->steps[k] = 1;
			if (r == -1)
				l->axes[k] = k;
		}
		return r != -1 && r != l->n ? LISTS_INVALID : LISTS_OK;
	}
	l->n = bnf_shape_const_ints(sn, 1, l->starts, BNF_SHAPE_MAX_RANK);
	ne = bnf_shape_const_ints(sn, 2, l->ends, BNF_SHAPE_MAX_RANK);
	if (l->n < 0 || ne < 0)
		return LISTS_UNREAD;
	if (ne != l->n)
		return LISTS_INVALID;
	r = slice_optional(sn, 3, l->n, l->axes, true);
	return r != LISTS_OK ? r : slice_optional(sn, 4, l->n, l->steps, false);
}

/* a / b rounded up, for a > 0 and b > 0 given as magnitudes. */
static int64_t ceil_div(uint64_t a, uint64_t b)
{
	return (int64_t)((a - 1) / b + 1);
}

/* The length of one sliced axis of size d, as the spec clamps start and
 * end (towards the end for a positive step, the start for a negative one). */
static int64_t slice_length(int64_t d, int64_t start, int64_t end, int64_t step)
{
	if (d == 0)
		return 0;
	if (start < 0)
		start += d;
	if (end < 0)
		end += d;
	if (step > 0) {
		start = start < 0 ? 0 : start > d ? d : start;
		end = end < 0 ? 0 : end > d ? d : end;
		return end > start ? ceil_div((uint64_t)(end - start), (uint64_t)step) : 0;
	}
	start = start < 0 ? 0 : start > d - 1 ? d - 1 : start;
	end = end < -1 ? -1 : end > d - 1 ? d - 1 : end;
	return start > end ? ceil_div((uint64_t)(start - end), (uint64_t)(-(step + 1)) + 1) : 0;
}

void bnf_rule_slice(const bnf_shape_node *sn, bnf_shape *out, size_t n_out)
{
	slice_lists l;
	bool seen[BNF_SHAPE_MAX_RANK] = {false};
	bnf_shape x;
	int r;

	(void)n_out;
	if (!bnf_shape_input(sn, 0, &x))
		return;
	r = slice_read(sn, &l);
	if (r == LISTS_UNREAD)
		bnf_shape_rank_only(&out[0], x.rank);
	if (r != LISTS_OK)
		return;
	out[0] = x;
	out[0].elem_type = 0;
	for (int k = 0; k < l.n; k++) {
		int a;
		if (!bnf_shape_axis(l.axes[k], x.rank, &a) || seen[a] || l.steps[k] == 0) {
			out[0] = bnf_shape_unknown();
			return;
		}
		seen[a] = true;
		out[0].dims[a] = bnf_dim_of(-1);
		if (x.dims[a].value >= 0)
			out[0].dims[a] = bnf_dim_of(slice_length(x.dims[a].value, l.starts[k], l.ends[k], l.steps[k]));
	}
}

/* Pad's pads: the attribute (`paddings` in opset 1) before opset 11, the
 * constant input from 11; with axes (input 3, opset 18) when given. */
static int pad_read(const bnf_shape_node *sn, int rank, int64_t *pads, int *axes, int *n_axes)
{
	int64_t ax[BNF_SHAPE_MAX_RANK];
	bool seen[BNF_SHAPE_MAX_RANK] = {false};
	int n, na = rank;

	if (sn->opset < 11)
		n = bnf_shape_attr_ints(sn->node, sn->opset < 2 ? "paddings" : "pads", pads, 2 * BNF_SHAPE_MAX_RANK);
	else if ((n = bnf_shape_const_ints(sn, 1, pads, 2 * BNF_SHAPE_MAX_RANK)) < 0)
		return bnf_shape_has_input(sn, 1) ? LISTS_UNREAD : LISTS_INVALID;
	if (sn->opset >= 18 && bnf_shape_has_input(sn, 3)) {
		if ((na = bnf_shape_const_ints(sn, 3, ax, BNF_SHAPE_MAX_RANK)) < 0)
			return LISTS_UNREAD;
	} else {
		for (int k = 0; k < rank; k++)
			ax[k] = k;
	}
	if (n < 0 || n != 2 * na)
		return LISTS_INVALID;
	for (int k = 0; k < na; k++)
		if (!bnf_shape_axis(ax[k], rank, &axes[k]) || seen[axes[k]])
			return LISTS_INVALID;
		else
			seen[axes[k]] = true;
	*n_axes = na;
	return LISTS_OK;
}

void bnf_rule_pad(const bnf_shape_node *sn, bnf_shape *out, size_t n_out)
{
	int64_t pads[2 * BNF_SHAPE_MAX_RANK];
	int axes[BNF_SHAPE_MAX_RANK], na = 0, r;
	bnf_shape x;

	(void)n_out;
	if (!bnf_shape_input(sn, 0, &x))
		return;
	r = pad_read(sn, x.rank, pads, axes, &na);
	if (r == LISTS_UNREAD)
		bnf_shape_rank_only(&out[0], x.rank);
	if (r != LISTS_OK)
		return;
	out[0] = x;
	out[0].elem_type = 0;
	for (int k = 0; k < na; k++) {
		int64_t add, size, d = x.dims[axes[k]].value;
		bnf_dim *o = &out[0].dims[axes[k]];
		if (__builtin_add_overflow(pads[k], pads[k + na], &add) ||
		    (d >= 0 && (__builtin_add_overflow(d, add, &size) || size < 0))) {
			out[0] = bnf_shape_unknown(); /* pads that overflow or crop past nothing */
			return;
		}
		if (d >= 0)
			*o = bnf_dim_of(size);
		else if (add != 0)
			*o = bnf_dim_of(-1);
	}
}

/* Resize / Upsample's scales: the attribute (Upsample before opset 9) or
 * the constant input (1, or 2 from Resize-11). */
static int resize_scales(const bnf_shape_node *sn, bool upsample, double *scales)
{
	const Onnx__AttributeProto *a;

	if (upsample && sn->opset < 9) {
		if (!(a = bnf_node_attr(sn->node, "scales")) || a->n_floats > BNF_SHAPE_MAX_RANK)
			return -1;
		for (size_t i = 0; i < a->n_floats; i++)
			scales[i] = a->floats[i];
		return (int)a->n_floats;
	}
	return bnf_shape_const_floats(sn, !upsample && sn->opset >= 11 ? 2 : 1, scales, BNF_SHAPE_MAX_RANK);
}

/* floor(d * scale) computed in float as ONNX does; -1 when it is no size. */
static int64_t scaled(int64_t d, double scale)
{
	float p = (float)d * (float)scale;
	if (!(p >= 0.0f) || p >= 9.2e18f)
		return -1;
	return (int64_t)floorf(p);
}

/* Resize with a constant `sizes` or `scales`; Upsample.  Resize-18's axes
 * and aspect-ratio policies are left unknown. */
void bnf_rule_resize(const bnf_shape_node *sn, bnf_shape *out, size_t n_out)
{
	bool upsample = bnf_node_is_onnx(sn->node, "Upsample");
	int64_t sizes[BNF_SHAPE_MAX_RANK];
	double scales[BNF_SHAPE_MAX_RANK];
	bnf_shape x, r;
	int n;

	(void)n_out;
	if (!bnf_shape_input(sn, 0, &x) || (!upsample && sn->opset >= 18 && (bnf_node_attr(sn->node, "axes") ||
		!bnf_shape_attr_is(sn->node, "keep_aspect_ratio_policy", "stretch", "stretch"))))
		return;
	r = x;
	r.elem_type = 0;
	if (!upsample && sn->opset >= 11 && bnf_shape_has_input(sn, 3)) {
		if ((n = bnf_shape_const_ints(sn, 3, sizes, BNF_SHAPE_MAX_RANK)) < 0) {
			bnf_shape_rank_only(&out[0], x.rank);
			return;
		}
		if (n != x.rank)
			return;
		for (int i = 0; i < n; i++)
			r.dims[i] = bnf_dim_of(sizes[i]);
	} else if ((n = resize_scales(sn, upsample, scales)) < 0) {
		bnf_shape_rank_only(&out[0], x.rank);
		return;
	} else {
		if (n != x.rank)
			return;
		for (int i = 0; i < n; i++) {
			if (x.dims[i].value >= 0)
				r.dims[i] = bnf_dim_of(scaled(x.dims[i].value, scales[i]));
			else if (scales[i] != 1.0)
				r.dims[i] = bnf_dim_of(-1);
		}
	}
	for (int i = 0; i < n; i++)
		if (r.dims[i].value < 0 && x.dims[i].value >= 0)
			return; /* a negative size or scale */
	out[0] = r;
}
