#include "fold.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define CHUNK 4096 /* elements per pass over a weight */

static const char *const reason_codes[] = {
#define BNF_REASON_CODE(id, code, text) code,
	BNF_REASONS(BNF_REASON_CODE)
#undef BNF_REASON_CODE
};
static const char *const reason_texts[] = {
#define BNF_REASON_TEXT(id, code, text) text,
	BNF_REASONS(BNF_REASON_TEXT)
#undef BNF_REASON_TEXT
};

const char *bnf_reason_code(bnf_reason r)
{
	return (unsigned)r < BNF_REASON_COUNT ? reason_codes[r] : "unknown";
}

const char *bnf_reason_text(bnf_reason r)
{
	return (unsigned)r < BNF_REASON_COUNT ? reason_texts[r] : "";
}

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

/* ---- the decision ---- */

static int skip(bnf_plan *p, bnf_reason r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int skip(bnf_plan *p, bnf_reason r, const char *fmt, ...)
{
	va_list ap;
	p->reason = r;
	va_start(ap, fmt);
	vsnprintf(p->message, sizeof(p->message), fmt, ap);
	va_end(ap);
	return 0;
}

static int oom(const bnf_graph *gi, const Onnx__NodeProto *node)
{
	return bnf_error("%s: out of memory planning '%s'", gi->path, node->n_output ? node->output[0] : "?");
}

/* Resolve input `name` (what = "weight", "scale", ...) into c; 1 when
 * usable, 0 after recording a skip, -1 on malformed input. */
static int resolve(const bnf_graph *gi, bnf_plan *p, const char *name, const char *what,
		   bool is_param, bnf_const *c)
{
	/* Parameters may be computed from constants; they are read at once. */
	bnf_const_status st = is_param ? bnf_graph_const_eval(gi, name, c) : bnf_graph_const(gi, name, c);
	switch (st) {
	case BNF_CONST_OK:
		break;
	case BNF_CONST_NOT_CONSTANT:
		skip(p, is_param ? BNF_PARAM_NOT_CONSTANT : BNF_WEIGHT_NOT_CONSTANT, "%s: %s", what, c->msg);
		return 0;
	case BNF_CONST_OVERRIDABLE:
		skip(p, BNF_PARAM_IS_GRAPH_INPUT, "%s: %s", what, c->msg);
		return 0;
	case BNF_CONST_MALFORMED:
		bnf_error("%s: tensor '%s' (%s): %s", gi->path, name, what, c->msg);
		return -1;
	case BNF_CONST_UNSUPPORTED:
		skip(p, BNF_UNSUPPORTED_STORAGE, "%s '%s': %s", what, name, c->msg);
		return 0;
	case BNF_CONST_BAD_DTYPE:
		skip(p, BNF_UNSUPPORTED_DTYPE, "%s '%s': %s", what, name, c->msg);
		return 0;
	}
	if (!bnf_dtype_is_float(c->view.dtype)) {
		skip(p, BNF_UNSUPPORTED_DTYPE, "%s '%s' has type %s", what, name, bnf_dtype_name(c->view.dtype));
		return 0;
	}
	return 1;
}

/* The first attribute of n that refers to an attribute of the enclosing
 * function (its value is set per call), or NULL. */
static const Onnx__AttributeProto *attr_reference(const Onnx__NodeProto *n)
{
	for (size_t a = 0; a < n->n_attribute; a++)
		if (n->attribute[a]->ref_attr_name && n->attribute[a]->ref_attr_name[0])
			return n->attribute[a];
	return NULL;
}

static int skip_attr_reference(bnf_plan *p, const Onnx__NodeProto *n, const Onnx__AttributeProto *a)
{
	return skip(p, BNF_ATTRIBUTE_REFERENCE, "attribute '%s' of %s '%s' is the function's attribute '%s'",
		    a->name ? a->name : "", n->op_type ? n->op_type : "node", n->name ? n->name : "",
		    a->ref_attr_name);
}

/* True when the BN at this opset computes batch statistics. */
static bool bn_is_training(const bnf_graph *gi, const Onnx__NodeProto *bn, char *why, size_t len)
{
	for (size_t o = 1; o < bn->n_output; o++) {
		if (bn->output[o][0]) {
			snprintf(why, len, "output %zu ('%s') of the running/saved statistics is produced", o, bn->output[o]);
			return true;
		}
	}
	if (gi->opset >= 14 && bnf_node_attr_int(bn, "training_mode", 0) != 0) {
		snprintf(why, len, "training_mode=1");
		return true;
	}
	if (gi->opset < 7 && bnf_node_attr_int(bn, "is_test", 0) == 0) {
		snprintf(why, len, "is_test=0 (the default before opset 7) means batch statistics");
		return true;
	}
	return false;
}

/* The layers a per-channel affine map after them folds into. */
typedef enum { L_NONE, L_CONV, L_CONVTRANSPOSE, L_GEMM, L_MATMUL } layer_kind;

static layer_kind kind_of(const Onnx__NodeProto *n)
{
	if (bnf_node_is_onnx(n, "Conv"))
		return L_CONV;
	if (bnf_node_is_onnx(n, "ConvTranspose"))
		return L_CONVTRANSPOSE;
	if (bnf_node_is_onnx(n, "Gemm"))
		return L_GEMM;
	if (bnf_node_is_onnx(n, "MatMul"))
		return L_MATMUL;
	return L_NONE;
}

static const char *pattern_name(layer_kind k, const char *after)
{
	static const char *const names[][3] = {
		[L_CONV] = {"conv_bn", "conv_mul", "conv_add"},
		[L_CONVTRANSPOSE] = {"convtranspose_bn", "convtranspose_mul", "convtranspose_add"},
		[L_GEMM] = {"gemm_bn", "gemm_mul", "gemm_add"},
		[L_MATMUL] = {"matmul_bn", "matmul_mul", "matmul_add"},
	};
	int i = strcmp(after, "bn") == 0 ? 0 : strcmp(after, "mul") == 0 ? 1 : 2;
	return k == L_NONE ? "none" : names[k][i];
}

static size_t prod_from(const bnf_tview *v, size_t first)
{
	size_t n = 1;
	for (size_t d = first; d < v->rank; d++)
		n *= (size_t)v->dims[d];
	return n;
}

/* Read a float view into a new array, or NULL. */
static double *read_all(const bnf_tview *v)
{
	double *x = malloc((v->numel ? v->numel : 1) * sizeof(double));
	if (x)
		bnf_tview_read(v, x);
	return x;
}

/* The layer's weight, output channels, channel layout and current bias
 * (as per-channel values the output gets, *old_bias, NULL when none).
 * 1 when usable, 0 after a skip, -1 on error. */
static int layer_geometry(const bnf_graph *gi, bnf_plan *p, const Onnx__NodeProto *layer,
			  layer_kind kind, double **old_bias)
{
	const bnf_tview *w;
	const Onnx__AttributeProto *ref;
	const char *wname;
	size_t C;
	int r;

	*old_bias = NULL;
	if ((ref = attr_reference(layer)))
		return skip_attr_reference(p, layer, ref);
	if (layer->n_input < 2 || !layer->input[1][0])
		return skip(p, BNF_WEIGHT_NOT_CONSTANT, "the %s has no weight input", layer->op_type);
	wname = layer->input[1];
	if ((r = resolve(gi, p, wname, kind == L_GEMM || kind == L_MATMUL ? "B" : "weight", false, &p->weight)) <= 0)
		return r;
	w = &p->weight.view;
	p->dtype = w->dtype;
	switch (kind) {
	case L_CONV:
		if (w->rank < 3 || w->dims[0] < 1)
			return skip(p, BNF_BAD_WEIGHT_SHAPE,
				    "weight '%s' has rank %zu; a Conv weight has rank >= 3 and at least one output channel",
				    wname, w->rank);
		C = (size_t)w->dims[0];
		p->transform.layout = (bnf_layout){.inner = prod_from(w, 1), .per_group = C, .rows_per_group = 1, .channels = C};
		break;
	case L_CONVTRANSPOSE: {
		int64_t g = bnf_node_attr_int(layer, "group", 1);
		if (w->rank < 3 || w->dims[1] < 1 || g < 1 || w->dims[0] < 1 || w->dims[0] % g != 0)
			return skip(p, BNF_BAD_WEIGHT_SHAPE,
				    "weight '%s' (rank %zu) does not fit a ConvTranspose [C_in, C_out/group, k...] with group %lld",
				    wname, w->rank, (long long)g);
		C = (size_t)(g * w->dims[1]);
		/* [C_in, C_out/group, k...]: row r belongs to group r / (C_in/group). */
		p->transform.layout = (bnf_layout){.inner = prod_from(w, 2), .per_group = (size_t)w->dims[1],
						   .rows_per_group = (size_t)(w->dims[0] / g), .channels = C};
		break;
	}
	case L_GEMM:
	case L_MATMUL: {
		bool transb = kind == L_GEMM && bnf_node_attr_int(layer, "transB", 0) != 0;
		if (gi->opset < 7)
			return skip(p, BNF_UNSUPPORTED_OPSET, "a Gemm bias of shape [N] needs opset >= 7 (model: %d)", gi->opset);
		if (w->rank != 2 || w->dims[0] < 1 || w->dims[1] < 1)
			return skip(p, BNF_BAD_WEIGHT_SHAPE, "B '%s' has rank %zu, not 2", wname, w->rank);
		if (kind == L_MATMUL) {
			int ra = bnf_graph_rank(gi, layer->input[0]);
			if (ra < 0)
				return skip(p, BNF_SHAPE_UNKNOWN, "the rank of MatMul input '%s' is not recorded", layer->input[0]);
			if (ra != 2)
				return skip(p, BNF_BAD_WEIGHT_SHAPE,
					    "MatMul input '%s' has rank %d; the BN channel is the last axis only for rank 2", layer->input[0], ra);
			p->new_op_type = "Gemm";
		}
		C = (size_t)(transb ? w->dims[0] : w->dims[1]);
		p->transform.layout = transb
			? (bnf_layout){.inner = (size_t)w->dims[1], .per_group = C, .rows_per_group = 1, .channels = C}
			: (bnf_layout){.inner = 1, .per_group = C, .rows_per_group = (size_t)w->dims[0], .channels = C};
		break;
	}
	default:
		return skip(p, BNF_NO_LINEAR_PRODUCER, "not a layer bnfold folds into");
	}
	p->channels = C;
	p->bias_len = C;

	if (kind != L_MATMUL && layer->n_input >= 3 && layer->input[2][0]) {
		const char *bname = layer->input[2];
		double beta = kind == L_GEMM ? (double)bnf_node_attr_float(layer, "beta", 1.0f) : 1.0;
		const bnf_tview *bv;
		p->has_bias = true;
		if ((r = resolve(gi, p, bname, kind == L_GEMM ? "C" : "bias", false, &p->bias)) <= 0)
			return r;
		bv = &p->bias.view;
		if (bv->dtype != p->dtype)
			return skip(p, BNF_DTYPE_MISMATCH, "bias '%s' is %s, weight is %s", bname,
				    bnf_dtype_name(bv->dtype), bnf_dtype_name(p->dtype));
		if (kind == L_GEMM) {
			/* C broadcast to [M, N]: one value, or N values along the last axis. */
			bool ok = bv->numel == 1 || (bv->rank >= 1 && (size_t)bv->dims[bv->rank - 1] == C && bv->numel == C);
			if (!ok)
				return skip(p, BNF_BAD_WEIGHT_SHAPE, "Gemm C '%s' (%zu elements) is not a scalar or [N=%zu]", bname,
					    bv->numel, C);
		} else if (bv->rank != 1 || bv->numel != C) {
			return skip(p, BNF_BAD_WEIGHT_SHAPE, "bias '%s' has %zu elements, the %s has %zu output channels",
				    bname, bv->numel, layer->op_type, C);
		}
		{
			double *raw = read_all(bv), *b = malloc(C * sizeof(double));
			if (!raw || !b) {
				free(raw);
				free(b);
				return oom(gi, layer);
			}
			for (size_t c = 0; c < C; c++)
				b[c] = beta * raw[bv->numel == 1 ? 0 : c];
			free(raw);
			for (size_t c = 0; c < C; c++)
				if (!isfinite(b[c])) {
					free(b);
					return skip(p, BNF_NON_FINITE_PARAM, "bias '%s' channel %zu is not finite", bname, c);
				}
			*old_bias = b;
		}
	}
	if (kind == L_GEMM && bnf_node_attr_float(layer, "beta", 1.0f) != 1.0f)
		p->reset_gemm_beta = true;
	return 1;
}

/* Every folded bias value representable: 1, else 0 after a skip. */
static int check_bias(bnf_plan *p)
{
	for (size_t c = 0; c < p->bias_len; c++)
		if (!isfinite(bnf_round_to(p->dtype, p->new_bias[c])))
			return skip(p, BNF_OVERFLOW, "folded bias of channel %zu is %g, beyond %s", c, p->new_bias[c],
				    bnf_dtype_name(p->dtype));
	return 1;
}

/* Complete the transform from p->scale and scan the weight once: every
 * element finite, every folded element representable (rounding is
 * monotonic, so the largest |w| of a channel decides).  1 when usable, 0
 * after a skip, -1 when memory runs out. */
static int check_weight(const bnf_graph *gi, bnf_plan *p, const char *wname)
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
	    w->numel > gi->new_bytes_left / bnf_dtype_size(w->dtype)) {
		free(maxabs);
		return skip(p, BNF_WEIGHT_TOO_LARGE,
			    "weight '%s' (%zu elements) is %s, so folding writes a new copy, and new tensors may take "
			    "only %zu MiB more",
			    wname, w->numel, p->weight.tensor ? "not this layer's alone" : "made by ConstantOfShape",
			    gi->new_bytes_left >> 20);
	}
	if (gi->defer_scan && p->scale_weight && bnf_tview_in_place(w) && w->dtype == p->dtype) {
		/* the scaling itself flags what the scan would find (bnf_fold_options) */
		free(maxabs);
		return check_bias(p);
	}
	r = bnf_tview_channel_maxabs(w, l, maxabs, &bad);
	if (r != 0) {
		free(maxabs);
		if (r < 0)
			return -1;
		return skip(p, BNF_NON_FINITE_PARAM, "weight '%s' element %zu is %s", wname, bad,
			    "not finite (NaN or inf)");
	}
	for (size_t c = 0; c < l->channels && p->scale_weight; c++) {
		double y = maxabs[c] * fabs(p->scale[c]);
		if (!isfinite(bnf_round_to(p->dtype, y))) {
			free(maxabs);
			return skip(p, BNF_OVERFLOW, "folded weight '%s' reaches %g in channel %zu, beyond %s", wname, y, c,
				    bnf_dtype_name(p->dtype));
		}
	}
	free(maxabs);
	return check_bias(p);
}

/* The four BN parameters as n-element arrays vals[0..3] = scale, B, mean,
 * var (caller frees).  1 ok, 0 skip, -1 error. */
static int bn_params(const bnf_graph *gi, bnf_plan *p, const Onnx__NodeProto *bn, size_t n,
		     const char *what, double *vals[4])
{
	static const char *const names[4] = {"scale", "B", "mean", "var"};
	bnf_const prm;
	int r;

	for (int i = 0; i < 4; i++)
		vals[i] = NULL;
	for (int i = 0; i < 4; i++) {
		if ((r = resolve(gi, p, bn->input[i + 1], names[i], true, &prm)) <= 0)
			return r;
		if (prm.view.numel != n || prm.view.rank > 1) {
			bnf_const_release(&prm);
			return skip(p, BNF_CHANNEL_MISMATCH, "%s '%s' has %zu elements (rank %zu), the %s has %zu %s channels",
				    names[i], bn->input[i + 1], prm.view.numel, prm.view.rank, what ? what : "Conv after it", n,
				    what ? "output" : "input");
		}
		vals[i] = read_all(&prm.view);
		bnf_const_release(&prm);
		if (!vals[i])
			return oom(gi, bn);
	}
	return 1;
}

/* p->scale from the BN parameters vals (scale, B, mean, var): true, or
 * false after recording why not (NaN/Inf, var + eps <= 0). */
static bool bn_scale(bnf_plan *p, double *const vals[4])
{
	size_t bad;
	int r = bnf_bn_scale(vals[0], vals[2], vals[3], vals[1], p->eps, p->channels, p->scale, &bad);
	if (r != BNF_FOLD)
		skip(p, (bnf_reason)r, "channel %zu: scale=%g mean=%g var=%g B=%g epsilon=%g", bad, vals[0][bad],
		     vals[2][bad], vals[3][bad], vals[1][bad], p->eps);
	return r == BNF_FOLD;
}

static void free4(double *v[4])
{
	for (int i = 0; i < 4; i++)
		free(v[i]);
}

/* Layer -> BN: the BN's map s*(x - mean) + beta moves into the layer. */
static int plan_after_layer(const bnf_graph *gi, bnf_plan *p, const Onnx__NodeProto *bn,
			    const bnf_value *x, layer_kind kind)
{
	const Onnx__NodeProto *layer = gi->g->node[x->producer];
	double *vals[4] = {0}, *old_bias = NULL;
	int r;

	p->layer_node = x->producer;
	p->tail_node = p->tail_node >= 0 ? p->tail_node : x->producer;
	p->pattern = pattern_name(kind, "bn");
	p->absorb = BNF_ABSORB_OUTPUT;
	p->scale_weight = true;
	p->write_bias = true;
	if (x->is_output)
		return skip(p, BNF_LAYER_OUTPUT_IS_GRAPH_OUTPUT, "'%s' is a graph output", bn->input[0]);
	if (x->n_consumers != 1)
		return skip(p, BNF_LAYER_OUTPUT_HAS_OTHER_CONSUMERS, "'%s' is read by %d nodes", bn->input[0], x->n_consumers);
	if ((r = layer_geometry(gi, p, layer, kind, &old_bias)) <= 0)
		return r;
	if ((r = bn_params(gi, p, bn, p->channels, layer->op_type, vals)) <= 0)
		goto out;
	p->scale = malloc(p->channels * sizeof(double));
	p->new_bias = malloc(p->channels * sizeof(double));
	if (!p->scale || !p->new_bias) {
		r = oom(gi, bn);
		goto out;
	}
	if (!bn_scale(p, vals)) {
		r = 0;
		goto out;
	}
	bnf_bn_bias(old_bias, vals[2], vals[1], p->scale, p->channels, p->new_bias);
	r = check_weight(gi, p, layer->input[1]) < 0 ? oom(gi, bn) : 0;
out:
	free4(vals);
	free(old_bias);
	return r < 0 ? -1 : 0;
}

/* The single node reading `name`, and which input slot; -1 if not one. */
static int sole_reader(const bnf_graph *gi, const char *name, int *slot)
{
	int found = -1;
	for (size_t n = 0; n < gi->g->n_node; n++) {
		const Onnx__NodeProto *node = gi->g->node[n];
		for (size_t i = 0; i < node->n_input; i++) {
			if (strcmp(node->input[i], name) != 0)
				continue;
			if (found >= 0)
				return -1;
			found = (int)n;
			*slot = (int)i;
		}
	}
	return found;
}

/* True when the Conv reads its input without padding. */
static bool conv_unpadded(const Onnx__NodeProto *conv)
{
	const Onnx__AttributeProto *a = bnf_node_attr(conv, "pads");
	const Onnx__AttributeProto *ap = bnf_node_attr(conv, "auto_pad");
	if (a)
		for (size_t i = 0; i < a->n_ints; i++)
			if (a->ints[i] != 0)
				return false;
	if (ap && ap->has_s && ap->s.len > 0) {
		bool notset = ap->s.len == 6 && memcmp(ap->s.data, "NOTSET", 6) == 0;
		bool valid = ap->s.len == 5 && memcmp(ap->s.data, "VALID", 5) == 0;
		return notset || valid;
	}
	return true;
}

/* BN -> Conv: W'[o,i,k] = W[o,i,k] * s[i]; b'[o] = b[o] + sum_{i,k} W[o,i,k] * t[i],
 * t = beta - mean * s.  Exact only when the Conv does not pad. Returns 1
 * when a Conv reads the BN alone (p holds the decision), 0 when there is
 * no such Conv, -1 on error. */
static int plan_before_conv(const bnf_graph *gi, bnf_plan *p, const Onnx__NodeProto *bn)
{
	const bnf_value *y = bnf_graph_value(gi, bn->output[0]);
	const Onnx__NodeProto *conv;
	const bnf_tview *w;
	double *vals[4] = {0}, *old_bias = NULL, *t = NULL, *scratch = NULL;
	size_t cout, cin_g, groups, K;
	int slot = -1, ci, r;

	if (!y || y->is_output || y->n_consumers != 1)
		return 0;
	ci = sole_reader(gi, bn->output[0], &slot);
	if (ci < 0 || slot != 0 || !bnf_node_is_onnx(gi->g->node[ci], "Conv"))
		return 0;
	conv = gi->g->node[ci];
	p->layer_node = ci;
	p->pattern = "bn_conv";
	p->absorb = BNF_ABSORB_INPUT;
	p->scale_weight = true;
	p->write_bias = true;
	p->has_bias = false;
	p->reason = BNF_FOLD;
	p->message[0] = '\0';
	if (!conv_unpadded(conv)) {
		skip(p, BNF_BN_BEFORE_CONV_WITH_PADDING, "Conv '%s' pads its input", conv->name ? conv->name : "");
		return 1;
	}
	if ((r = layer_geometry(gi, p, conv, L_CONV, &old_bias)) <= 0)
		return r < 0 ? -1 : 1;
	w = &p->weight.view;
	groups = (size_t)bnf_node_attr_int(conv, "group", 1);
	cout = (size_t)w->dims[0];
	cin_g = (size_t)w->dims[1];
	K = prod_from(w, 2);
	if (groups < 1 || cout % groups != 0 || cin_g < 1) {
		free(old_bias);
		skip(p, BNF_BAD_WEIGHT_SHAPE, "weight '%s' does not fit group %zu", conv->input[1], groups);
		return 1;
	}
	p->channels = groups * cin_g;
	p->bias_len = cout;
	/* Input channel of element (o, i, k): (o / (C_out/g)) * C_in/g + i. */
	p->transform.layout = (bnf_layout){.inner = K, .per_group = cin_g, .rows_per_group = cout / groups,
					   .channels = p->channels};
	if ((r = bn_params(gi, p, bn, p->channels, NULL, vals)) <= 0)
		goto out;
	p->scale = malloc(p->channels * sizeof(double));
	p->new_bias = malloc(cout * sizeof(double));
	t = malloc(p->channels * sizeof(double));
	scratch = malloc(CHUNK * sizeof(double));
	if (!p->scale || !p->new_bias || !t || !scratch) {
		r = oom(gi, bn);
		goto out;
	}
	if (!bn_scale(p, vals)) {
		r = 0;
		goto out;
	}
	for (size_t c = 0; c < p->channels; c++)
		t[c] = vals[1][c] - vals[2][c] * p->scale[c];
	for (size_t o = 0; o < cout; o++)
		p->new_bias[o] = old_bias ? old_bias[o] : 0.0;
	for (size_t done = 0; done < w->numel; done += CHUNK) {
		size_t n = w->numel - done < CHUNK ? w->numel - done : CHUNK;
		bnf_tview_read_range(w, done, n, scratch);
		for (size_t i = 0; i < n; i++)
			p->new_bias[(done + i) / (cin_g * K)] +=
				scratch[i] * t[bnf_layout_channel(&p->transform.layout, done + i)];
	}
	r = check_weight(gi, p, conv->input[1]);
	if (r < 0)
		r = oom(gi, bn);
out:
	free4(vals);
	free(old_bias);
	free(t);
	free(scratch);
	return r < 0 ? -1 : 1;
}

/* x is the output of a Transpose or Identity: follow such nodes back (each
 * output read once, none a graph output) to the output of a layer; when
 * the Transposes compose to no permutation at all, that output, else NULL. */
static const bnf_value *round_trip(const bnf_graph *gi, const bnf_value *x)
{
	int64_t perm[BNF_MAX_RANK];
	size_t rank = 0;

	for (int hop = 0; hop < 16 && x && x->producer >= 0 && x->producer_slot == 0; hop++) {
		const Onnx__NodeProto *n = gi->g->node[x->producer];
		if (x->n_consumers != 1 || x->is_output)
			return NULL;
		if (kind_of(n) != L_NONE) {
			for (size_t i = 0; i < rank; i++)
				if (perm[i] != (int64_t)i)
					return NULL;
			return hop > 0 ? x : NULL;
		}
		if (n->n_input != 1)
			return NULL; /* a Transpose or Identity has one input; anything else is not followed */
		if (bnf_node_is_onnx(n, "Transpose")) {
			const Onnx__AttributeProto *a = bnf_node_attr(n, "perm");
			int64_t q[BNF_MAX_RANK];
			if (!a || a->n_ints == 0 || a->n_ints > BNF_MAX_RANK || (rank && a->n_ints != rank))
				return NULL; /* no perm: reversed axes of an unknown rank */
			/* out[i] = in[a[i]]; composed from the BN back: total[i] = a[total[i]] */
			for (size_t i = 0; i < a->n_ints; i++) {
				int64_t k = rank ? perm[i] : (int64_t)i;
				if (k < 0 || (size_t)k >= a->n_ints || a->ints[k] < 0 || (size_t)a->ints[k] >= a->n_ints)
					return NULL;
				q[i] = a->ints[k];
			}
			rank = a->n_ints;
			memcpy(perm, q, rank * sizeof(q[0]));
		} else if (!bnf_node_is_onnx(n, "Identity")) {
			return NULL;
		}
		x = bnf_graph_value(gi, n->input[0]);
	}
	return NULL;
}

int bnf_plan_bn(const bnf_graph *gi, int node, bnf_plan *p)
{
	const Onnx__NodeProto *bn = gi->g->node[node];
	const bnf_value *x;
	const Onnx__AttributeProto *ref;
	layer_kind kind = L_NONE;
	bnf_plan before;
	char why[200];
	int r;

	memset(p, 0, sizeof(*p));
	p->node = node;
	p->is_bn = true;
	p->layer_node = -1;
	p->tail_node = -1;
	p->pattern = "conv_bn";
	p->reason = BNF_FOLD;
	p->eps = (double)bnf_node_attr_float(bn, "epsilon", 1e-5f);

	if (bn->n_input < 5 || bn->n_output < 1 || !bn->output[0][0])
		return skip(p, BNF_BN_MALFORMED, "has %zu inputs and %zu outputs, needs 5 and at least 1",
			    bn->n_input, bn->n_output);
	for (int i = 0; i < 5; i++)
		if (!bn->input[i][0])
			return skip(p, BNF_BN_MALFORMED, "input %d is empty", i);
	if ((ref = attr_reference(bn)))
		return skip_attr_reference(p, bn, ref);
	if (bn_is_training(gi, bn, why, sizeof(why)))
		return skip(p, BNF_BN_TRAINING_MODE, "%s", why);
	if (gi->opset < 9 && bnf_node_attr_int(bn, "spatial", 1) == 0)
		return skip(p, BNF_BN_NOT_SPATIAL, "spatial=0 (opset %d)", gi->opset);

	x = bnf_graph_value(gi, bn->input[0]);
	if (x && x->producer >= 0 && x->producer_slot == 0)
		kind = kind_of(gi->g->node[x->producer]);
	if (kind == L_NONE && x && x->producer >= 0) {
		/* Transposes that undo each other (exporters converting NCHW to
		 * NHWC and back) leave the channel where the BN reads it. */
		int tail = x->producer;
		const bnf_value *lx = round_trip(gi, x);
		if (lx) {
			x = lx;
			kind = kind_of(gi->g->node[x->producer]);
			p->tail_node = tail;
		}
	}
	if (kind != L_NONE) {
		if (plan_after_layer(gi, p, bn, x, kind) < 0)
			return -1;
		if (p->reason == BNF_FOLD)
			return 0;
	} else {
		skip(p, BNF_NO_LINEAR_PRODUCER, "input '%s' is %s", bn->input[0],
		     !x || x->producer < 0 ? "not produced by a node" : "not the output of a Conv, ConvTranspose, Gemm or MatMul");
	}
	/* Not into the layer before: perhaps into a Conv after. */
	memset(&before, 0, sizeof(before));
	before.node = node;
	before.is_bn = true;
	before.layer_node = -1;
	before.tail_node = -1;
	before.eps = p->eps;
	r = plan_before_conv(gi, &before, bn);
	if (r < 0) {
		bnf_plan_free(&before);
		return -1;
	}
	if (r == 1 && (before.reason == BNF_FOLD || kind == L_NONE)) {
		bnf_plan_free(p);
		memcpy(p, &before, sizeof(*p));
		return 0;
	}
	bnf_plan_free(&before);
	return 0;
}

/* Mul or Add of a per-channel constant after a Conv/ConvTranspose. */
int bnf_plan_affine(const bnf_graph *gi, int node, bnf_plan *p)
{
	const Onnx__NodeProto *op = gi->g->node[node];
	bool is_mul = bnf_node_is_onnx(op, "Mul");
	const bnf_value *x = NULL;
	const Onnx__NodeProto *layer;
	layer_kind kind = L_NONE;
	bnf_const k;
	double *kv = NULL, *old_bias = NULL;
	size_t out_rank;
	int side = -1, r;

	memset(p, 0, sizeof(*p));
	p->node = node;
	p->layer_node = -1;
	p->tail_node = -1;
	p->reason = BNF_NO_LINEAR_PRODUCER;
	if (op->n_input != 2 || op->n_output != 1 || !op->output[0][0] || gi->opset < 7)
		return 0;
	for (int i = 0; i < 2 && side < 0; i++) {
		const bnf_value *v = bnf_graph_value(gi, op->input[i]);
		if (v && v->producer >= 0 && v->producer_slot == 0) {
			layer_kind lk = kind_of(gi->g->node[v->producer]);
			if (lk == L_CONV || lk == L_CONVTRANSPOSE) {
				side = i;
				x = v;
				kind = lk;
			}
		}
	}
	if (side < 0 || x->is_output || x->n_consumers != 1)
		return 0;
	layer = gi->g->node[x->producer];
	p->layer_node = x->producer;
	p->pattern = pattern_name(kind, is_mul ? "mul" : "add");
	p->absorb = BNF_ABSORB_OUTPUT;
	p->reason = BNF_FOLD;
	if ((r = resolve(gi, p, op->input[1 - side], "constant", true, &k)) <= 0)
		return r;
	if ((r = layer_geometry(gi, p, layer, kind, &old_bias)) <= 0) {
		bnf_const_release(&k);
		return r;
	}
	out_rank = p->weight.view.rank; /* a Conv/ConvTranspose output has its weight's rank */
	/* The constant must vary along the channel axis (1) only and must not
	 * widen the output: right-aligned dims are 1, or C on axis 1. */
	r = k.view.dtype == p->dtype && k.view.rank <= out_rank;
	for (size_t d = 0; r && d < k.view.rank; d++) {
		size_t axis = out_rank - k.view.rank + d;
		int64_t dim = k.view.dims[d];
		r = dim == 1 || (axis == 1 && (size_t)dim == p->channels);
	}
	if (!r) {
		skip(p, BNF_CHANNEL_MISMATCH, "the constant is not per channel");
		goto out;
	}
	p->scale = malloc(p->channels * sizeof(double));
	p->new_bias = malloc(p->channels * sizeof(double));
	kv = read_all(&k.view);
	if (!p->scale || !p->new_bias || !kv) {
		r = oom(gi, op);
		goto out;
	}
	for (size_t c = 0; c < p->channels; c++) {
		double v = kv[k.view.numel == 1 ? 0 : c], b = old_bias ? old_bias[c] : 0.0;
		if (!isfinite(v)) {
			skip(p, BNF_NON_FINITE_PARAM, "constant channel %zu is not finite", c);
			r = 0;
			goto out;
		}
		p->scale[c] = is_mul ? v : 1.0;
		p->new_bias[c] = is_mul ? b * v : b + v;
	}
	p->scale_weight = is_mul;
	p->write_bias = !is_mul || old_bias;
	r = check_weight(gi, p, layer->input[1]);
	if (r < 0)
		r = oom(gi, op);
out:
	bnf_const_release(&k);
	free(kv);
	free(old_bias);
	return r < 0 ? -1 : 0;
}

void bnf_plan_free(bnf_plan *p)
{
	free(p->scale);
	free(p->new_bias);
	p->scale = p->new_bias = NULL;
}
