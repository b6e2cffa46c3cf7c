/* The arithmetic of one case on plain numbers: the default tolerance, the
 * probe inputs, the case checked against the plan, and the probe outputs
 * of the original and the folded layer compared from the sums over the
 * weight (verify_sums.h). */
#include "verify.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "tensor.h"
#include "verify_lanes.h"
#include "verify_sums.h"

#define NPROBE BNF_VERIFY_NPROBE

_Static_assert(BNF_VERIFY_RANDOM == 2, "one 64-bit hash gives the two random probe values");

double bnf_verify_default_tolerance(int dtype, size_t n)
{
	return 2.0 * bnf_dtype_unit_roundoff(dtype) + ((double)n + 8.0) * ldexp(1.0, -52);
}

/* splitmix64: each probe input is a function of its position in the
 * receptive field alone, the same in every run. */
static uint64_t mix(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

#define PROBE_SEED 0x626e666f6c64ULL

/* The two random input vectors: values in [-1, 1) for each position of
 * a receptive field.  Every output channel reads the same vectors, as
 * every output channel of a layer reads the same input patch. */
static void probe_inputs(size_t terms, double *x1, double *x2)
{
	for (size_t r = 0; r < terms; r++) {
		uint64_t h = mix(PROBE_SEED + (uint64_t)r);
		x1[r] = (double)(int32_t)(uint32_t)h * 0x1p-31;
		x2[r] = (double)(int32_t)(uint32_t)(h >> 32) * 0x1p-31;
	}
}

/* The geometry of vc's weight (verify_sums.h), checked against the rest
 * of the case and against the plan p: the problem found (static text), or
 * NULL. */
static const char *make_geom(const bnf_verify_case *vc, const bnf_plan *p, bnf_verify_geom *g)
{
	const bnf_tview *w = vc->weight;

	memset(g, 0, sizeof(*g));
	if (!bnf_dtype_is_float(w->dtype) || w->dtype != p->dtype)
		return "the weight type differs from the plan's";
	for (size_t d = 0; d < w->rank; d++)
		if (w->dims[d] < 1)
			return "the weight is empty";
	if (vc->layer == BNF_VL_GEMM) {
		if (w->rank != 2)
			return "a Gemm/MatMul weight of rank other than 2";
		g->d0 = (size_t)w->dims[0];
		g->d1 = (size_t)w->dims[1];
		g->inner = 1;
		g->out_channels = vc->trans_b ? g->d0 : g->d1;
		g->terms = vc->trans_b ? g->d1 : g->d0;
		g->rows_per_group = 1;
	} else {
		if (w->rank < 3)
			return "a Conv weight of rank < 3";
		if (vc->group < 1 || (size_t)w->dims[0] % vc->group != 0)
			return "the weight does not divide into the groups";
		g->d0 = (size_t)w->dims[0];
		g->d1 = (size_t)w->dims[1];
		g->inner = w->numel / (g->d0 * g->d1);
		/* Conv: output channels per group; ConvTranspose: input channels per group */
		g->rows_per_group = g->d0 / vc->group;
		if (vc->layer == BNF_VL_CONV) {
			g->out_channels = g->d0;
			g->in_channels = vc->group * g->d1;
			g->terms = g->d1 * g->inner;
		} else {
			g->out_channels = vc->group * g->d1;
			g->terms = g->rows_per_group * g->inner;
		}
	}
	if (vc->bn_before) {
		if (vc->layer != BNF_VL_CONV || vc->op != BNF_VOP_BN)
			return "only a BN folds into the layer after it, and only into a Conv";
		if (vc->channels != g->in_channels)
			return "the BN's length differs from the Conv's input channels";
		if (vc->pad_axis >= 0) {
			size_t axis = 2 + (size_t)vc->pad_axis;
			if (axis >= w->rank)
				return "the padded axis is not a spatial axis of the weight";
			g->tap_len = (size_t)w->dims[axis];
			g->tap_stride = 1;
			for (size_t d = axis + 1; d < w->rank; d++)
				g->tap_stride *= (size_t)w->dims[d];
		}
	} else if (vc->op == BNF_VOP_BN) {
		if (vc->channels != g->out_channels)
			return "the BN's length differs from the layer's output channels";
	} else if (vc->k_len != 1 && vc->k_len != g->out_channels) {
		return "the constant is neither one value nor one per output channel";
	}
	if (vc->bias && vc->bias_len != g->out_channels && !(vc->layer == BNF_VL_GEMM && vc->bias_len == 1))
		return "the bias length differs from the layer's output channels";
	if (p->weight.view.numel != w->numel || p->weight.view.dtype != w->dtype)
		return "the plan's weight differs from the layer's";
	if (p->scale_weight && (!p->transform.scale || !p->transform.layout.inner || !p->transform.layout.per_group ||
				!p->transform.layout.rows_per_group || p->transform.layout.channels != p->channels ||
				p->transform.dtype != p->dtype))
		return "the plan scales the weight without a complete transform";
	if (p->write_bias && (p->bias_len != g->out_channels || !p->new_bias))
		return "the plan's bias length differs from the layer's output channels";
	return NULL;
}

/* The folded bias of channel o as the layer will read it. */
static double folded_bias(const bnf_verify_case *vc, const bnf_plan *p, size_t o)
{
	if (p->write_bias) {
		uint8_t buf[8];
		bnf_encode(p->dtype, p->new_bias[o], buf);
		return bnf_decode(p->dtype, buf);
	}
	return vc->bias ? vc->bias[vc->bias_len == 1 ? 0 : o] : 0.0;
}

static void compare(bnf_verify *v, double folded, double original, double mag, size_t o)
{
	double err = fabs(folded - original), rel;
	if (isnan(err))
		err = INFINITY;
	rel = err / mag;
	if (isnan(rel))
		rel = INFINITY;
	if (err > v->max_abs_err)
		v->max_abs_err = err;
	if (rel > v->max_rel_err || v->outputs == 0) {
		v->max_rel_err = rel;
		v->worst_channel = o;
	}
	v->outputs++;
}

/* Every probe output of the original arithmetic against the folded layer,
 * from the sums in acc (sd, s: the BN's per channel), into v. */
static void judge(const bnf_verify_case *vc, const bnf_plan *p, const bnf_verify_geom *g, const bnf_verify_acc *acc,
		  const double *sd, const double *s, bnf_verify *v)
{
	/* below the smallest normal number rounding error is absolute, not relative */
	double floor_term = bnf_dtype_smallest_normal(p->dtype) * ((double)g->terms + 1.0);
	size_t n_probe = vc->bn_before && vc->pad_axis >= 0 ? NPROBE : NPROBE - 1;

	for (size_t o = 0; o < g->out_channels; o++) {
		double bo = vc->bias ? vc->bias[vc->bias_len == 1 ? 0 : o] : 0.0, fb = folded_bias(vc, p, o);
		for (size_t q = 0; q < n_probe; q++) {
			double R = acc->R[o * NPROBE + q], F = acc->F[o * NPROBE + q], M = acc->M[o * NPROBE + q];
			double orig, mag, fold;
			if (vc->bn_before) {
				orig = R + bo;
				mag = M + fabs(bo);
				fold = F + fb;
			} else {
				double z = vc->alpha * R + vc->beta * bo, zmag = fabs(vc->alpha) * M + fabs(vc->beta * bo);
				double kk = vc->op == BNF_VOP_BN ? 0.0 : vc->k[vc->k_len == 1 ? 0 : o];
				switch (vc->op) {
				case BNF_VOP_BN:
					orig = (z - vc->mean[o]) / sd[o] * vc->gamma[o] + vc->bn_b[o];
					mag = fabs(s[o]) * (zmag + fabs(vc->mean[o])) + fabs(vc->bn_b[o]);
					break;
				case BNF_VOP_MUL:
					orig = z * kk;
					mag = fabs(kk) * zmag;
					break;
				default:
					orig = z + kk;
					mag = zmag + fabs(kk);
					break;
				}
				fold = vc->folded_alpha * F + vc->folded_beta * fb;
			}
			compare(v, fold, orig, mag + floor_term, o);
		}
	}
	v->ok = v->max_rel_err <= v->tolerance;
}

int bnf_verify_run(const bnf_verify_case *vc, const bnf_plan *p, double tolerance, const bnf_verify_config *cfg,
		   bnf_verify *v, bnf_err *e)
{
	static const bnf_verify_config defaults = {0};
	bnf_verify_geom g;
	bnf_verify_acc acc = {0};
	bnf_verify_ctx x;
	double *sd = NULL, *s = NULL, *x1 = NULL, *x2 = NULL;
	int rc = -1;

	if (!cfg)
		cfg = &defaults;
	memset(v, 0, sizeof(*v));
	v->problem = make_geom(vc, p, &g);
	v->terms = g.terms;
	v->tolerance = tolerance >= 0 ? tolerance : bnf_verify_default_tolerance(p->dtype, g.terms);
	if (v->problem) {
		v->max_abs_err = v->max_rel_err = INFINITY;
		return 0;
	}
	bnf_verify_lanes_probe(); /* before bnf_verify_sum_units may start a thread */
	x1 = malloc(g.terms * sizeof(double));
	x2 = malloc(g.terms * sizeof(double));
	if (vc->op == BNF_VOP_BN) {
		sd = malloc(vc->channels * sizeof(double));
		s = malloc(vc->channels * sizeof(double));
	}
	if (!bnf_verify_acc_alloc(&acc, g.out_channels) || !x1 || !x2 || (vc->op == BNF_VOP_BN && (!sd || !s))) {
		bnf_fail(e, BNFOLD_E_NOMEM, "out of memory verifying a fusion");
		goto out;
	}
	/* BatchNormalization as its definition reads:
	 * Y = (X - mean) / sqrt(var + epsilon) * scale + B */
	for (size_t c = 0; vc->op == BNF_VOP_BN && c < vc->channels; c++) {
		sd[c] = sqrt(vc->var[c] + vc->eps);
		s[c] = vc->gamma[c] / sd[c];
	}
	probe_inputs(g.terms, x1, x2);
	x = (bnf_verify_ctx){.vc = vc, .p = p, .g = &g, .sd = sd, .s = s, .x1 = x1, .x2 = x2,
			     .avx2 = bnf_verify_lanes_avx2(cfg->no_simd)};
	if (bnf_verify_sum_units(&x, cfg->threads, &acc, &v->problem) < 0) {
		bnf_fail(e, BNFOLD_E_NOMEM, "out of memory verifying a fusion");
		goto out;
	}
	if (v->problem)
		v->max_abs_err = v->max_rel_err = INFINITY;
	else
		judge(vc, p, &g, &acc, sd, s, v);
	rc = 0;
out:
	bnf_verify_acc_free(&acc);
	free(sd);
	free(s);
	free(x1);
	free(x2);
	return rc;
}
