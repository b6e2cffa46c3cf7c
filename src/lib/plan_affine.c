#include "plan_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "constants.h"

/* Mul or Add of a per-channel constant after a Conv/ConvTranspose. */
/* The Conv or ConvTranspose whose output op reads, read by op alone:
 * *side is which input of op it is.  NULL when there is none. */
static const bnf_value *layer_input(const bnf_graph *gi, const Onnx__NodeProto *op, int *side, bnf_layer_kind *kind)
{
	for (int i = 0; i < 2; i++) {
		const bnf_value *v = bnf_graph_value(gi, op->input[i]);
		if (v && v->producer >= 0 && v->producer_slot == 0) {
			bnf_layer_kind lk = bnf_plan_layer_kind(gi->g->node[v->producer]);
			if (lk == BNF_LAYER_CONV || lk == BNF_LAYER_CONVTRANSPOSE) {
				*side = i;
				*kind = lk;
				return v->is_output || v->n_consumers != 1 ? NULL : v;
			}
		}
	}
	return NULL;
}

/* True when the constant k varies along the channel axis (1) only and does
 * not widen the output: right-aligned dims are 1, or C on axis 1. */
static bool per_channel(const bnf_plan *p, const bnf_const *k)
{
	size_t out_rank = p->weight.view.rank; /* a Conv/ConvTranspose output has its weight's rank */
	bool ok = k->view.dtype == p->dtype && k->view.rank <= out_rank;
	for (size_t d = 0; ok && d < k->view.rank; d++) {
		size_t axis = out_rank - k->view.rank + d;
		int64_t dim = k->view.dims[d];
		ok = dim == 1 || (axis == 1 && (size_t)dim == p->channels);
	}
	return ok;
}

/* p->scale and p->new_bias from the constant's values kv (one, or one per
 * channel) and the layer's bias.  1, or 0 after a skip. */
static int affine_map(bnf_plan *p, bool is_mul, const double *kv, size_t k_len, const double *old_bias)
{
	for (size_t c = 0; c < p->channels; c++) {
		double v = kv[k_len == 1 ? 0 : c], b = old_bias ? old_bias[c] : 0.0;
		if (!isfinite(v))
			return bnf_plan_skip(p, BNF_NON_FINITE_PARAM, "constant channel %zu is not finite", c);
		p->scale[c] = is_mul ? v : 1.0;
		p->new_bias[c] = is_mul ? b * v : b + v;
	}
	p->scale_weight = is_mul;
	p->write_bias = !is_mul || old_bias;
	return 1;
}

int bnf_plan_affine(const bnf_graph *gi, const bnf_policy *pol, int node, bnf_plan *p)
{
	const Onnx__NodeProto *op = gi->g->node[node];
	bool is_mul = bnf_node_is_onnx(op, "Mul");
	const bnf_value *x;
	const Onnx__NodeProto *layer;
	bnf_layer_kind kind = BNF_LAYER_NONE;
	bnf_const k;
	double *kv = NULL, *old_bias = NULL;
	int side = -1, r;

	memset(p, 0, sizeof(*p));
	p->node = node;
	p->op = is_mul ? BNF_OP_MUL : BNF_OP_ADD;
	p->pattern = BNF_PAT_NONE;
	p->layer_node = -1;
	p->tail_node = -1;
	p->reason = BNF_NO_LINEAR_PRODUCER;
	if (op->n_input != 2 || op->n_output != 1 || !op->output[0][0] || gi->opset < 7)
		return 0;
	if (!(x = layer_input(gi, op, &side, &kind)))
		return 0;
	layer = gi->g->node[x->producer];
	p->layer_node = x->producer;
	p->layer_kind = kind;
	p->pattern = bnf_pattern_find(kind, p->op, false);
	p->absorb = BNF_ABSORB_OUTPUT;
	p->reason = BNF_FOLD;
	if ((r = bnf_plan_resolve(gi, p, op->input[1 - side], "constant", true, &k)) <= 0)
		return r;
	if ((r = bnf_plan_layer_geometry(gi, p, layer, kind, &old_bias)) <= 0) {
		bnf_const_release(&k);
		return r;
	}
	if (!per_channel(p, &k)) {
		r = bnf_plan_skip(p, BNF_CHANNEL_MISMATCH, "the constant is not per channel");
		goto out;
	}
	p->scale = malloc(p->channels * sizeof(double));
	p->new_bias = malloc(p->channels * sizeof(double));
	kv = bnf_plan_read_all(&k.view);
	if (!p->scale || !p->new_bias || !kv) {
		r = bnf_plan_oom(gi, op);
		goto out;
	}
	if ((r = affine_map(p, is_mul, kv, k.view.numel, old_bias)) <= 0)
		goto out;
	r = bnf_plan_check_weight(pol, p, layer->input[1]);
	if (r < 0)
		r = bnf_plan_oom(gi, op);
out:
	bnf_const_release(&k);
	free(kv);
	free(old_bias);
	return r < 0 ? -1 : 0;
}
