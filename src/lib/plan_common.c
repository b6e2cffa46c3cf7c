#include "plan_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "transform.h"
#include "constants.h"
#include "shapes.h"

bnf_reason bnf_bn_scale(const double *gamma, const double *mean, const double *var,
			const double *beta, double eps, size_t n, double *s, size_t *bad)
{
	*bad = 0;
	if (!isfinite(eps))
		return BNF_NON_FINITE_PARAM;
	for (size_t c = 0; c < n; c++) {
		double d;
		*bad = c;
		if (!isfinite(gamma[c]) || !isfinite(mean[c]) || !isfinite(var[c]) || !isfinite(beta[c]))
			return BNF_NON_FINITE_PARAM;
		d = var[c] + eps;
		if (!(d > 0.0))
			return BNF_NONPOSITIVE_VARIANCE;
		s[c] = gamma[c] / sqrt(d);
		if (!isfinite(s[c]))
			return BNF_OVERFLOW;
	}
	*bad = 0;
	return BNF_FOLD;
}

void bnf_bn_bias(const double *b, const double *mean, const double *beta, const double *s,
		 size_t n, double *out)
{
	for (size_t c = 0; c < n; c++)
		out[c] = ((b ? b[c] : 0.0) - mean[c]) * s[c] + beta[c];
}

bnf_planner bnf_planner_for(const Onnx__NodeProto *node, bnf_op_kind *op)
{
	static const struct {
		bnf_op_kind op;
		bnf_planner plan;
	} planners[] = {
		{BNF_OP_BN, bnf_plan_bn},
		{BNF_OP_MUL, bnf_plan_affine},
		{BNF_OP_ADD, bnf_plan_affine},
	};
	for (size_t i = 0; i < sizeof(planners) / sizeof(planners[0]); i++)
		if (bnf_node_is_onnx(node, bnf_op_type(planners[i].op))) {
			*op = planners[i].op;
			return planners[i].plan;
		}
	return NULL;
}

int bnf_plan_skip(bnf_plan *p, bnf_reason r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int bnf_plan_skip(bnf_plan *p, bnf_reason r, const char *fmt, ...)
{
	va_list ap;
	p->reason = r;
	va_start(ap, fmt);
	vsnprintf(p->message, sizeof(p->message), fmt, ap);
	va_end(ap);
	return 0;
}

int bnf_plan_oom(const bnf_graph *gi, const Onnx__NodeProto *node)
{
	return bnf_fail(gi->fail, BNFOLD_E_NOMEM, "%s: out of memory planning '%s'", gi->path,
			node->n_output ? node->output[0] : "?");
}

/* Resolve input `name` (what = "weight", "scale", ...) into c; 1 when
 * usable, 0 after recording a skip, -1 on malformed input. */
int bnf_plan_resolve(const bnf_graph *gi, bnf_plan *p, const char *name, const char *what,
		   bool is_param, bnf_const *c)
{
	/* Parameters, weights and biases may be computed from constants.  A
	 * constant the model holds resolves as bnf_graph_const has it (an
	 * exclusive tensor may be edited in place); a computed one has no
	 * tensor, so a fold writes it as a new one. */
	bnf_const_status st = bnf_graph_const_eval(gi, name, c);
	switch (st) {
	case BNF_CONST_OK:
		break;
	case BNF_CONST_NOT_CONSTANT:
		bnf_plan_skip(p, is_param ? BNF_PARAM_NOT_CONSTANT : BNF_WEIGHT_NOT_CONSTANT, "%s: %s", what, c->msg);
		return 0;
	case BNF_CONST_OVERRIDABLE:
		bnf_plan_skip(p, BNF_PARAM_IS_GRAPH_INPUT, "%s: %s", what, c->msg);
		return 0;
	case BNF_CONST_MALFORMED:
		bnf_fail(gi->fail, BNFOLD_E_NOT_ONNX, "%s: tensor '%s' (%s): %s", gi->path, name, what, c->msg);
		return -1;
	case BNF_CONST_UNSUPPORTED:
		bnf_plan_skip(p, BNF_UNSUPPORTED_STORAGE, "%s '%s': %s", what, name, c->msg);
		return 0;
	case BNF_CONST_BAD_DTYPE:
		bnf_plan_skip(p, BNF_UNSUPPORTED_DTYPE, "%s '%s': %s", what, name, c->msg);
		return 0;
	case BNF_CONST_INVALID:
		bnf_plan_skip(p, BNF_CONSTANT_INVALID, "%s '%s': %s", what, name, c->msg);
		return 0;
	case BNF_CONST_TOO_LARGE:
		bnf_plan_skip(p, BNF_CONSTANT_TOO_LARGE, "%s '%s': %s", what, name, c->msg);
		return 0;
	}
	if (!bnf_dtype_is_float(c->view.dtype)) {
		bnf_plan_skip(p, BNF_UNSUPPORTED_DTYPE, "%s '%s' has type %s", what, name, bnf_dtype_name(c->view.dtype));
		bnf_const_release(c); /* a computed integer value */
		return 0;
	}
	return 1;
}

/* The first attribute of n that refers to an attribute of the enclosing
 * function (its value is set per call), or NULL. */
const Onnx__AttributeProto *bnf_plan_attr_reference(const Onnx__NodeProto *n)
{
	for (size_t a = 0; a < n->n_attribute; a++)
		if (n->attribute[a]->ref_attr_name && n->attribute[a]->ref_attr_name[0])
			return n->attribute[a];
	return NULL;
}

int bnf_plan_skip_attr_reference(bnf_plan *p, const Onnx__NodeProto *n, const Onnx__AttributeProto *a)
{
	return bnf_plan_skip(p, BNF_ATTRIBUTE_REFERENCE, "attribute '%s' of %s '%s' is the function's attribute '%s'",
		    a->name ? a->name : "", n->op_type ? n->op_type : "node", n->name ? n->name : "",
		    a->ref_attr_name);
}

bool bnf_plan_is_layer(const Onnx__NodeProto *n)
{
	return bnf_plan_layer_kind(n) != BNF_LAYER_NONE;
}

int bnf_plan_chain_alone(const bnf_graph *gi, bnf_plan *p, const bnf_value *x, const bnf_chain *ch)
{
	for (int i = -1; i < ch->n; i++) {
		const bnf_value *v = i < 0 ? x : bnf_graph_value(gi, gi->g->node[ch->nodes[i]]->output[0]);
		if (!v)
			return bnf_plan_skip(p, BNF_NO_LINEAR_PRODUCER, "a value between the layer and the node is not indexed");
		if (v->is_output)
			return bnf_plan_skip(p, BNF_LAYER_OUTPUT_IS_GRAPH_OUTPUT, "'%s' is a graph output", v->name);
		if (v->n_consumers != 1)
			return bnf_plan_skip(p, BNF_LAYER_OUTPUT_HAS_OTHER_CONSUMERS, "'%s' is read by %d nodes", v->name,
				    v->n_consumers);
	}
	return 1;
}

int bnf_plan_chain_axis(const bnf_graph *gi, bnf_plan *p, const bnf_chain *ch, bnf_layer_kind kind, int want)
{
	char why[300];
	int axis = -1;
	/* A MatMul's output columns are its last axis; the others' channels axis 1. */
	bnf_axis_status st = bnf_chain_axis(gi, ch, kind == BNF_LAYER_MATMUL ? -1 : 1, &axis, why, sizeof(why));
	const char *out = gi->g->node[ch->layer]->output[0];

	switch (st) {
	case BNF_AXIS_OK:
		break;
	case BNF_AXIS_UNKNOWN:
		return bnf_plan_skip(p, BNF_SHAPE_UNKNOWN, "%s, so where the layer's channels lie is unknown", why);
	case BNF_AXIS_CONFLICT:
		return bnf_plan_skip(p, BNF_SHAPE_CONFLICT, "%s", why);
	case BNF_AXIS_MOVED:
		return bnf_plan_skip(p, BNF_CHANNEL_AXIS_MISMATCH, "%s", why);
	}
	if (axis != want)
		return bnf_plan_skip(p, BNF_CHANNEL_AXIS_MISMATCH,
			    "the channels of %s output '%s' lie on axis %d of what the %s reads, which scales axis %d",
			    gi->g->node[ch->layer]->op_type, out, axis, bnf_op_type(p->op), want);
	return 1;
}

int bnf_plan_to_gemm(const bnf_graph *gi, bnf_plan *p, const Onnx__NodeProto *mm)
{
	bnf_shape a;
	if (!bnf_graph_shape(gi, mm->input[0], &a))
		return bnf_plan_skip(p, a.conflict ? BNF_SHAPE_CONFLICT : BNF_SHAPE_UNKNOWN,
			    a.conflict ? "the model declares a shape for MatMul input '%s' that contradicts the one its nodes give"
				       : "the rank of MatMul input '%s' is not known",
			    mm->input[0]);
	if (a.rank != 2)
		return bnf_plan_skip(p, BNF_MATMUL_NOT_2D, "MatMul input '%s' has rank %d", mm->input[0], a.rank);
	p->to_gemm = true;
	return 1;
}

void bnf_plan_shapes(const bnf_graph *gi, bnf_plan *p)
{
	const Onnx__NodeProto *node = gi->g->node[p->node];
	const Onnx__NodeProto *layer = p->layer_node >= 0 ? gi->g->node[p->layer_node] : NULL;
	const char *x = (size_t)p->x_input < node->n_input ? node->input[p->x_input] : "";
	const char *param = (size_t)p->param_input < node->n_input ? node->input[p->param_input] : "";
	char a[48], b[48], c[48], d[48];
	bnf_shape s;

	bnf_graph_shape(gi, x, &s);
	bnf_shape_format(&s, c, sizeof(c));
	bnf_graph_shape(gi, param, &s);
	bnf_shape_format(&s, d, sizeof(d));
	if (!layer) {
		snprintf(p->shapes, sizeof(p->shapes), "input %s, parameter %s", c, d);
		return;
	}
	bnf_graph_shape(gi, layer->n_input ? layer->input[0] : "", &s);
	bnf_shape_format(&s, a, sizeof(a));
	bnf_graph_shape(gi, layer->n_output ? layer->output[0] : "", &s);
	bnf_shape_format(&s, b, sizeof(b));
	snprintf(p->shapes, sizeof(p->shapes), "layer input %s, layer output %s, input %s, parameter %s", a, b, c, d);
}

bnf_layer_kind bnf_plan_layer_kind(const Onnx__NodeProto *n)
{
	for (int k = BNF_LAYER_CONV; k <= BNF_LAYER_MATMUL; k++)
		if (bnf_node_is_onnx(n, bnf_layer_op_type((bnf_layer_kind)k)))
			return (bnf_layer_kind)k;
	return BNF_LAYER_NONE;
}

size_t bnf_plan_prod_from(const bnf_tview *v, size_t first)
{
	size_t n = 1;
	for (size_t d = first; d < v->rank; d++)
		n *= (size_t)v->dims[d];
	return n;
}

/* Read a float view into a new array, or NULL. */
double *bnf_plan_read_all(const bnf_tview *v)
{
	double *x = malloc((v->numel ? v->numel : 1) * sizeof(double));
	if (x)
		bnf_tview_read(v, x);
	return x;
}

/* The layer's weight, output channels, channel layout and current bias
 * (as per-channel values the output gets, *old_bias, NULL when none).
 * 1 when usable, 0 after a skip, -1 on error. */
/* The output channels of the layer's weight w and where they lie in it
 * (p->transform.layout, p->channels).  1, or 0 after a skip. */
static int weight_layout(const bnf_graph *gi, bnf_plan *p, const Onnx__NodeProto *layer, bnf_layer_kind kind,
			 const char *wname)
{
	const bnf_tview *w = &p->weight.view;
	size_t C;

	switch (kind) {
	case BNF_LAYER_CONV:
		if (w->rank < 3 || w->dims[0] < 1)
			return bnf_plan_skip(p, BNF_BAD_WEIGHT_SHAPE,
				    "weight '%s' has rank %zu; a Conv weight has rank >= 3 and at least one output channel",
				    wname, w->rank);
		C = (size_t)w->dims[0];
		p->transform.layout = (bnf_layout){.inner = bnf_plan_prod_from(w, 1), .per_group = C, .rows_per_group = 1, .channels = C};
		break;
	case BNF_LAYER_CONVTRANSPOSE: {
		int64_t g = bnf_node_attr_int(layer, "group", 1);
		if (w->rank < 3 || w->dims[1] < 1 || g < 1 || w->dims[0] < 1 || w->dims[0] % g != 0)
			return bnf_plan_skip(p, BNF_BAD_WEIGHT_SHAPE,
				    "weight '%s' (rank %zu) does not fit a ConvTranspose [C_in, C_out/group, k...] with group %lld",
				    wname, w->rank, (long long)g);
		C = (size_t)(g * w->dims[1]);
		/* [C_in, C_out/group, k...]: row r belongs to group r / (C_in/group). */
		p->transform.layout = (bnf_layout){.inner = bnf_plan_prod_from(w, 2), .per_group = (size_t)w->dims[1],
						   .rows_per_group = (size_t)(w->dims[0] / g), .channels = C};
		break;
	}
	case BNF_LAYER_GEMM:
	case BNF_LAYER_MATMUL: {
		bool transb = kind == BNF_LAYER_GEMM && bnf_node_attr_int(layer, "transB", 0) != 0;
		if (gi->opset < 7)
			return bnf_plan_skip(p, BNF_UNSUPPORTED_OPSET, "a Gemm bias of shape [N] needs opset >= 7 (model: %d)", gi->opset);
		if (w->rank != 2 || w->dims[0] < 1 || w->dims[1] < 1)
			return bnf_plan_skip(p, BNF_BAD_WEIGHT_SHAPE, "B '%s' has rank %zu, not 2", wname, w->rank);
		C = (size_t)(transb ? w->dims[0] : w->dims[1]);
		p->transform.layout = transb
			? (bnf_layout){.inner = (size_t)w->dims[1], .per_group = C, .rows_per_group = 1, .channels = C}
			: (bnf_layout){.inner = 1, .per_group = C, .rows_per_group = (size_t)w->dims[0], .channels = C};
		break;
	}
	default:
		return bnf_plan_skip(p, BNF_NO_LINEAR_PRODUCER, "not a layer bnfold folds into");
	}
	p->channels = C;
	p->bias_len = C;
	return 1;
}

/* The layer's bias (Gemm: beta * C) as the p->channels values the output
 * gets, into *old_bias.  1, 0 after a skip, -1 on error. */
static int layer_bias(const bnf_graph *gi, bnf_plan *p, const Onnx__NodeProto *layer, bnf_layer_kind kind,
		      double **old_bias)
{
	const char *bname = layer->input[2];
	double beta = kind == BNF_LAYER_GEMM ? (double)bnf_node_attr_float(layer, "beta", 1.0f) : 1.0;
	size_t C = p->channels;
	const bnf_tview *bv;
	double *raw, *b;
	int r;

	p->has_bias = true;
	if ((r = bnf_plan_resolve(gi, p, bname, kind == BNF_LAYER_GEMM ? "C" : "bias", false, &p->bias)) <= 0)
		return r;
	bv = &p->bias.view;
	if (bv->dtype != p->dtype)
		return bnf_plan_skip(p, BNF_DTYPE_MISMATCH, "bias '%s' is %s, weight is %s", bname,
			    bnf_dtype_name(bv->dtype), bnf_dtype_name(p->dtype));
	if (kind == BNF_LAYER_GEMM) {
		/* C broadcast to [M, N]: one value, or N values along the last axis. */
		bool ok = bv->numel == 1 || (bv->rank >= 1 && (size_t)bv->dims[bv->rank - 1] == C && bv->numel == C);
		if (!ok)
			return bnf_plan_skip(p, BNF_BAD_WEIGHT_SHAPE, "Gemm C '%s' (%zu elements) is not a scalar or [N=%zu]", bname,
				    bv->numel, C);
	} else if (bv->rank != 1 || bv->numel != C) {
		return bnf_plan_skip(p, BNF_BAD_WEIGHT_SHAPE, "bias '%s' has %zu elements, the %s has %zu output channels",
			    bname, bv->numel, layer->op_type, C);
	}
	raw = bnf_plan_read_all(bv);
	b = malloc(C * sizeof(double));
	if (!raw || !b) {
		free(raw);
		free(b);
		return bnf_plan_oom(gi, layer);
	}
	for (size_t c = 0; c < C; c++)
		b[c] = beta * raw[bv->numel == 1 ? 0 : c];
	free(raw);
	for (size_t c = 0; c < C; c++)
		if (!isfinite(b[c])) {
			free(b);
			return bnf_plan_skip(p, BNF_NON_FINITE_PARAM, "bias '%s' channel %zu is not finite", bname, c);
		}
	*old_bias = b;
	return 1;
}

int bnf_plan_layer_geometry(const bnf_graph *gi, bnf_plan *p, const Onnx__NodeProto *layer,
			  bnf_layer_kind kind, double **old_bias)
{
	const Onnx__AttributeProto *ref;
	const char *wname;
	int r;

	*old_bias = NULL;
	if ((ref = bnf_plan_attr_reference(layer)))
		return bnf_plan_skip_attr_reference(p, layer, ref);
	if (layer->n_input < 2 || !layer->input[1][0])
		return bnf_plan_skip(p, BNF_WEIGHT_NOT_CONSTANT, "the %s has no weight input", layer->op_type);
	wname = layer->input[1];
	if ((r = bnf_plan_resolve(gi, p, wname, kind == BNF_LAYER_GEMM || kind == BNF_LAYER_MATMUL ? "B" : "weight", false, &p->weight)) <= 0)
		return r;
	p->dtype = p->weight.view.dtype;
	if ((r = weight_layout(gi, p, layer, kind, wname)) <= 0)
		return r;
	if (kind != BNF_LAYER_MATMUL && layer->n_input >= 3 && layer->input[2][0] &&
	    (r = layer_bias(gi, p, layer, kind, old_bias)) <= 0)
		return r;
	if (kind == BNF_LAYER_GEMM && bnf_node_attr_float(layer, "beta", 1.0f) != 1.0f)
		p->reset_gemm_beta = true;
	return 1;
}

/* Every folded bias value representable: 1, else 0 after a skip. */
int bnf_plan_check_bias(bnf_plan *p)
{
	for (size_t c = 0; c < p->bias_len; c++)
		if (!isfinite(bnf_round_to(p->dtype, p->new_bias[c])))
			return bnf_plan_skip(p, BNF_OVERFLOW, "folded bias of channel %zu is %g, beyond %s", c, p->new_bias[c],
				    bnf_dtype_name(p->dtype));
	return 1;
}

/* Complete the transform from p->scale and scan the weight once: every
 * element finite, every folded element representable (rounding is
 * monotonic, so the largest |w| of a channel decides).  1 when usable, 0
 * after a skip, -1 when memory runs out. */
int bnf_plan_check_weight(const bnf_policy *pol, bnf_plan *p, const char *wname)
{
	const bnf_tview *w = &p->weight.view;
	const bnf_layout *l = &p->transform.layout;
	double *maxabs = malloc((l->channels ? l->channels : 1) * sizeof(double));
	size_t bad = 0;
	int r;

	p->transform.dtype = p->dtype;
	p->transform.scale = p->scale;
	if (!maxabs)
		return -1;
	/* A weight not edited in place is written out as a new tensor: keep
	 * what a run adds in proportion to its input (a ConstantOfShape may
	 * claim terabytes). */
	if (p->scale_weight && !(p->weight.tensor && p->weight.exclusive) &&
	    w->numel > pol->new_bytes_left / bnf_dtype_size(w->dtype)) {
		free(maxabs);
		return bnf_plan_skip(p, BNF_WEIGHT_TOO_LARGE,
			    "weight '%s' (%zu elements) is %s, so folding writes a new copy, and new tensors may take "
			    "only %zu MiB more",
			    wname, w->numel,
			    p->weight.tensor ? "not this layer's alone"
			    : w->uniform     ? "made by ConstantOfShape"
					     : "computed from constants",
			    pol->new_bytes_left >> 20);
	}
	if (pol->defer_scan && p->scale_weight && bnf_tview_in_place(w) && w->dtype == p->dtype) {
		/* the scaling itself flags what the scan would find (bnf_fold_options) */
		free(maxabs);
		return bnf_plan_check_bias(p);
	}
	r = bnf_tview_channel_maxabs(w, l, maxabs, &bad);
	if (r != 0) {
		free(maxabs);
		if (r < 0)
			return -1;
		return bnf_plan_skip(p, BNF_NON_FINITE_PARAM, "weight '%s' element %zu is %s", wname, bad,
			    "not finite (NaN or inf)");
	}
	for (size_t c = 0; c < l->channels && p->scale_weight; c++) {
		double y = maxabs[c] * fabs(p->scale[c]);
		if (!isfinite(bnf_round_to(p->dtype, y))) {
			free(maxabs);
			return bnf_plan_skip(p, BNF_OVERFLOW, "folded weight '%s' reaches %g in channel %zu, beyond %s", wname, y, c,
				    bnf_dtype_name(p->dtype));
		}
	}
	free(maxabs);
	return bnf_plan_check_bias(p);
}

/* The four BN parameters as n-element arrays vals[0..3] = scale, B, mean,
 * var (caller frees).  1 ok, 0 skip, -1 error. */
int bnf_plan_bn_params(const bnf_graph *gi, bnf_plan *p, const Onnx__NodeProto *bn, size_t n,
		     const char *what, double *vals[4])
{
	static const char *const names[4] = {"scale", "B", "mean", "var"};
	bnf_const prm;
	int r;

	for (int i = 0; i < 4; i++)
		vals[i] = NULL;
	for (int i = 0; i < 4; i++) {
		if ((r = bnf_plan_resolve(gi, p, bn->input[i + 1], names[i], true, &prm)) <= 0)
			return r;
		if (prm.view.numel != n || prm.view.rank > 1) {
			bnf_const_release(&prm);
			return bnf_plan_skip(p, BNF_CHANNEL_MISMATCH, "%s '%s' has %zu elements (rank %zu), the %s has %zu %s channels",
				    names[i], bn->input[i + 1], prm.view.numel, prm.view.rank, what ? what : "Conv after it", n,
				    what ? "output" : "input");
		}
		vals[i] = bnf_plan_read_all(&prm.view);
		bnf_const_release(&prm);
		if (!vals[i])
			return bnf_plan_oom(gi, bn);
	}
	return 1;
}

/* p->scale from the BN parameters vals (scale, B, mean, var): true, or
 * false after recording why not (NaN/Inf, var + eps <= 0). */
bool bnf_plan_bn_scale(bnf_plan *p, double *const vals[4])
{
	size_t bad;
	int r = bnf_bn_scale(vals[0], vals[2], vals[3], vals[1], p->eps, p->channels, p->scale, &bad);
	if (r != BNF_FOLD)
		bnf_plan_skip(p, (bnf_reason)r, "channel %zu: scale=%g mean=%g var=%g B=%g epsilon=%g", bad, vals[0][bad],
		     vals[2][bad], vals[3][bad], vals[1][bad], p->eps);
	return r == BNF_FOLD;
}

void bnf_plan_free4(double *v[4])
{
	for (int i = 0; i < 4; i++)
		free(v[i]);
}

void bnf_plan_free(bnf_plan *p)
{
	bnf_const_release(&p->weight);
	bnf_const_release(&p->bias);
	free(p->scale);
	free(p->new_bias);
	p->scale = p->new_bias = NULL;
}
