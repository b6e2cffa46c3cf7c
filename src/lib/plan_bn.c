#include "plan_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chain.h"
#include "common.h"

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

/* Layer -> BN: the BN's map s*(x - mean) + beta moves into the layer. */
static int plan_after_layer(const bnf_graph *gi, const bnf_policy *pol, bnf_plan *p, const Onnx__NodeProto *bn,
			    const bnf_value *x, const bnf_chain *ch, bnf_layer_kind kind)
{
	const Onnx__NodeProto *layer = gi->g->node[x->producer];
	double *vals[4] = {0}, *old_bias = NULL;
	int r;

	p->layer_node = x->producer;
	p->tail_node = p->tail_node >= 0 ? p->tail_node : x->producer;
	p->pattern = bnf_pattern_find(kind, BNF_OP_BN, false);
	p->layer_kind = kind;
	p->absorb = BNF_ABSORB_OUTPUT;
	p->scale_weight = true;
	p->write_bias = true;
	if ((r = bnf_plan_chain_alone(gi, p, x, ch)) <= 0)
		return r;
	/* The BN scales axis 1 of what it reads. */
	if ((r = bnf_plan_chain_axis(gi, p, ch, kind, 1)) <= 0)
		return r;
	if (kind == BNF_LAYER_MATMUL && (r = bnf_plan_to_gemm(gi, p, layer)) <= 0)
		return r;
	if ((r = bnf_plan_layer_geometry(gi, p, layer, kind, &old_bias)) <= 0)
		return r;
	if ((r = bnf_plan_bn_params(gi, p, bn, p->channels, layer->op_type, vals)) <= 0)
		goto out;
	p->scale = malloc(p->channels * sizeof(double));
	p->new_bias = malloc(p->channels * sizeof(double));
	if (!p->scale || !p->new_bias) {
		r = bnf_plan_oom(gi, bn);
		goto out;
	}
	if (!bnf_plan_bn_scale(p, vals)) {
		r = 0;
		goto out;
	}
	bnf_bn_bias(old_bias, vals[2], vals[1], p->scale, p->channels, p->new_bias);
	r = bnf_plan_check_weight(pol, p, layer->input[1]) < 0 ? bnf_plan_oom(gi, bn) : 0;
out:
	bnf_plan_free4(vals);
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
static int plan_before_conv(const bnf_graph *gi, const bnf_policy *pol, bnf_plan *p, const Onnx__NodeProto *bn)
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
	p->pattern = BNF_PAT_BN_CONV;
	p->layer_kind = BNF_LAYER_CONV;
	p->absorb = BNF_ABSORB_INPUT;
	p->scale_weight = true;
	p->write_bias = true;
	p->has_bias = false;
	p->reason = BNF_FOLD;
	p->message[0] = '\0';
	if (!conv_unpadded(conv)) {
		bnf_plan_skip(p, BNF_BN_BEFORE_CONV_WITH_PADDING, "Conv '%s' pads its input", conv->name ? conv->name : "");
		return 1;
	}
	if ((r = bnf_plan_layer_geometry(gi, p, conv, BNF_LAYER_CONV, &old_bias)) <= 0)
		return r < 0 ? -1 : 1;
	w = &p->weight.view;
	groups = (size_t)bnf_node_attr_int(conv, "group", 1);
	cout = (size_t)w->dims[0];
	cin_g = (size_t)w->dims[1];
	K = bnf_plan_prod_from(w, 2);
	if (groups < 1 || cout % groups != 0 || cin_g < 1) {
		free(old_bias);
		bnf_plan_skip(p, BNF_BAD_WEIGHT_SHAPE, "weight '%s' does not fit group %zu", conv->input[1], groups);
		return 1;
	}
	p->channels = groups * cin_g;
	p->bias_len = cout;
	/* Input channel of element (o, i, k): (o / (C_out/g)) * C_in/g + i. */
	p->transform.layout = (bnf_layout){.inner = K, .per_group = cin_g, .rows_per_group = cout / groups,
					   .channels = p->channels};
	if ((r = bnf_plan_bn_params(gi, p, bn, p->channels, NULL, vals)) <= 0)
		goto out;
	p->scale = malloc(p->channels * sizeof(double));
	p->new_bias = malloc(cout * sizeof(double));
	t = malloc(p->channels * sizeof(double));
	scratch = malloc(BNF_PLAN_CHUNK * sizeof(double));
	if (!p->scale || !p->new_bias || !t || !scratch) {
		r = bnf_plan_oom(gi, bn);
		goto out;
	}
	if (!bnf_plan_bn_scale(p, vals)) {
		r = 0;
		goto out;
	}
	for (size_t c = 0; c < p->channels; c++)
		t[c] = vals[1][c] - vals[2][c] * p->scale[c];
	for (size_t o = 0; o < cout; o++)
		p->new_bias[o] = old_bias ? old_bias[o] : 0.0;
	for (size_t done = 0; done < w->numel; done += BNF_PLAN_CHUNK) {
		size_t n = w->numel - done < BNF_PLAN_CHUNK ? w->numel - done : BNF_PLAN_CHUNK;
		bnf_tview_read_range(w, done, n, scratch);
		for (size_t i = 0; i < n; i++)
			p->new_bias[(done + i) / (cin_g * K)] +=
				scratch[i] * t[bnf_layout_channel(&p->transform.layout, done + i)];
	}
	r = bnf_plan_check_weight(pol, p, conv->input[1]);
	if (r < 0)
		r = bnf_plan_oom(gi, bn);
out:
	bnf_plan_free4(vals);
	free(old_bias);
	free(t);
	free(scratch);
	return r < 0 ? -1 : 1;
}

int bnf_plan_bn(const bnf_graph *gi, const bnf_policy *pol, int node, bnf_plan *p)
{
	const Onnx__NodeProto *bn = gi->g->node[node];
	const bnf_value *x;
	const Onnx__AttributeProto *ref;
	bnf_layer_kind kind = BNF_LAYER_NONE;
	bnf_chain ch;
	bnf_plan before;
	char why[200];
	int r;

	memset(p, 0, sizeof(*p));
	p->node = node;
	p->op = BNF_OP_BN;
	p->layer_node = -1;
	p->tail_node = -1;
	p->pattern = BNF_PAT_NONE;
	p->reason = BNF_FOLD;
	p->reported = true;
	p->param_input = 1; /* the scale */
	p->eps = (double)bnf_node_attr_float(bn, "epsilon", 1e-5f);

	if (bn->n_input < 5 || bn->n_output < 1 || !bn->output[0][0])
		return bnf_plan_skip(p, BNF_BN_MALFORMED, "has %zu inputs and %zu outputs, needs 5 and at least 1",
			    bn->n_input, bn->n_output);
	for (int i = 0; i < 5; i++)
		if (!bn->input[i][0])
			return bnf_plan_skip(p, BNF_BN_MALFORMED, "input %d is empty", i);
	if ((ref = bnf_plan_attr_reference(bn)))
		return bnf_plan_skip_attr_reference(p, bn, ref);
	if (bn_is_training(gi, bn, why, sizeof(why)))
		return bnf_plan_skip(p, BNF_BN_TRAINING_MODE, "%s", why);
	if (gi->opset < 9 && bnf_node_attr_int(bn, "spatial", 1) == 0)
		return bnf_plan_skip(p, BNF_BN_NOT_SPATIAL, "spatial=0 (opset %d)", gi->opset);

	/* The layer before, reached directly or through nodes that only move
	 * data (exporters' NCHW/NHWC Transposes, Reshapes around a MatMul). */
	if (bnf_chain_back(gi, bn->input[0], bnf_plan_is_layer, &ch)) {
		kind = bnf_plan_layer_kind(gi->g->node[ch.layer]);
		x = bnf_graph_value(gi, gi->g->node[ch.layer]->output[0]);
		p->tail_node = ch.n > 0 ? ch.nodes[ch.n - 1] : -1;
	}
	if (kind != BNF_LAYER_NONE) {
		if (plan_after_layer(gi, pol, p, bn, x, &ch, kind) < 0)
			return -1;
		if (p->reason == BNF_FOLD)
			return 0;
	} else {
		x = bnf_graph_value(gi, bn->input[0]);
		bnf_plan_skip(p, BNF_NO_LINEAR_PRODUCER, "input '%s' is %s", bn->input[0],
		     !x || x->producer < 0 ? "not produced by a node" : "not the output of a Conv, ConvTranspose, Gemm or MatMul");
	}
	/* Not into the layer before: perhaps into a Conv after. */
	memset(&before, 0, sizeof(before));
	before.node = node;
	before.op = BNF_OP_BN;
	before.pattern = BNF_PAT_NONE;
	before.layer_node = -1;
	before.tail_node = -1;
	before.eps = p->eps;
	before.reported = true;
	before.param_input = 1;
	r = plan_before_conv(gi, pol, &before, bn);
	if (r < 0) {
		bnf_plan_free(&before);
		return -1;
	}
	if (r == 1 && (before.reason == BNF_FOLD || kind == BNF_LAYER_NONE)) {
		bnf_plan_free(p);
		memcpy(p, &before, sizeof(*p));
		return 0;
	}
	bnf_plan_free(&before);
	return 0;
}

