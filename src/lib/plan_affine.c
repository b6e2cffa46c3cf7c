#include "plan_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "constants.h"

/* Mul or Add of a per-channel constant after a layer. */

/* The input of op that a layer (of any kind bnfold folds into) produces:
 * *side is which input of op it is, *kind the layer's kind.  NULL when
 * neither is. */
static const bnf_value *layer_input(const bnf_graph *gi, const Onnx__NodeProto *op, int *side, bnf_layer_kind *kind)
{
	for (int i = 0; i < 2; i++) {
		const bnf_value *v = bnf_graph_value(gi, op->input[i]);
		if (v && v->producer >= 0 && v->producer_slot == 0) {
			bnf_layer_kind lk = bnf_plan_layer_kind(gi->g->node[v->producer]);
			if (lk != BNF_LAYER_NONE) {
				*side = i;
				*kind = lk;
				return v;
			}
		}
	}
	return NULL;
}

/* The rank of the layer's output and its channel axis, for the broadcast
 * of the constant k: a Conv's or ConvTranspose's output has its weight's
 * rank and its channels on axis 1; a Gemm's is [M, N]; a MatMul's columns
 * are its last axis, whatever its rank (which only a constant of rank 2 or
 * more needs to know).  1, or 0 after a skip. */
static int output_axes(const bnf_graph *gi, bnf_plan *p, const Onnx__NodeProto *layer, const bnf_const *k,
		       size_t *rank, size_t *axis)
{
	bnf_shape s;

	switch (p->layer_kind) {
	case BNF_LAYER_GEMM:
		*rank = 2;
		break;
	case BNF_LAYER_MATMUL:
		if (bnf_graph_shape(gi, layer->output[0], &s) && s.rank >= 1)
			*rank = (size_t)s.rank;
		else if (k->view.rank <= 1)
			*rank = 1; /* [N] or one value lines up with the last axis of any rank */
		else
			return bnf_plan_skip(p, s.conflict ? BNF_SHAPE_CONFLICT : BNF_SHAPE_UNKNOWN,
				    "the rank of MatMul output '%s' is not known, and the constant has rank %zu",
				    layer->output[0], k->view.rank);
		break;
	default:
		*rank = p->weight.view.rank;
		*axis = 1;
		return 1;
	}
	*axis = *rank - 1;
	return 1;
}

/* 1 when the constant k varies along the channel axis only and does not
 * widen the output (dims aligned on the right are 1, or the channel count
 * on the channel axis); else 0 after a skip. */
static int per_channel(const bnf_graph *gi, bnf_plan *p, const Onnx__NodeProto *layer, const bnf_const *k,
		       const char *kname)
{
	size_t out_rank = 0, axis = 0;
	int r;

	if (k->view.dtype != p->dtype)
		return bnf_plan_skip(p, BNF_DTYPE_MISMATCH, "constant '%s' is %s, the weight is %s", kname,
			    bnf_dtype_name(k->view.dtype), bnf_dtype_name(p->dtype));
	if ((r = output_axes(gi, p, layer, k, &out_rank, &axis)) <= 0)
		return r;
	if (k->view.rank > out_rank)
		return bnf_plan_skip(p, BNF_CHANNEL_MISMATCH, "constant '%s' has rank %zu, more than the output's %zu", kname,
			    k->view.rank, out_rank);
	for (size_t d = 0; d < k->view.rank; d++) {
		size_t at = out_rank - k->view.rank + d;
		int64_t dim = k->view.dims[d];
		if (dim != 1 && !(at == axis && (size_t)dim == p->channels))
			return bnf_plan_skip(p, BNF_CHANNEL_MISMATCH,
				    "constant '%s' has %lld elements along output axis %zu; the %zu channels are on axis %zu",
				    kname, (long long)dim, at, p->channels, axis);
	}
	return 1;
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

/* The plan once the layer and the constant k are known. */
static int plan_with(const bnf_graph *gi, const bnf_policy *pol, bnf_plan *p, const Onnx__NodeProto *op,
		     const Onnx__NodeProto *layer, const bnf_value *x, const bnf_const *k, const char *kname)
{
	bool is_mul = p->op == BNF_OP_MUL;
	bnf_chain direct = {.layer = p->layer_node, .n = 0};
	double *kv = NULL, *old_bias = NULL;
	int r;

	if ((r = bnf_plan_chain_alone(gi, p, x, &direct)) <= 0)
		return r;
	/* An Add gives a MatMul a bias, which only a Gemm takes. */
	if (p->layer_kind == BNF_LAYER_MATMUL && !is_mul && (r = bnf_plan_to_gemm(gi, p, layer)) <= 0)
		return r;
	if ((r = bnf_plan_layer_geometry(gi, p, layer, p->layer_kind, &old_bias)) <= 0)
		return r;
	if ((r = per_channel(gi, p, layer, k, kname)) <= 0)
		goto out;
	p->scale = malloc(p->channels * sizeof(double));
	p->new_bias = malloc(p->channels * sizeof(double));
	kv = bnf_plan_read_all(&k->view);
	if (!p->scale || !p->new_bias || !kv) {
		r = bnf_plan_oom(gi, op);
		goto out;
	}
	if ((r = affine_map(p, is_mul, kv, k->view.numel, old_bias)) <= 0)
		goto out;
	r = bnf_plan_check_weight(pol, p, layer->input[1]);
	if (r < 0)
		r = bnf_plan_oom(gi, op);
out:
	free(kv);
	free(old_bias);
	return r;
}

int bnf_plan_affine(const bnf_graph *gi, const bnf_policy *pol, int node, bnf_plan *p)
{
	const Onnx__NodeProto *op = gi->g->node[node];
	bool is_mul = bnf_node_is_onnx(op, "Mul");
	const bnf_value *x;
	bnf_layer_kind kind = BNF_LAYER_NONE;
	bnf_const k;
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
	p->layer_node = x->producer;
	p->x_input = side;
	p->param_input = 1 - side;
	p->layer_kind = kind;
	p->pattern = bnf_pattern_find(kind, p->op, false);
	p->absorb = BNF_ABSORB_OUTPUT;
	p->reason = BNF_FOLD;
	if ((r = bnf_plan_resolve(gi, p, op->input[1 - side], "constant", true, &k)) <= 0) {
		/* A Mul or Add of two computed values is arithmetic, not a fold
		 * left undone: only a constant makes it worth a row. */
		p->reported = r == 0 && p->reason != BNF_PARAM_NOT_CONSTANT;
		return r;
	}
	p->reported = true;
	r = plan_with(gi, pol, p, op, gi->g->node[x->producer], x, &k, op->input[1 - side]);
	bnf_const_release(&k);
	return r < 0 ? -1 : 0;
}
