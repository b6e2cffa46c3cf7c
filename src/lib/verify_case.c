/* The case of a plan, built from the graph: the layer, the node that
 * folds into it and their constants, checked now or packaged as a job to
 * run later. */
#include "verify.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "chain.h"
#include "constants.h"
#include "tensor.h"

static bool is_layer(const Onnx__NodeProto *n)
{
	static const char *const ops[] = {"Conv", "ConvTranspose", "Gemm", "MatMul"};
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (bnf_node_is_onnx(n, ops[i]))
			return true;
	return false;
}

/* True when `from` is the output of layer node `layer` carried by nodes
 * that only move data to a value whose axis 1 holds the layer's channels:
 * checked here on its own, apart from the plan's walk. */
static bool reaches_axis1(const bnf_graph *gi, const char *from, int layer)
{
	bnf_chain ch;
	char why[200];
	int axis = -1;
	bool matmul;

	if (!bnf_chain_back(gi, from, is_layer, &ch) || ch.layer != layer)
		return false;
	matmul = bnf_node_is_onnx(gi->g->node[layer], "MatMul");
	return bnf_chain_axis(gi, &ch, matmul ? -1 : 1, &axis, why, sizeof(why)) == BNF_AXIS_OK && axis == 1;
}

/* Resolve name to a float constant and read it into *out (caller frees).
 * 1 ok, 0 not a readable float constant, -1 out of memory. */
static int read_const(const bnf_graph *gi, const char *name, bnf_const *c, double **out)
{
	*out = NULL;
	memset(c, 0, sizeof(*c)); /* released below whatever happens */
	if (!name || !name[0] || bnf_graph_const_eval(gi, name, c) != BNF_CONST_OK || !bnf_dtype_is_float(c->view.dtype)) {
		bnf_const_release(c);
		return 0;
	}
	if (!(*out = malloc((c->view.numel ? c->view.numel : 1) * sizeof(double)))) {
		bnf_const_release(c);
		return -1;
	}
	bnf_tview_read(&c->view, *out);
	bnf_const_release(c); /* the values are in *out; the view's shape stays */
	return 1;
}

/* The spatial axis of a Conv whose border reads padding, or -1. */
static void conv_border(const Onnx__NodeProto *conv, size_t n_spatial, int *axis, bool *at_end)
{
	const Onnx__AttributeProto *pads = bnf_node_attr(conv, "pads"), *ap = bnf_node_attr(conv, "auto_pad");

	*axis = -1;
	*at_end = false;
	if (ap && ap->has_s && ap->s.len >= 4 && memcmp(ap->s.data, "SAME", 4) == 0) {
		*axis = 0;
		*at_end = ap->s.len == 10 && memcmp(ap->s.data, "SAME_UPPER", 10) == 0;
		return;
	}
	if (ap && ap->has_s && ap->s.len == 5 && memcmp(ap->s.data, "VALID", 5) == 0)
		return;
	for (size_t d = 0; pads && d < 2 * n_spatial && d < pads->n_ints; d++) {
		if (pads->ints[d] > 0) {
			*axis = (int)(d % n_spatial);
			*at_end = d >= n_spatial;
			return;
		}
	}
}

/* The arrays a case reads, owned by whoever builds the case until a job
 * takes them. */
typedef struct case_arrays {
	double *bias, *prm[4], *k;
} case_arrays;

static void arrays_free(case_arrays *a)
{
	free(a->bias);
	free(a->k);
	for (int i = 0; i < 4; i++)
		free(a->prm[i]);
}

struct bnf_verify_job {
	bnf_verify_case vc;
	bnf_tview weight;   /* vc.weight points here */
	bnf_plan plan;      /* a copy of the plan's fields that verify reads; scale and new_bias owned */
	case_arrays arr;    /* the case's arrays, owned */
	double tolerance;
	bnf_verify_config cfg;
};

void bnf_verify_job_free(bnf_verify_job *j)
{
	if (!j)
		return;
	free(j->plan.scale);
	free(j->plan.new_bias);
	arrays_free(&j->arr);
	free(j);
}

int bnf_verify_job_run(const bnf_verify_job *j, bool one_thread, bnf_verify *v, bnf_err *e)
{
	bnf_verify_config cfg = j->cfg;
	if (one_thread)
		cfg.threads = 1;
	return bnf_verify_run(&j->vc, &j->plan, j->tolerance, &cfg, v, e);
}

static double *dup_doubles(const double *a, size_t n)
{
	double *d = malloc((n ? n : 1) * sizeof(double));
	if (d && n)
		memcpy(d, a, n * sizeof(double));
	return d;
}

/* Package the case for later: 1 when it was (the arrays now belong to the
 * job), 0 when it must run now, -1 when memory runs out. */
static int package(const bnf_verify_case *vc, const bnf_plan *p, double tolerance, const bnf_verify_config *cfg,
		   case_arrays *a, bnf_verify_job **job)
{
	const bnf_tview *w = vc->weight, *pw = &p->weight.view;
	bnf_verify_job *j;

	if (!job || !w->src || w->lazy || !pw->src || pw->lazy || (p->scale_weight && !p->transform.scale))
		return 0;
	if (!(j = calloc(1, sizeof(*j))))
		return -1;
	j->vc = *vc;
	j->weight = *w;
	j->vc.weight = &j->weight;
	j->plan = *p;
	j->plan.scale = p->transform.scale ? dup_doubles(p->transform.scale, p->transform.layout.channels) : NULL;
	j->plan.transform.scale = j->plan.scale;
	j->plan.new_bias = p->new_bias ? dup_doubles(p->new_bias, p->bias_len) : NULL;
	if ((p->transform.scale && !j->plan.scale) || (p->new_bias && !j->plan.new_bias)) {
		bnf_verify_job_free(j);
		return -1;
	}
	j->arr = *a;
	memset(a, 0, sizeof(*a));
	j->tolerance = tolerance;
	if (cfg)
		j->cfg = *cfg;
	*job = j;
	return 1;
}

/* The layer's part of vc: its kind, its weight (*wc, which vc->weight
 * points into), its attributes and its bias (read into a->bias).  0, with
 * *problem set when the layer cannot be modelled; -1 when memory runs out. */
static int layer_case(const bnf_graph *gi, const bnf_plan *p, const Onnx__NodeProto *layer, bnf_const *wc,
		      bnf_verify_case *vc, case_arrays *a, const char **problem)
{
	static const bnf_verify_layer model_of[] = {
		[BNF_LAYER_CONV] = BNF_VL_CONV,
		[BNF_LAYER_CONVTRANSPOSE] = BNF_VL_CONVTRANSPOSE,
		[BNF_LAYER_GEMM] = BNF_VL_GEMM,
		[BNF_LAYER_MATMUL] = BNF_VL_GEMM, /* a Gemm with alpha = beta = 1 */
	};
	bnf_layer_kind kind = bnf_pattern_info(p->pattern)->layer;
	bnf_const bc;
	bnf_shape as;
	int r;

	/* The pattern says what the layer is; the node must agree with it. */
	if (kind == BNF_LAYER_NONE || !bnf_node_is_onnx(layer, bnf_layer_op_type(kind))) {
		*problem = "the layer is not the one the plan's pattern names";
		return 0;
	}
	vc->layer = model_of[kind];
	/* A weight the model computes from constants is evaluated again here,
	 * as the plan did; wc then owns it (the caller releases it). */
	if (layer->n_input < 2 || layer->n_output < 1 || bnf_graph_const_eval(gi, layer->input[1], wc) != BNF_CONST_OK ||
	    !bnf_dtype_is_float(wc->view.dtype)) {
		*problem = "the layer's weight is not a float constant";
		return 0;
	}
	vc->weight = &wc->view;
	vc->alpha = vc->beta = 1.0;
	vc->pad_axis = -1;
	if (vc->layer != BNF_VL_GEMM) {
		int64_t g = bnf_node_attr_int(layer, "group", 1);
		vc->group = g >= 1 ? (size_t)g : 0;
	} else if (kind == BNF_LAYER_GEMM) {
		vc->trans_b = bnf_node_attr_int(layer, "transB", 0) != 0;
		vc->alpha = (double)bnf_node_attr_float(layer, "alpha", 1.0f);
		vc->beta = (double)bnf_node_attr_float(layer, "beta", 1.0f);
	} else if (p->to_gemm && (!bnf_graph_shape(gi, layer->input[0], &as) || as.rank != 2)) {
		/* a MatMul becomes a Gemm to take a bias: rank 2 only */
		*problem = "the MatMul input is not known to have rank 2";
		return 0;
	}
	vc->folded_alpha = vc->alpha;
	vc->folded_beta = p->reset_gemm_beta ? 1.0 : vc->beta;
	if (kind != BNF_LAYER_MATMUL && layer->n_input >= 3 && layer->input[2][0]) {
		if ((r = read_const(gi, layer->input[2], &bc, &a->bias)) < 0)
			return -1;
		if (r == 0) {
			*problem = "the layer's bias is not a float constant";
			return 0;
		}
		vc->bias = a->bias;
		vc->bias_len = bc.view.numel;
	}
	return 0;
}

/* The BatchNormalization's part of vc, after the layer or before it (then
 * the Conv's padding too), its parameters read into a->prm.  0, with
 * *problem set when it cannot be modelled; -1 when memory runs out. */
static int bn_case(const bnf_graph *gi, const bnf_plan *p, const Onnx__NodeProto *node,
		   const Onnx__NodeProto *layer, const bnf_const *wc, bnf_verify_case *vc, case_arrays *a,
		   const char **problem)
{
	bnf_const pc[4];
	bool next_to;
	int r;

	vc->op = BNF_VOP_BN;
	vc->eps = (double)bnf_node_attr_float(node, "epsilon", 1e-5f);
	vc->bn_before = bnf_pattern_info(p->pattern)->before_layer;
	/* Checked here on its own, apart from the plan's walk. */
	if (vc->bn_before)
		next_to = node->n_output >= 1 && layer->n_input >= 1 && strcmp(layer->input[0], node->output[0]) == 0;
	else
		next_to = node->n_input >= 1 && reaches_axis1(gi, node->input[0], p->layer_node);
	if (node->n_input < 5 || !next_to) {
		*problem = "the BN is not next to the layer";
		return 0;
	}
	/* inputs 1-4: scale, B, mean, var */
	for (int i = 0; i < 4; i++) {
		if ((r = read_const(gi, node->input[i + 1], &pc[i], &a->prm[i])) < 0)
			return -1;
		if (r == 0 || pc[i].view.numel != pc[0].view.numel) {
			*problem = "a BN parameter is not a float constant of the BN's length";
			return 0;
		}
	}
	vc->gamma = a->prm[0];
	vc->bn_b = a->prm[1];
	vc->mean = a->prm[2];
	vc->var = a->prm[3];
	vc->channels = pc[0].view.numel;
	if (vc->bn_before)
		conv_border(layer, wc->view.rank >= 2 ? wc->view.rank - 2 : 0, &vc->pad_axis, &vc->pad_at_end);
	return 0;
}

/* The Mul's or Add's part of vc, its constant read into a->k.  0, with
 * *problem set when it cannot be modelled; -1 when memory runs out. */
static int affine_case(const bnf_graph *gi, const bnf_plan *p, const Onnx__NodeProto *node,
		       const Onnx__NodeProto *layer, const bnf_const *wc, bnf_verify_case *vc, case_arrays *a,
		       const char **problem)
{
	int side = strcmp(node->input[0], layer->output[0]) == 0 ? 0 : strcmp(node->input[1], layer->output[0]) == 0 ? 1 : -1;
	size_t out_rank = vc->layer == BNF_VL_GEMM ? 2 : wc->view.rank, axis = 1;
	bnf_shape os;
	bnf_const kc;
	int r;

	vc->op = bnf_pattern_info(p->pattern)->op == BNF_OP_MUL ? BNF_VOP_MUL : BNF_VOP_ADD;
	if (side < 0) {
		*problem = "the Mul/Add does not read the layer's output";
		return 0;
	}
	if ((r = read_const(gi, node->input[1 - side], &kc, &a->k)) < 0)
		return -1;
	/* A MatMul's output has its input's rank (at least 1 here), its
	 * columns on the last axis; a Gemm's is [M, N]. */
	if (bnf_node_is_onnx(layer, "MatMul"))
		out_rank = bnf_graph_shape(gi, layer->output[0], &os) && os.rank >= 1 ? (size_t)os.rank : 1;
	if (vc->layer == BNF_VL_GEMM)
		axis = out_rank - 1;
	if (r == 0 || kc.view.rank > out_rank) {
		*problem = "the Mul/Add constant is not a float constant that broadcasts to the output";
		return 0;
	}
	/* Broadcasting aligns dims on the right; the constant may vary
	 * along the output's channel axis only. */
	for (size_t d = 0; d < kc.view.rank; d++) {
		size_t at = out_rank - kc.view.rank + d;
		if (kc.view.dims[d] != 1 && at != axis) {
			*problem = "the Mul/Add constant varies along an axis other than the channels";
			return 0;
		}
	}
	vc->k = a->k;
	vc->k_len = kc.view.numel;
	vc->channels = kc.view.numel;
	return 0;
}

int bnf_verify_plan(const bnf_graph *gi, const bnf_plan *p, double tolerance, const bnf_verify_config *cfg,
		    bnf_verify *v, bnf_err *e)
{
	return bnf_verify_plan_later(gi, p, tolerance, cfg, v, NULL, e);
}

int bnf_verify_plan_later(const bnf_graph *gi, const bnf_plan *p, double tolerance, const bnf_verify_config *cfg,
			  bnf_verify *v, bnf_verify_job **job, bnf_err *e)
{
	const Onnx__NodeProto *node, *layer;
	bnf_verify_case vc;
	bnf_const wc;
	case_arrays a = {0};
	const char *problem = NULL;
	int r, rc = -1;

	if (job)
		*job = NULL;
	memset(v, 0, sizeof(*v));
	memset(&vc, 0, sizeof(vc));
	memset(&wc, 0, sizeof(wc));
	if (p->node < 0 || p->layer_node < 0 || (size_t)p->node >= gi->g->n_node ||
	    (size_t)p->layer_node >= gi->g->n_node || p->pattern >= BNF_PAT_COUNT) {
		problem = "the plan names no layer";
		goto done;
	}
	node = gi->g->node[p->node];
	layer = gi->g->node[p->layer_node];
	if (layer_case(gi, p, layer, &wc, &vc, &a, &problem) < 0)
		goto oom;
	if (problem)
		goto done;
	/* The pattern says what the node is; the node must agree with it. */
	if (!bnf_node_is_onnx(node, bnf_op_type(bnf_pattern_info(p->pattern)->op))) {
		problem = "the node is not the one the plan's pattern names";
		goto done;
	}
	if (bnf_pattern_info(p->pattern)->op == BNF_OP_BN)
		r = bn_case(gi, p, node, layer, &wc, &vc, &a, &problem);
	else if (node->n_input == 2)
		r = affine_case(gi, p, node, layer, &wc, &vc, &a, &problem);
	else {
		problem = "the Mul/Add does not have two inputs";
		goto done;
	}
	if (r < 0)
		goto oom;
	if (problem)
		goto done;
	if ((r = package(&vc, p, tolerance, cfg, &a, job)) < 0)
		goto oom;
	rc = r == 1 ? 0 : bnf_verify_run(&vc, p, tolerance, cfg, v, e);
	goto out;
oom:
	bnf_fail(e, BNFOLD_E_NOMEM, "out of memory verifying a fusion");
	goto out;
done:
	memset(v, 0, sizeof(*v));
	v->problem = problem;
	v->max_abs_err = v->max_rel_err = INFINITY;
	v->tolerance = tolerance >= 0 ? tolerance : bnf_verify_default_tolerance(p->dtype, 0);
	rc = 0;
out:
	arrays_free(&a);
	bnf_const_release(&wc); /* a job copies only views read from the file, never owned values */
	return rc;
}
