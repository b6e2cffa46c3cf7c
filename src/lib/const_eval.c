/* bnf_graph_const_eval: the walk from a name to the node computing it,
 * the budget of one query, reading values into memory and handing them
 * back, and the ops that compute new numbers (arithmetic, Cast) or read
 * shapes (Shape, Size).  Ops that only move data are in const_move.c. */
#include "const_eval.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

/* Integers are carried as doubles; below this magnitude every whole
 * number is exact, and a result at or above it may have been rounded. */
#define INT_LIMIT 0x1p53

static bool is_int(int dtype)
{
	return dtype == BNF_DT_INT64 || dtype == BNF_DT_INT32;
}

static const char *out_name(const Onnx__NodeProto *n)
{
	return n->n_output >= 1 && n->output[0][0] ? n->output[0] : "?";
}

bnf_const_status bnf_eval_fail(bnf_const *c, bnf_const_status st, const Onnx__NodeProto *n, const char *fmt, ...)
{
	char why[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	bnf_const_release(c);
	snprintf(c->msg, sizeof(c->msg), "%.20s '%.80s': %.140s", n->op_type ? n->op_type : "?", out_name(n), why);
	return st;
}

void bnf_arr_free(bnf_arr *a)
{
	free(a->x);
	a->x = NULL;
}

bool bnf_eval_numel(const int64_t *dims, size_t rank, size_t *numel)
{
	bool empty = false;

	for (size_t i = 0; i < rank; i++) {
		if (dims[i] < 0)
			return false;
		empty = empty || dims[i] == 0;
	}
	*numel = empty ? 0 : 1; /* a 0 anywhere: empty, however large the other dims */
	for (size_t i = 0; !empty && i < rank; i++)
		if ((uint64_t)dims[i] > SIZE_MAX || !bnf_mul_size(*numel, (size_t)dims[i], numel))
			return false;
	return true;
}

bool bnf_eval_axis(int64_t axis, size_t rank, size_t *out)
{
	int64_t r = (int64_t)rank;
	if (axis < -r || axis >= r)
		return false;
	*out = (size_t)(axis < 0 ? axis + r : axis);
	return true;
}

bool bnf_eval_broadcast(const int64_t *a, size_t ra, const int64_t *b, size_t rb, int64_t *dims, size_t *rank)
{
	size_t r = ra > rb ? ra : rb;

	for (size_t i = 0; i < r; i++) {
		int64_t x = i + ra >= r ? a[i + ra - r] : 1, y = i + rb >= r ? b[i + rb - r] : 1;
		if (x == y || y == 1)
			dims[i] = x;
		else if (x == 1)
			dims[i] = y;
		else
			return false;
	}
	*rank = r;
	return true;
}

void bnf_walk_init(bnf_walk *w, const int64_t *dims, size_t rank)
{
	memset(w, 0, sizeof(*w));
	w->rank = rank;
	memcpy(w->dims, dims, rank * sizeof(dims[0]));
}

void bnf_walk_broadcast(bnf_walk *w, int k, const int64_t *d, size_t rd)
{
	int64_t stride = 1;

	/* An empty input makes the walk empty: it reads nothing, and the
	 * products of its other dims need not fit. */
	for (size_t j = 0; j < rd; j++)
		if (d[j] == 0)
			return;
	for (size_t j = rd; j-- > 0;) {
		w->step[k][w->rank - rd + j] = d[j] == 1 ? 0 : stride;
		stride *= d[j]; /* within the input's element count, in memory */
	}
}

void bnf_walk_next(bnf_walk *w)
{
	for (size_t d = w->rank; d-- > 0;) {
		w->off[0] += w->step[0][d];
		w->off[1] += w->step[1][d];
		if (++w->idx[d] < (size_t)w->dims[d])
			return;
		w->off[0] -= w->step[0][d] * w->dims[d];
		w->off[1] -= w->step[1][d] * w->dims[d];
		w->idx[d] = 0;
	}
}

bnf_const_status bnf_eval_alloc(const bnf_eval *e, const Onnx__NodeProto *n, bnf_arr *a, bnf_const *c)
{
	size_t bytes = a->numel * sizeof(double); /* numel is within the cap: no overflow */

	if (a->numel > e->max_elems)
		return bnf_eval_fail(c, BNF_CONST_TOO_LARGE, n,
				     "%zu elements would take %.0f bytes, above the cap of %zu on a value computed from constants",
				     a->numel, (double)a->numel * sizeof(double), e->max_bytes);
	if (e->spend && (e->spend->bytes > e->run_bytes || bytes > e->run_bytes - e->spend->bytes))
		return bnf_eval_fail(c, BNF_CONST_TOO_LARGE, n,
				     "the run's budget of %zu bytes for values computed from constants is spent (%zu more asked)",
				     e->run_bytes, bytes);
	if (!(a->x = malloc((a->numel ? a->numel : 1) * sizeof(double))))
		return bnf_eval_fail(c, BNF_CONST_UNSUPPORTED, n, "out of memory for %zu elements", a->numel);
	if (e->spend)
		e->spend->bytes += bytes;
	return BNF_CONST_OK;
}

bnf_const_status bnf_eval_result(bnf_arr *a, bnf_const *c)
{
	memset(&c->view, 0, sizeof(c->view));
	c->view.dtype = a->dtype;
	c->view.rank = a->rank;
	memcpy(c->view.dims, a->dims, a->rank * sizeof(a->dims[0]));
	c->view.numel = a->numel;
	c->view.doubles = a->x;
	c->owned = a->x;
	c->tensor = NULL;
	c->exclusive = c->is_initializer = c->is_graph_input = false;
	a->x = NULL;
	return BNF_CONST_OK;
}

bnf_const_status bnf_eval_input(bnf_eval *e, const bnf_graph *gi, const Onnx__NodeProto *n, size_t i, int depth,
				bnf_arr *a, bnf_const *c)
{
	bnf_const in;
	bnf_const_status st;

	memset(a, 0, sizeof(*a));
	if (i >= n->n_input || !n->input[i][0])
		return bnf_eval_fail(c, BNF_CONST_NOT_CONSTANT, n, "input %zu is missing", i);
	if ((st = bnf_eval_value(e, gi, n->input[i], depth, &in)) != BNF_CONST_OK) {
		memcpy(c->msg, in.msg, sizeof(c->msg));
		return st;
	}
	if (!bnf_dtype_is_float(in.view.dtype) && !is_int(in.view.dtype)) {
		bnf_const_release(&in);
		return bnf_eval_fail(c, BNF_CONST_NOT_CONSTANT, n, "input '%.80s' has type %s, which bnfold does not evaluate",
				     n->input[i], bnf_dtype_name(in.view.dtype));
	}
	a->dtype = in.view.dtype;
	a->rank = in.view.rank;
	memcpy(a->dims, in.view.dims, sizeof(a->dims));
	a->numel = in.view.numel;
	if (in.owned && in.view.doubles == in.owned) { /* computed already, within the cap: take it */
		a->x = in.owned;
		in.owned = NULL;
	} else if ((st = bnf_eval_alloc(e, n, a, c)) != BNF_CONST_OK) {
		bnf_const_release(&in);
		return st;
	} else {
		bnf_tview_read(&in.view, a->x);
	}
	bnf_const_release(&in);
	for (size_t k = 0; is_int(a->dtype) && k < a->numel; k++)
		if (!(fabs(a->x[k]) < INT_LIMIT)) {
			bnf_arr_free(a);
			return bnf_eval_fail(c, BNF_CONST_NOT_CONSTANT, n, "input '%.80s' holds an integer of magnitude 2^53 or more",
					     n->input[i]);
		}
	return BNF_CONST_OK;
}

bnf_const_status bnf_eval_ints(bnf_eval *e, const bnf_graph *gi, const Onnx__NodeProto *n, size_t i, int depth,
			       int64_t *out, size_t max, size_t *len, bnf_const *c)
{
	bnf_const in;
	bnf_const_status st = BNF_CONST_OK;

	if (i >= n->n_input || !n->input[i][0])
		return bnf_eval_fail(c, BNF_CONST_NOT_CONSTANT, n, "input %zu is missing", i);
	if ((st = bnf_eval_value(e, gi, n->input[i], depth, &in)) != BNF_CONST_OK) {
		memcpy(c->msg, in.msg, sizeof(c->msg));
		return st;
	}
	/* Read exactly, not as doubles: Slice's INT64_MAX means "to the end". */
	if (!is_int(in.view.dtype) || in.view.rank > 1)
		st = bnf_eval_fail(c, BNF_CONST_INVALID, n, "input %zu is not a 1-D integer tensor", i);
	else if (in.view.numel > max)
		st = bnf_eval_fail(c, BNF_CONST_UNSUPPORTED, n, "input %zu holds %zu values, more than the %zu read here", i,
				   in.view.numel, max);
	else if (bnf_tview_read_i64(&in.view, out) < 0)
		st = bnf_eval_fail(c, BNF_CONST_UNSUPPORTED, n, "input %zu is an integer tensor stored where it is not read", i);
	*len = in.view.numel;
	bnf_const_release(&in);
	return st;
}

bnf_const_status bnf_eval_list(bnf_eval *e, const bnf_graph *gi, const Onnx__NodeProto *n, int depth,
			       const char *attr, int from, size_t slot, int64_t *out, size_t max, size_t *len,
			       bool *have, bnf_const *c)
{
	const Onnx__AttributeProto *a;

	*have = false;
	*len = 0;
	if (gi->opset < from) {
		if (!(a = bnf_node_attr(n, attr)))
			return BNF_CONST_OK;
		if (a->n_ints > max)
			return bnf_eval_fail(c, BNF_CONST_UNSUPPORTED, n, "attribute %s holds %zu values, more than the %zu read here",
					     attr, a->n_ints, max);
		if (a->n_ints) /* an empty list may have no array */
			memcpy(out, a->ints, a->n_ints * sizeof(out[0]));
		*len = a->n_ints;
		*have = true;
		return BNF_CONST_OK;
	}
	if (slot >= n->n_input || !n->input[slot][0])
		return BNF_CONST_OK;
	*have = true;
	return bnf_eval_ints(e, gi, n, slot, depth, out, max, len, c);
}

/* ---- ops ---- */

enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_SQRT, OP_NEG, OP_ABS, OP_RECIPROCAL, N_ARITH };
static const char *const arith_ops[N_ARITH] = {"Add", "Sub", "Mul", "Div", "Sqrt", "Neg", "Abs", "Reciprocal"};

static double apply_op(int op, double u, double v)
{
	switch (op) {
	case OP_ADD: return u + v;
	case OP_SUB: return u - v;
	case OP_MUL: return u * v;
	case OP_DIV: return u / v;
	case OP_SQRT: return sqrt(u);
	case OP_NEG: return -u;
	case OP_ABS: return fabs(u);
	default: return 1.0 / u;
	}
}

/* The elementwise arithmetic, with multidirectional broadcasting: floats
 * rounded once to their type; integers (Add, Sub, Mul) exact or not
 * evaluated, as an int32 result that would wrap is not. */
static bnf_const_status ev_arith(bnf_eval *e, const bnf_graph *gi, const Onnx__NodeProto *n, int depth, bnf_const *c)
{
	bnf_arr in[2] = {{0}, {0}}, out = {0};
	bnf_const_status st = BNF_CONST_OK;
	bnf_walk w;
	int op = 0, arity;

	while (op < N_ARITH - 1 && !bnf_node_is_onnx(n, arith_ops[op]))
		op++;
	arity = op <= OP_DIV ? 2 : 1;
	if ((int)n->n_input != arity)
		return bnf_eval_fail(c, BNF_CONST_INVALID, n, "has %zu inputs, not %d", n->n_input, arity);
	for (int i = 0; i < arity && st == BNF_CONST_OK; i++)
		st = bnf_eval_input(e, gi, n, (size_t)i, depth, &in[i], c);
	if (st != BNF_CONST_OK)
		goto out;
	if (arity == 2 && in[1].dtype != in[0].dtype) {
		st = bnf_eval_fail(c, BNF_CONST_INVALID, n, "reads %s and %s", bnf_dtype_name(in[0].dtype),
				   bnf_dtype_name(in[1].dtype));
		goto out;
	}
	if (is_int(in[0].dtype) && op > OP_MUL) {
		st = bnf_eval_fail(c, BNF_CONST_NOT_CONSTANT, n, "bnfold evaluates only Add, Sub and Mul of integers");
		goto out;
	}
	out.dtype = in[0].dtype;
	if (arity == 1) {
		out.rank = in[0].rank;
		memcpy(out.dims, in[0].dims, sizeof(out.dims));
	} else if (!bnf_eval_broadcast(in[0].dims, in[0].rank, in[1].dims, in[1].rank, out.dims, &out.rank)) {
		st = bnf_eval_fail(c, BNF_CONST_INVALID, n, "shapes of rank %zu and %zu do not broadcast", in[0].rank,
				   in[1].rank);
		goto out;
	}
	if (!bnf_eval_numel(out.dims, out.rank, &out.numel) || (st = bnf_eval_alloc(e, n, &out, c)) != BNF_CONST_OK) {
		if (st == BNF_CONST_OK)
			st = bnf_eval_fail(c, BNF_CONST_TOO_LARGE, n, "the broadcast shape has more elements than a machine holds");
		goto out;
	}
	bnf_walk_init(&w, out.dims, out.rank);
	for (int i = 0; i < arity; i++)
		bnf_walk_broadcast(&w, i, in[i].dims, in[i].rank);
	for (size_t k = 0; k < out.numel; k++, bnf_walk_next(&w)) {
		double r = apply_op(op, in[0].x[w.off[0]], arity == 2 ? in[1].x[w.off[1]] : 0.0);
		bool wraps = out.dtype == BNF_DT_INT32 ? r < INT32_MIN || r > INT32_MAX : !(fabs(r) < INT_LIMIT);
		if (is_int(out.dtype) && wraps) {
			st = bnf_eval_fail(c, BNF_CONST_NOT_CONSTANT, n, "an integer result (%.0f) leaves the range evaluated", r);
			goto out;
		}
		out.x[k] = is_int(out.dtype) ? r : bnf_round_to(out.dtype, r);
	}
	st = bnf_eval_result(&out, c);
out:
	bnf_arr_free(&in[0]);
	bnf_arr_free(&in[1]);
	bnf_arr_free(&out);
	return st;
}

/* One value converted as Cast does, into *y; false when the result is not
 * evaluated (NaN, Inf or out of range into an integer type). */
static bool cast_one(double x, int from, int to, double *y)
{
	if (bnf_dtype_is_float(to)) {
		*y = bnf_round_to(to, x); /* integers below 2^53 are exact: one rounding */
		return true;
	}
	if (!isfinite(x))
		return false;
	*y = bnf_dtype_is_float(from) ? trunc(x) : x; /* toward zero */
	return to == BNF_DT_INT32 ? *y >= INT32_MIN && *y <= INT32_MAX : fabs(*y) < INT_LIMIT;
}

static bnf_const_status ev_cast(bnf_eval *e, const bnf_graph *gi, const Onnx__NodeProto *n, int depth, bnf_const *c)
{
	int64_t to = bnf_node_attr_int(n, "to", 0);
	bnf_arr a;
	bnf_const_status st;

	if (!bnf_dtype_is_float((int)to) && !is_int((int)to))
		return bnf_eval_fail(c, BNF_CONST_NOT_CONSTANT, n, "a Cast to type %lld is not evaluated", (long long)to);
	if ((st = bnf_eval_input(e, gi, n, 0, depth, &a, c)) != BNF_CONST_OK)
		return st;
	for (size_t k = 0; k < a.numel; k++)
		if (!cast_one(a.x[k], a.dtype, (int)to, &a.x[k])) {
			bnf_arr_free(&a);
			return bnf_eval_fail(c, BNF_CONST_NOT_CONSTANT, n, "element %zu is NaN, infinite or out of the range of %s",
					     k, bnf_dtype_name((int)to));
		}
	a.dtype = (int)to;
	return bnf_eval_result(&a, c);
}

/* The dims of input 0 of n: recorded as static (bnf_graph_shape), or
 * those of the constant it is. */
static bnf_const_status input_dims(bnf_eval *e, const bnf_graph *gi, const Onnx__NodeProto *n, int depth,
				   int64_t *dims, size_t *rank, bnf_const *c)
{
	bnf_shape s;
	bnf_const in;
	bnf_const_status st;

	if (n->n_input < 1 || !n->input[0][0])
		return bnf_eval_fail(c, BNF_CONST_INVALID, n, "has no input");
	if (bnf_graph_shape(gi, n->input[0], &s) && bnf_shape_static(&s) && s.rank <= BNF_MAX_RANK) {
		*rank = (size_t)s.rank;
		for (int i = 0; i < s.rank; i++)
			dims[i] = s.dims[i].value;
		return BNF_CONST_OK;
	}
	st = bnf_eval_value(e, gi, n->input[0], depth, &in);
	if (st == BNF_CONST_NOT_CONSTANT)
		return bnf_eval_fail(c, st, n, "the shape of '%.80s' is not known before the model runs", n->input[0]);
	if (st != BNF_CONST_OK) {
		memcpy(c->msg, in.msg, sizeof(c->msg));
		return st;
	}
	*rank = in.view.rank;
	memcpy(dims, in.view.dims, in.view.rank * sizeof(dims[0]));
	bnf_const_release(&in);
	return BNF_CONST_OK;
}

static bnf_const_status ev_shape(bnf_eval *e, const bnf_graph *gi, const Onnx__NodeProto *n, int depth, bnf_const *c)
{
	int64_t dims[BNF_MAX_RANK], start = 0, end, r;
	size_t rank;
	bnf_arr a = {.dtype = BNF_DT_INT64, .rank = 1};
	bnf_const_status st = input_dims(e, gi, n, depth, dims, &rank, c);

	if (st != BNF_CONST_OK)
		return st;
	r = end = (int64_t)rank;
	if (gi->opset >= 15) { /* start and end pick a range of axes, clamped */
		start = bnf_node_attr_int(n, "start", 0);
		end = bnf_node_attr_int(n, "end", r);
		start = start < 0 ? (start < -r ? 0 : start + r) : (start > r ? r : start);
		end = end < 0 ? (end < -r ? 0 : end + r) : (end > r ? r : end);
		end = end < start ? start : end;
	}
	a.dims[0] = end - start;
	a.numel = (size_t)(end - start);
	/* Integers are carried as doubles: a dim of 2^53 or more (declared so,
	 * or of an empty tensor) would come back rounded, or past INT64_MAX. */
	for (int64_t k = start; k < end; k++)
		if (!(dims[k] >= 0 && (double)dims[k] < INT_LIMIT))
			return bnf_eval_fail(c, BNF_CONST_NOT_CONSTANT, n, "dim %lld (%lld) leaves the range evaluated",
					     (long long)k, (long long)dims[k]);
	if ((st = bnf_eval_alloc(e, n, &a, c)) != BNF_CONST_OK)
		return st;
	for (size_t k = 0; k < a.numel; k++)
		a.x[k] = (double)dims[start + (int64_t)k];
	return bnf_eval_result(&a, c);
}

static bnf_const_status ev_size(bnf_eval *e, const bnf_graph *gi, const Onnx__NodeProto *n, int depth, bnf_const *c)
{
	int64_t dims[BNF_MAX_RANK];
	size_t rank, numel;
	bnf_arr a = {.dtype = BNF_DT_INT64, .rank = 0, .numel = 1};
	bnf_const_status st = input_dims(e, gi, n, depth, dims, &rank, c);

	if (st != BNF_CONST_OK)
		return st;
	if (!bnf_eval_numel(dims, rank, &numel) || !((double)numel < INT_LIMIT))
		return bnf_eval_fail(c, BNF_CONST_NOT_CONSTANT, n, "the element count leaves the range evaluated");
	if ((st = bnf_eval_alloc(e, n, &a, c)) != BNF_CONST_OK)
		return st;
	a.x[0] = (double)numel;
	return bnf_eval_result(&a, c);
}

static const struct {
	const char *op;
	int since; /* the first opset evaluated */
	bnf_eval_fn fn;
} evaluators[] = {
	{"Reshape", 5, bnf_eval_reshape},
	{"Unsqueeze", 1, bnf_eval_unsqueeze},
	{"Squeeze", 1, bnf_eval_squeeze},
	{"Flatten", 1, bnf_eval_flatten},
	{"Expand", 8, bnf_eval_expand},
	{"Concat", 1, bnf_eval_concat},
	{"Transpose", 1, bnf_eval_transpose},
	{"Slice", 1, bnf_eval_slice},
	{"Gather", 1, bnf_eval_gather},
	{"Cast", 6, ev_cast},   /* `to` is a string before 6 */
	{"Shape", 1, ev_shape},
	{"Size", 1, ev_size},
	{"Add", 7, ev_arith},   /* before 7, broadcasting is an attribute */
	{"Sub", 7, ev_arith},
	{"Mul", 7, ev_arith},
	{"Div", 7, ev_arith},
	{"Sqrt", 7, ev_arith},
	{"Neg", 7, ev_arith},
	{"Abs", 7, ev_arith},
	{"Reciprocal", 7, ev_arith},
};

/* The node computing name (as its output 0): its producer, followed
 * through Identity nodes as bnf_graph_const follows them (at most
 * BNF_EVAL_CHAIN), in gi's graph or the enclosing one defining the name,
 * with that graph in *owner.  NULL for an initializer, a graph input, an
 * unknown name or a longer chain. */
static const Onnx__NodeProto *producer_of(const bnf_graph *gi, const char *name, const bnf_graph **owner)
{
	const bnf_graph *cur = gi;

	for (int hop = 0; cur && hop < BNF_EVAL_CHAIN;) {
		const bnf_value *v = bnf_graph_value(cur, name);
		const Onnx__NodeProto *n;
		if (!v || (v->producer < 0 && v->init < 0 && !v->is_input)) {
			cur = cur->parent; /* an outer-scope name */
			continue;
		}
		if (v->producer < 0 || v->producer_slot != 0)
			return NULL;
		n = cur->g->node[v->producer];
		if (!bnf_node_is_onnx(n, "Identity") || n->n_input != 1) {
			*owner = cur;
			return n;
		}
		name = n->input[0];
		hop++;
	}
	return NULL;
}

static bnf_eval_fn evaluator(const bnf_graph *gi, const Onnx__NodeProto *n)
{
	for (size_t a = 0; a < n->n_attribute; a++)
		if (n->attribute[a]->ref_attr_name && n->attribute[a]->ref_attr_name[0])
			return NULL; /* set per call of the function */
	for (size_t i = 0; i < sizeof(evaluators) / sizeof(evaluators[0]); i++)
		if (bnf_node_is_onnx(n, evaluators[i].op))
			return gi->opset >= evaluators[i].since ? evaluators[i].fn : NULL;
	return NULL;
}

bnf_const_status bnf_eval_value(bnf_eval *e, const bnf_graph *gi, const char *name, int depth, bnf_const *c)
{
	bnf_const_status st = bnf_graph_const(gi, name, c);
	const bnf_graph *owner = gi;
	const Onnx__NodeProto *n;
	bnf_eval_fn fn;

	if (st != BNF_CONST_NOT_CONSTANT || !(n = producer_of(gi, name, &owner)) || !(fn = evaluator(owner, n)))
		return st;
	if (depth >= BNF_EVAL_DEPTH) {
		snprintf(c->msg, sizeof(c->msg), "'%.80s' is computed from constants more than %d nodes deep", name,
			 BNF_EVAL_DEPTH);
		return BNF_CONST_NOT_CONSTANT;
	}
	if (e->budget <= 0) {
		snprintf(c->msg, sizeof(c->msg), "'%.80s' is computed from constants by more than %d nodes", name,
			 BNF_EVAL_BUDGET);
		return BNF_CONST_NOT_CONSTANT;
	}
	if (e->spend && e->spend->nodes >= BNF_EVAL_RUN_NODES) {
		snprintf(c->msg, sizeof(c->msg),
			 "'%.80s' is computed from constants, and the run's budget of %zu node evaluations is spent", name,
			 BNF_EVAL_RUN_NODES);
		return BNF_CONST_NOT_CONSTANT;
	}
	e->budget--;
	if (e->spend)
		e->spend->nodes++;
	return fn(e, owner, n, depth + 1, c);
}

bnf_const_status bnf_graph_const_eval_capped(const bnf_graph *gi, const char *name, size_t max_bytes,
					     bnf_const *c)
{
	size_t cap = gi->eval_max_bytes ? gi->eval_max_bytes : BNF_MAX_NEW_BYTES;
	bnf_eval e = {.budget = BNF_EVAL_BUDGET, .spend = gi->eval_spend};

	e.max_bytes = max_bytes < cap ? max_bytes : cap;
	e.max_elems = e.max_bytes / sizeof(double);
	/* The run's total follows the graph's cap, whatever this query's. */
	if (!bnf_mul_size(cap, BNF_EVAL_RUN_FACTOR, &e.run_bytes))
		e.run_bytes = SIZE_MAX;
	return bnf_eval_value(&e, gi, name, 0, c);
}

bnf_const_status bnf_graph_const_eval(const bnf_graph *gi, const char *name, bnf_const *c)
{
	return bnf_graph_const_eval_capped(gi, name, SIZE_MAX, c);
}
