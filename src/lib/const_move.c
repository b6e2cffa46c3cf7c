/* The evaluators of ops that only move data (const_eval.h): those that
 * change dims alone keep their input's data where it is (Reshape,
 * Unsqueeze, Squeeze, Flatten); the others copy it into memory, within
 * the cap (Expand, Concat, Transpose, Slice, Gather).  Axes, indices and
 * shapes come from the model: each is checked, and one the model gets
 * wrong is BNF_CONST_INVALID. */
#include "const_eval.h"

#include <stdlib.h>
#include <string.h>

/* c, a value of input 0, takes new dims: the data as it is, never edited
 * in place. */
static bnf_const_status redim(bnf_const *c, const int64_t *dims, size_t rank)
{
	c->view.rank = rank;
	memcpy(c->view.dims, dims, rank * sizeof(dims[0]));
	c->tensor = NULL;
	c->exclusive = c->is_initializer = c->is_graph_input = false;
	return BNF_CONST_OK;
}

/* Input 0 of n into c, as it is. */
static bnf_const_status data_input(bnf_eval *e, const bnf_graph *gi, const Onnx__NodeProto *n, int depth, bnf_const *c)
{
	if (n->n_input < 1 || !n->input[0][0])
		return bnf_eval_fail(c, BNF_CONST_INVALID, n, "has no input");
	return bnf_eval_value(e, gi, n->input[0], depth, c);
}

bnf_const_status bnf_eval_reshape(bnf_eval *e, const bnf_graph *gi, const Onnx__NodeProto *n, int depth, bnf_const *c)
{
	int64_t dims[BNF_MAX_RANK];
	size_t len;
	bool allowzero = gi->opset >= 14 && bnf_node_attr_int(n, "allowzero", 0) != 0;
	bnf_const_status st;

	if (n->n_input != 2)
		return bnf_eval_fail(c, BNF_CONST_INVALID, n, "has %zu inputs, not 2", n->n_input);
	if ((st = bnf_eval_ints(e, gi, n, 1, depth, dims, BNF_MAX_RANK, &len, c)) != BNF_CONST_OK ||
	    (st = data_input(e, gi, n, depth, c)) != BNF_CONST_OK)
		return st;
	if (bnf_reshape_dims(c->view.dims, c->view.rank, c->view.numel, dims, len, allowzero) < 0)
		return bnf_eval_fail(c, BNF_CONST_INVALID, n, "%zu elements cannot take the shape given", c->view.numel);
	return redim(c, dims, len);
}

bnf_const_status bnf_eval_unsqueeze(bnf_eval *e, const bnf_graph *gi, const Onnx__NodeProto *n, int depth,
				    bnf_const *c)
{
	int64_t axes[BNF_MAX_RANK], dims[BNF_MAX_RANK];
	bool have, one[BNF_MAX_RANK] = {false};
	size_t na, r, ax;
	bnf_const_status st;

	if ((st = bnf_eval_list(e, gi, n, depth, "axes", 13, 1, axes, BNF_MAX_RANK, &na, &have, c)) != BNF_CONST_OK)
		return st;
	if (!have)
		return bnf_eval_fail(c, BNF_CONST_INVALID, n, "has no axes");
	if ((st = data_input(e, gi, n, depth, c)) != BNF_CONST_OK)
		return st;
	r = c->view.rank + na;
	if (r > BNF_MAX_RANK)
		return bnf_eval_fail(c, BNF_CONST_UNSUPPORTED, n, "rank %zu is above %d", r, BNF_MAX_RANK);
	for (size_t i = 0; i < na; i++) {
		if (!bnf_eval_axis(axes[i], r, &ax) || one[ax])
			return bnf_eval_fail(c, BNF_CONST_INVALID, n, "axis %lld is out of range or repeated for rank %zu",
					     (long long)axes[i], r);
		one[ax] = true;
	}
	for (size_t k = 0, j = 0; k < r; k++)
		dims[k] = one[k] ? 1 : c->view.dims[j++];
	return redim(c, dims, r);
}

bnf_const_status bnf_eval_squeeze(bnf_eval *e, const bnf_graph *gi, const Onnx__NodeProto *n, int depth,
				  bnf_const *c)
{
	int64_t axes[BNF_MAX_RANK], dims[BNF_MAX_RANK];
	bool have, drop[BNF_MAX_RANK] = {false};
	size_t na, r, ax, k = 0;
	bnf_const_status st;

	if ((st = bnf_eval_list(e, gi, n, depth, "axes", 13, 1, axes, BNF_MAX_RANK, &na, &have, c)) != BNF_CONST_OK ||
	    (st = data_input(e, gi, n, depth, c)) != BNF_CONST_OK)
		return st;
	r = c->view.rank;
	for (size_t i = 0; i < na; i++) {
		if (!bnf_eval_axis(axes[i], r, &ax) || c->view.dims[ax] != 1)
			return bnf_eval_fail(c, BNF_CONST_INVALID, n, "axis %lld is out of range for rank %zu or not of size 1",
					     (long long)axes[i], r);
		drop[ax] = true;
	}
	/* No axes, or an empty list of them: every dim of size 1, as
	 * onnxruntime squeezes (onnx's shape inference squeezes none). */
	for (size_t i = 0; (!have || na == 0) && i < r; i++)
		drop[i] = c->view.dims[i] == 1;
	for (size_t i = 0; i < r; i++)
		if (!drop[i])
			dims[k++] = c->view.dims[i];
	return redim(c, dims, k);
}

bnf_const_status bnf_eval_flatten(bnf_eval *e, const bnf_graph *gi, const Onnx__NodeProto *n, int depth,
				  bnf_const *c)
{
	int64_t axis = bnf_node_attr_int(n, "axis", 1), dims[2] = {1, 1}, r;
	bnf_const_status st;

	if ((st = data_input(e, gi, n, depth, c)) != BNF_CONST_OK)
		return st;
	r = (int64_t)c->view.rank;
	if (axis < -r || axis > r)
		return bnf_eval_fail(c, BNF_CONST_INVALID, n, "axis %lld is out of range for rank %lld", (long long)axis,
				     (long long)r);
	axis = axis < 0 ? axis + r : axis;
	for (int64_t i = 0; i < r; i++) /* within numel, unless a dim is 0 */
		if (__builtin_mul_overflow(dims[i < axis ? 0 : 1], c->view.dims[i], &dims[i < axis ? 0 : 1]))
			return bnf_eval_fail(c, BNF_CONST_TOO_LARGE, n, "a side of the flattened shape is 2^63 or more");
	return redim(c, dims, 2);
}

bnf_const_status bnf_eval_expand(bnf_eval *e, const bnf_graph *gi, const Onnx__NodeProto *n, int depth, bnf_const *c)
{
	int64_t shape[BNF_MAX_RANK];
	size_t ns;
	bnf_arr in = {0}, out = {0};
	bnf_walk w;
	bnf_const_status st;

	if ((st = bnf_eval_ints(e, gi, n, 1, depth, shape, BNF_MAX_RANK, &ns, c)) != BNF_CONST_OK ||
	    (st = bnf_eval_input(e, gi, n, 0, depth, &in, c)) != BNF_CONST_OK)
		return st;
	out.dtype = in.dtype;
	for (size_t i = 0; i < ns; i++)
		if (shape[i] < 0)
			st = bnf_eval_fail(c, BNF_CONST_INVALID, n, "shape holds %lld", (long long)shape[i]);
	if (st == BNF_CONST_OK && !bnf_eval_broadcast(in.dims, in.rank, shape, ns, out.dims, &out.rank))
		st = bnf_eval_fail(c, BNF_CONST_INVALID, n, "a value of rank %zu does not broadcast to the shape given",
				   in.rank);
	if (st == BNF_CONST_OK && !bnf_eval_numel(out.dims, out.rank, &out.numel))
		st = bnf_eval_fail(c, BNF_CONST_TOO_LARGE, n, "the shape given has more elements than a machine holds");
	if (st == BNF_CONST_OK && (st = bnf_eval_alloc(e, n, &out, c)) == BNF_CONST_OK) {
		bnf_walk_init(&w, out.dims, out.rank);
		bnf_walk_broadcast(&w, 0, in.dims, in.rank);
		for (size_t k = 0; k < out.numel; k++, bnf_walk_next(&w))
			out.x[k] = in.x[w.off[0]];
		st = bnf_eval_result(&out, c);
	}
	bnf_arr_free(&in);
	bnf_arr_free(&out);
	return st;
}

/* Whether the inputs of a Concat fit along axis (same dtype and rank,
 * equal dims elsewhere); out gets their dims and numel. */
static bnf_const_status concat_dims(const Onnx__NodeProto *n, const bnf_arr *in, size_t count, size_t axis,
				    bnf_arr *out, bnf_const *c)
{
	*out = (bnf_arr){.dtype = in[0].dtype, .rank = in[0].rank};
	memcpy(out->dims, in[0].dims, sizeof(out->dims));
	out->dims[axis] = 0;
	for (size_t j = 0; j < count; j++) {
		if (in[j].dtype != out->dtype || in[j].rank != out->rank)
			return bnf_eval_fail(c, BNF_CONST_INVALID, n, "input %zu differs in type or rank", j);
		for (size_t d = 0; d < out->rank; d++)
			if (d != axis && in[j].dims[d] != out->dims[d])
				return bnf_eval_fail(c, BNF_CONST_INVALID, n, "input %zu has %lld on axis %zu, input 0 %lld", j,
						     (long long)in[j].dims[d], d, (long long)out->dims[d]);
		/* within the cap when the inputs hold elements, not when empty */
		if (__builtin_add_overflow(out->dims[axis], in[j].dims[axis], &out->dims[axis]))
			return bnf_eval_fail(c, BNF_CONST_TOO_LARGE, n, "the dims on axis %zu add up to 2^63 or more", axis);
	}
	if (!bnf_eval_numel(out->dims, out->rank, &out->numel))
		return bnf_eval_fail(c, BNF_CONST_TOO_LARGE, n, "the result has more elements than a machine holds");
	return BNF_CONST_OK;
}

bnf_const_status bnf_eval_concat(bnf_eval *e, const bnf_graph *gi, const Onnx__NodeProto *n, int depth, bnf_const *c)
{
	int64_t axis_attr = bnf_node_attr_int(n, "axis", gi->opset < 4 ? 1 : INT64_MIN);
	size_t count = n->n_input, total = 0, axis = 0, outer = 1, at = 0;
	bnf_arr *in = calloc(count ? count : 1, sizeof(*in)), out = {0};
	bnf_const_status st = BNF_CONST_OK;

	if (!in)
		return bnf_eval_fail(c, BNF_CONST_UNSUPPORTED, n, "out of memory");
	if (count == 0 || axis_attr == INT64_MIN)
		st = bnf_eval_fail(c, BNF_CONST_INVALID, n, "has no inputs or no axis");
	for (size_t j = 0; j < count && st == BNF_CONST_OK; j++) {
		/* all inputs are in memory at once: their sum is bounded too */
		if ((st = bnf_eval_input(e, gi, n, j, depth, &in[j], c)) == BNF_CONST_OK && (total += in[j].numel) > e->max_elems)
			st = bnf_eval_fail(c, BNF_CONST_TOO_LARGE, n,
					   "its inputs have %zu elements or more, above the cap of %zu bytes as doubles", total,
					   e->max_bytes);
	}
	if (st == BNF_CONST_OK && !bnf_eval_axis(axis_attr, in[0].rank, &axis))
		st = bnf_eval_fail(c, BNF_CONST_INVALID, n, "axis %lld is out of range for rank %zu", (long long)axis_attr,
				   in[0].rank);
	if (st == BNF_CONST_OK && (st = concat_dims(n, in, count, axis, &out, c)) == BNF_CONST_OK &&
	    (st = bnf_eval_alloc(e, n, &out, c)) == BNF_CONST_OK) {
		for (size_t d = 0; d < axis; d++)
			outer *= (size_t)out.dims[d];
		/* An empty result copies nothing: its outer dims alone may be huge. */
		for (size_t o = 0; out.numel > 0 && o < outer; o++)
			for (size_t j = 0; j < count; j++) {
				size_t block = outer ? in[j].numel / outer : 0;
				memcpy(out.x + at, in[j].x + o * block, block * sizeof(double));
				at += block;
			}
		st = bnf_eval_result(&out, c);
	}
	for (size_t j = 0; j < count; j++)
		bnf_arr_free(&in[j]);
	free(in);
	bnf_arr_free(&out);
	return st;
}

bnf_const_status bnf_eval_transpose(bnf_eval *e, const bnf_graph *gi, const Onnx__NodeProto *n, int depth,
				    bnf_const *c)
{
	const Onnx__AttributeProto *pa = bnf_node_attr(n, "perm");
	int64_t perm[BNF_MAX_RANK], stride[BNF_MAX_RANK], s = 1;
	bool seen[BNF_MAX_RANK] = {false};
	bnf_arr in, out = {0};
	bnf_walk w;
	bnf_const_status st;

	if ((st = bnf_eval_input(e, gi, n, 0, depth, &in, c)) != BNF_CONST_OK)
		return st;
	/* Strides within numel; an empty input is never read, and the
	 * products of its dims need not fit. */
	for (size_t i = in.rank; i-- > 0; s *= in.numel > 0 ? in.dims[i] : 1)
		stride[i] = s;
	if (pa && pa->n_ints != in.rank)
		st = bnf_eval_fail(c, BNF_CONST_INVALID, n, "perm has %zu axes, the input %zu", pa->n_ints, in.rank);
	for (size_t i = 0; i < in.rank && st == BNF_CONST_OK; i++) {
		perm[i] = pa ? pa->ints[i] : (int64_t)(in.rank - 1 - i); /* default: reversed */
		if (perm[i] < 0 || (size_t)perm[i] >= in.rank || seen[perm[i]])
			st = bnf_eval_fail(c, BNF_CONST_INVALID, n, "perm is not a permutation of %zu axes", in.rank);
		else
			seen[perm[i]] = true;
	}
	out = (bnf_arr){.dtype = in.dtype, .rank = in.rank, .numel = in.numel};
	if (st == BNF_CONST_OK && (st = bnf_eval_alloc(e, n, &out, c)) == BNF_CONST_OK) {
		for (size_t i = 0; i < in.rank; i++)
			out.dims[i] = in.dims[perm[i]];
		bnf_walk_init(&w, out.dims, out.rank);
		for (size_t i = 0; i < in.rank; i++)
			w.step[0][i] = stride[perm[i]];
		for (size_t k = 0; k < out.numel; k++, bnf_walk_next(&w))
			out.x[k] = in.x[w.off[0]];
		st = bnf_eval_result(&out, c);
	}
	bnf_arr_free(&in);
	bnf_arr_free(&out);
	return st;
}

/* The lists of a Slice (attributes before opset 10, inputs from then on),
 * checked against each other; absent axes are 0, 1, ..., absent steps 1. */
typedef struct slice_args {
	int64_t starts[BNF_MAX_RANK], ends[BNF_MAX_RANK], axes[BNF_MAX_RANK], steps[BNF_MAX_RANK];
	size_t n;
} slice_args;

static bnf_const_status slice_args_read(bnf_eval *e, const bnf_graph *gi, const Onnx__NodeProto *n, int depth,
					slice_args *s, bnf_const *c)
{
	size_t ne, na, nst;
	bool hs, he, ha, hst;
	bnf_const_status st;

	if ((st = bnf_eval_list(e, gi, n, depth, "starts", 10, 1, s->starts, BNF_MAX_RANK, &s->n, &hs, c)) ||
	    (st = bnf_eval_list(e, gi, n, depth, "ends", 10, 2, s->ends, BNF_MAX_RANK, &ne, &he, c)) ||
	    (st = bnf_eval_list(e, gi, n, depth, "axes", 10, 3, s->axes, BNF_MAX_RANK, &na, &ha, c)) ||
	    (st = bnf_eval_list(e, gi, n, depth, "steps", 10, 4, s->steps, BNF_MAX_RANK, &nst, &hst, c)))
		return st;
	if (!hs || !he || ne != s->n || (ha && na != s->n) || (hst && nst != s->n))
		return bnf_eval_fail(c, BNF_CONST_INVALID, n, "starts, ends, axes and steps do not match");
	for (size_t i = 0; i < s->n; i++) {
		if (!ha)
			s->axes[i] = (int64_t)i;
		if (!hst)
			s->steps[i] = 1;
	}
	return BNF_CONST_OK;
}

/* One axis of a Slice clamped as the spec says: its first index *first
 * and its length *len, for a dim of size dim. */
static void slice_axis(int64_t start, int64_t end, int64_t step, int64_t dim, int64_t *first, int64_t *len)
{
	start = start < 0 ? start + dim : start;
	end = end < 0 ? end + dim : end;
	if (step > 0) {
		start = start < 0 ? 0 : start > dim ? dim : start;
		end = end < 0 ? 0 : end > dim ? dim : end;
		*len = end > start ? 1 + (end - start - 1) / step : 0;
	} else {
		int64_t back = step < -INT64_MAX ? INT64_MAX : -step;
		start = start < 0 ? 0 : start > dim - 1 ? dim - 1 : start;
		end = end < -1 ? -1 : end > dim - 1 ? dim - 1 : end;
		*len = start > end ? 1 + (start - end - 1) / back : 0;
	}
	*first = start;
}

bnf_const_status bnf_eval_slice(bnf_eval *e, const bnf_graph *gi, const Onnx__NodeProto *n, int depth, bnf_const *c)
{
	slice_args s;
	int64_t stride[BNF_MAX_RANK], first[BNF_MAX_RANK] = {0}, step[BNF_MAX_RANK], st1 = 1;
	bool seen[BNF_MAX_RANK] = {false};
	bnf_arr in = {0}, out = {0};
	bnf_walk w;
	size_t ax;
	bnf_const_status st;

	if ((st = slice_args_read(e, gi, n, depth, &s, c)) != BNF_CONST_OK ||
	    (st = bnf_eval_input(e, gi, n, 0, depth, &in, c)) != BNF_CONST_OK)
		return st;
	out = (bnf_arr){.dtype = in.dtype, .rank = in.rank};
	for (size_t i = in.rank; i-- > 0; st1 *= in.numel > 0 ? in.dims[i] : 1) { /* as Transpose's */
		stride[i] = st1;
		step[i] = 1;
		out.dims[i] = in.dims[i];
	}
	for (size_t i = 0; i < s.n && st == BNF_CONST_OK; i++) {
		if (!bnf_eval_axis(s.axes[i], in.rank, &ax) || seen[ax] || s.steps[i] == 0) {
			st = bnf_eval_fail(c, BNF_CONST_INVALID, n, "axis %lld (step %lld) is out of range, repeated or steps 0",
					   (long long)s.axes[i], (long long)s.steps[i]);
			break;
		}
		seen[ax] = true;
		step[ax] = s.steps[i];
		slice_axis(s.starts[i], s.ends[i], s.steps[i], in.dims[ax], &first[ax], &out.dims[ax]);
	}
	/* Each output dim is at most the input's, 0 where it is 0. */
	if (st == BNF_CONST_OK && !bnf_eval_numel(out.dims, out.rank, &out.numel))
		st = bnf_eval_fail(c, BNF_CONST_TOO_LARGE, n, "the result has more elements than a machine holds");
	if (st == BNF_CONST_OK && (st = bnf_eval_alloc(e, n, &out, c)) == BNF_CONST_OK) {
		bnf_walk_init(&w, out.dims, out.rank);
		for (size_t i = 0; out.numel > 0 && i < in.rank; i++) {
			/* first <= dim; a step matters only along an output dim of 2 or
			 * more, and is then below the input dim: both within numel. */
			w.off[0] += first[i] * stride[i];
			w.step[0][i] = out.dims[i] > 1 ? step[i] * stride[i] : 0;
		}
		for (size_t k = 0; k < out.numel; k++, bnf_walk_next(&w))
			out.x[k] = in.x[w.off[0]];
		st = bnf_eval_result(&out, c);
	}
	bnf_arr_free(&in);
	bnf_arr_free(&out);
	return st;
}

/* Gather's output dims: data's before axis, the indices', data's after. */
static bnf_const_status gather_dims(const Onnx__NodeProto *n, const bnf_arr *data, const bnf_arr *idx, size_t axis,
				    bnf_arr *out, bnf_const *c)
{
	size_t r = data->rank - 1 + idx->rank, k = 0;

	if (r > BNF_MAX_RANK)
		return bnf_eval_fail(c, BNF_CONST_UNSUPPORTED, n, "rank %zu is above %d", r, BNF_MAX_RANK);
	*out = (bnf_arr){.dtype = data->dtype, .rank = r};
	for (size_t d = 0; d < axis; d++)
		out->dims[k++] = data->dims[d];
	for (size_t d = 0; d < idx->rank; d++)
		out->dims[k++] = idx->dims[d];
	for (size_t d = axis + 1; d < data->rank; d++)
		out->dims[k++] = data->dims[d];
	if (!bnf_eval_numel(out->dims, out->rank, &out->numel))
		return bnf_eval_fail(c, BNF_CONST_TOO_LARGE, n, "the result has more elements than a machine holds");
	return BNF_CONST_OK;
}

bnf_const_status bnf_eval_gather(bnf_eval *e, const bnf_graph *gi, const Onnx__NodeProto *n, int depth, bnf_const *c)
{
	int64_t axis_attr = bnf_node_attr_int(n, "axis", 0), dim;
	bnf_arr data = {0}, idx = {0}, out = {0};
	size_t axis = 0, outer = 1, inner = 1;
	bnf_const_status st;

	if ((st = bnf_eval_input(e, gi, n, 0, depth, &data, c)) != BNF_CONST_OK ||
	    (st = bnf_eval_input(e, gi, n, 1, depth, &idx, c)) != BNF_CONST_OK)
		goto out;
	if (data.rank == 0 || !bnf_eval_axis(axis_attr, data.rank, &axis) ||
	    (idx.dtype != BNF_DT_INT64 && idx.dtype != BNF_DT_INT32)) {
		st = bnf_eval_fail(c, BNF_CONST_INVALID, n, "axis %lld does not fit rank %zu, or the indices are not integers",
				   (long long)axis_attr, data.rank);
		goto out;
	}
	dim = data.dims[axis];
	for (size_t k = 0; k < idx.numel; k++) {
		double j = idx.x[k] < 0 ? idx.x[k] + (double)dim : idx.x[k];
		if (j < 0 || j >= (double)dim) {
			st = bnf_eval_fail(c, BNF_CONST_INVALID, n, "index %.0f is out of range for a dim of %lld", idx.x[k],
					   (long long)dim);
			goto out;
		}
		idx.x[k] = j;
	}
	if ((st = gather_dims(n, &data, &idx, axis, &out, c)) != BNF_CONST_OK ||
	    (st = bnf_eval_alloc(e, n, &out, c)) != BNF_CONST_OK)
		goto out;
	for (size_t d = 0; out.numel > 0 && d < axis; d++) /* within numel unless empty */
		outer *= (size_t)data.dims[d];
	for (size_t d = axis + 1; out.numel > 0 && d < data.rank; d++)
		inner *= (size_t)data.dims[d];
	for (size_t o = 0, at = 0; out.numel > 0 && o < outer; o++)
		for (size_t k = 0; k < idx.numel; k++, at += inner)
			memcpy(out.x + at, data.x + (o * (size_t)dim + (size_t)idx.x[k]) * inner, inner * sizeof(double));
	st = bnf_eval_result(&out, c);
out:
	bnf_arr_free(&data);
	bnf_arr_free(&idx);
	bnf_arr_free(&out);
	return st;
}
