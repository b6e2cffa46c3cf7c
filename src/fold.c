#include "fold.h"

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

size_t bnf_layout_channel(const bnf_layout *l, size_t i)
{
	size_t row = i / (l->per_group * l->inner);
	return (row / l->rows_per_group) * l->per_group + (i / l->inner) % l->per_group;
}

void bnf_transform_apply(const bnf_transform *tf, const bnf_tview *src, size_t first, size_t n,
			 double *scratch, unsigned char *out)
{
	size_t es = bnf_dtype_size(tf->dtype);
	bnf_tview_read_range(src, first, n, scratch);
	for (size_t i = 0; i < n; i++) {
		double y = scratch[i] * tf->scale[bnf_layout_channel(&tf->layout, first + i)];
		bnf_encode(tf->dtype, y, out + i * es);
	}
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

/* Resolve input `name` (what = "weight", "scale", ...) of the layer or BN
 * into c; 1 when usable, 0 after recording a skip, -1 on malformed input. */
static int resolve(const bnf_graph *gi, bnf_plan *p, const char *name, const char *what,
		   bool is_param, bnf_const *c)
{
	bnf_const_status st = bnf_graph_const(gi, name, c);
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

int bnf_plan_bn(const bnf_graph *gi, int bn_index, bnf_plan *p)
{
	const Onnx__GraphProto *g = gi->g;
	const Onnx__NodeProto *bn = g->node[bn_index];
	const Onnx__NodeProto *layer;
	const bnf_value *x;
	static const char *const param_names[4] = {"scale", "B", "mean", "var"};
	bnf_const prm[4];
	double *vals[4] = {0}, *bias_vals = NULL, *scratch = NULL;
	size_t C, bad, inner = 1, done;
	const bnf_tview *w;
	char why[200];
	int r, rc = -1;

	memset(p, 0, sizeof(*p));
	p->bn_node = bn_index;
	p->layer_node = -1;
	p->pattern = "conv_bn";
	p->reason = BNF_FOLD;
	p->eps = (double)bnf_node_attr_float(bn, "epsilon", 1e-5f);

	if (bn->n_input < 5 || bn->n_output < 1 || !bn->output[0][0]) {
		skip(p, BNF_BN_MALFORMED, "has %zu inputs and %zu outputs, needs 5 and at least 1",
		     bn->n_input, bn->n_output);
		return 0;
	}
	for (int i = 0; i < 5; i++)
		if (!bn->input[i][0])
			return skip(p, BNF_BN_MALFORMED, "input %d is empty", i);
	if (bn_is_training(gi, bn, why, sizeof(why)))
		return skip(p, BNF_BN_TRAINING_MODE, "%s", why);
	if (gi->opset < 9 && bnf_node_attr_int(bn, "spatial", 1) == 0)
		return skip(p, BNF_BN_NOT_SPATIAL, "spatial=0 (opset %d)", gi->opset);

	x = bnf_graph_value(gi, bn->input[0]);
	if (!x || x->producer < 0 || !bnf_node_is_onnx(g->node[x->producer], "Conv") || x->producer_slot != 0)
		return skip(p, BNF_NO_LINEAR_PRODUCER, "input '%s' is %s", bn->input[0],
			    !x || x->producer < 0 ? "not produced by a node" : "not the output of a Conv");
	p->layer_node = x->producer;
	layer = g->node[x->producer];
	if (x->is_output)
		return skip(p, BNF_LAYER_OUTPUT_IS_GRAPH_OUTPUT, "'%s' is a graph output", bn->input[0]);
	if (x->n_consumers != 1)
		return skip(p, BNF_LAYER_OUTPUT_HAS_OTHER_CONSUMERS, "'%s' is read by %d nodes",
			    bn->input[0], x->n_consumers);
	if (layer->n_input < 2 || !layer->input[1][0])
		return skip(p, BNF_WEIGHT_NOT_CONSTANT, "the Conv has no weight input");

	if ((r = resolve(gi, p, layer->input[1], "weight", false, &p->weight)) <= 0)
		return r;
	w = &p->weight.view;
	if (w->rank < 3 || w->dims[0] < 1)
		return skip(p, BNF_BAD_WEIGHT_SHAPE, "weight '%s' has rank %zu; a Conv weight has rank >= 3 and at least one output channel",
			    layer->input[1], w->rank);
	/* A weight that is not edited in place is written out as a new tensor:
	 * check it fits before walking its elements below. */
	if (!(p->weight.tensor && p->weight.exclusive) && w->numel > gi->new_bytes_left / bnf_dtype_size(w->dtype))
		return skip(p, BNF_WEIGHT_TOO_LARGE,
			    "weight '%s' (%zu elements) is %s, so folding writes a new copy, and new tensors may take "
			    "only %zu MiB more",
			    layer->input[1], w->numel,
			    p->weight.tensor ? "not this layer's alone" : "made by ConstantOfShape", gi->new_bytes_left >> 20);
	C = (size_t)w->dims[0];
	p->channels = C;
	p->dtype = w->dtype;
	if (layer->n_input >= 3 && layer->input[2][0]) {
		p->has_bias = true;
		if ((r = resolve(gi, p, layer->input[2], "bias", false, &p->bias)) <= 0)
			return r;
		if (p->bias.view.dtype != p->dtype)
			return skip(p, BNF_DTYPE_MISMATCH, "bias '%s' is %s, weight is %s", layer->input[2],
				    bnf_dtype_name(p->bias.view.dtype), bnf_dtype_name(p->dtype));
		if (p->bias.view.rank != 1 || p->bias.view.numel != C)
			return skip(p, BNF_BAD_WEIGHT_SHAPE, "bias '%s' has %zu elements, the Conv has %zu output channels",
				    layer->input[2], p->bias.view.numel, C);
	}
	for (int i = 0; i < 4; i++) {
		if ((r = resolve(gi, p, bn->input[i + 1], param_names[i], true, &prm[i])) <= 0)
			return r;
		if (prm[i].view.numel != C || prm[i].view.rank > 1)
			return skip(p, BNF_CHANNEL_MISMATCH, "%s '%s' has %zu elements (rank %zu), the Conv has %zu output channels",
				    param_names[i], bn->input[i + 1], prm[i].view.numel, prm[i].view.rank, C);
	}

	/* From here on allocations: every exit goes through cleanup. */
	for (int i = 0; i < 4; i++)
		if (!(vals[i] = malloc(C * sizeof(double))))
			goto oom;
	p->scale = malloc(C * sizeof(double));
	p->new_bias = malloc(C * sizeof(double));
	scratch = malloc(CHUNK * sizeof(double));
	if (!p->scale || !p->new_bias || !scratch)
		goto oom;
	for (int i = 0; i < 4; i++)
		bnf_tview_read(&prm[i].view, vals[i]);
	r = bnf_bn_scale(vals[0], vals[2], vals[3], vals[1], p->eps, C, p->scale, &bad);
	if (r != BNF_FOLD) {
		skip(p, (bnf_reason)r, "channel %zu: scale=%g mean=%g var=%g B=%g epsilon=%g", bad,
		     vals[0][bad], vals[2][bad], vals[3][bad], vals[1][bad], p->eps);
		rc = 0;
		goto cleanup;
	}
	if (p->has_bias) {
		if (!(bias_vals = malloc(C * sizeof(double))))
			goto oom;
		bnf_tview_read(&p->bias.view, bias_vals);
	}
	bnf_bn_bias(bias_vals, vals[2], vals[1], p->scale, C, p->new_bias);
	for (size_t c = 0; c < C; c++) {
		if (p->has_bias && !isfinite(bias_vals[c])) {
			skip(p, BNF_NON_FINITE_PARAM, "bias '%s' channel %zu is %g", layer->input[2], c, bias_vals[c]);
			rc = 0;
			goto cleanup;
		}
		if (!isfinite(bnf_round_to(p->dtype, p->new_bias[c]))) {
			skip(p, BNF_OVERFLOW, "folded bias of channel %zu is %g, beyond %s", c, p->new_bias[c],
			     bnf_dtype_name(p->dtype));
			rc = 0;
			goto cleanup;
		}
	}

	/* Conv weight [C_out, C_in/group, k...]: one row per output channel. */
	for (size_t d = 1; d < w->rank; d++)
		inner *= (size_t)w->dims[d];
	p->transform.dtype = p->dtype;
	p->transform.layout = (bnf_layout){.inner = inner, .per_group = C, .rows_per_group = 1, .channels = C};
	p->transform.scale = p->scale;
	for (done = 0; done < w->numel; done += CHUNK) {
		size_t n = w->numel - done < CHUNK ? w->numel - done : CHUNK;
		bnf_tview_read_range(w, done, n, scratch);
		for (size_t i = 0; i < n; i++) {
			size_t c = bnf_layout_channel(&p->transform.layout, done + i);
			if (!isfinite(scratch[i])) {
				skip(p, BNF_NON_FINITE_PARAM, "weight '%s' element %zu is %g", layer->input[1],
				     done + i, scratch[i]);
				rc = 0;
				goto cleanup;
			}
			if (!isfinite(bnf_round_to(p->dtype, scratch[i] * p->scale[c]))) {
				skip(p, BNF_OVERFLOW, "folded weight '%s' element %zu is %g, beyond %s",
				     layer->input[1], done + i, scratch[i] * p->scale[c], bnf_dtype_name(p->dtype));
				rc = 0;
				goto cleanup;
			}
		}
	}
	rc = 0;
	goto cleanup;
oom:
	rc = bnf_error("%s: out of memory planning BatchNormalization '%s'", gi->path, bn->output[0]);
cleanup:
	for (int i = 0; i < 4; i++)
		free(vals[i]);
	free(bias_vals);
	free(scratch);
	return rc;
}

void bnf_plan_free(bnf_plan *p)
{
	free(p->scale);
	free(p->new_bias);
	p->scale = p->new_bias = NULL;
}
