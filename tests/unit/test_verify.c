/* bnf_verify_run against hand-made plans: faithful folds pass with errors
 * within one rounding, and every kind of wrong fold is caught with the
 * error worked out by hand. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"
#include "tap.h"
#include "tensor.h"
#include "verify.h"

/* A float32 weight held in float_data. */
typedef struct wt {
	Onnx__TensorProto t;
	int64_t dims[BNF_MAX_RANK];
	bnf_tview v;
} wt;

static void weight_f32(wt *w, float *vals, size_t rank, const int64_t *dims)
{
	char err[200];
	size_t n = 1;
	onnx__tensor_proto__init(&w->t);
	memcpy(w->dims, dims, rank * sizeof(int64_t));
	for (size_t d = 0; d < rank; d++)
		n *= (size_t)dims[d];
	w->t.n_dims = rank;
	w->t.dims = w->dims;
	w->t.has_data_type = 1;
	w->t.data_type = BNF_DT_FLOAT;
	w->t.n_float_data = n;
	w->t.float_data = vals;
	if (bnf_tview_from_tensor(&w->t, &w->v, err, sizeof(err)) != BNF_TENSOR_OK)
		printf("# weight view: %s\n", err);
}

/* The same weight with its values in raw_data (little-endian, whatever the
 * host) held in raw (4 * numel bytes), described by t and viewed in rv;
 * false when the view is refused. */
static bool raw_copy(const wt *w, uint8_t *raw, Onnx__TensorProto *t, bnf_tview *rv)
{
	char err[200];
	size_t n = w->v.numel;
	for (size_t i = 0; i < n; i++) {
		uint32_t b;
		memcpy(&b, &w->t.float_data[i], 4);
		for (int k = 0; k < 4; k++)
			raw[4 * i + k] = (uint8_t)(b >> (8 * k));
	}
	*t = w->t;
	t->n_float_data = 0;
	t->float_data = NULL;
	t->has_raw_data = 1;
	t->raw_data.data = raw;
	t->raw_data.len = 4 * n;
	if (bnf_tview_from_tensor(t, rv, err, sizeof(err)) != BNF_TENSOR_OK) {
		printf("# raw_data view: %s\n", err);
		return false;
	}
	return true;
}

/* A plan that scales the weight by `scale` (layout l) and writes new_bias. */
static void plan_of(bnf_plan *p, const wt *w, const bnf_layout *l, double *scale, double *new_bias, size_t bias_len)
{
	memset(p, 0, sizeof(*p));
	p->reason = BNF_FOLD;
	p->dtype = w->v.dtype;
	p->weight.view = w->v;
	p->channels = l->channels;
	p->scale_weight = true;
	p->write_bias = true;
	p->bias_len = bias_len;
	p->scale = scale;
	p->new_bias = new_bias;
	p->transform.dtype = w->v.dtype;
	p->transform.layout = *l;
	p->transform.scale = scale;
}

int main(void)
{
	bnf_verify v;
	const double u32 = ldexp(1, -24), u16 = ldexp(1, -11);

	/* The default tolerance: 2u + (n + 8) 2^-52. */
	NEAR(bnf_verify_default_tolerance(BNF_DT_FLOAT, 0), ldexp(1, -23) + 8 * ldexp(1, -52), 0,
	     "float32 tolerance with n = 0 is 2^-23 + 8 * 2^-52");
	NEAR(bnf_verify_default_tolerance(BNF_DT_DOUBLE, 4600), 2 * ldexp(1, -53) + 4608 * ldexp(1, -52), 0,
	     "float64 tolerance with n = 4600 is 2^-52 + 4608 * 2^-52");
	NEAR(bnf_verify_default_tolerance(BNF_DT_FLOAT16, 9), ldexp(1, -10) + 17 * ldexp(1, -52), 0,
	     "float16 tolerance is 2^-10 + (n + 8) 2^-52");
	NEAR(bnf_verify_default_tolerance(BNF_DT_BFLOAT16, 9), ldexp(1, -7) + 17 * ldexp(1, -52), 0,
	     "bfloat16 tolerance is 2^-7 + (n + 8) 2^-52");

	/* Conv W [2, 1, 2] (1-D), bias {5, 6}; BN with eps = 1 so that
	 *   s = gamma / sqrt(var + 1) = {2/2, -3/3} = {1, -1},
	 *   W' = {1, 2, -3, -4},  b' = (b - mean) s + B = {(5-1) + 0.5, -(6-2) + 4} = {4.5, 0}:
	 * every stored value is exact. */
	{
		float wv[4] = {1, 2, 3, 4};
		const int64_t dims[3] = {2, 1, 2};
		double bias[2] = {5, 6}, gamma[2] = {2, -3}, beta[2] = {0.5, 4}, mean[2] = {1, 2}, var[2] = {3, 8};
		double scale[2] = {1, -1}, nb[2] = {4.5, 0};
		bnf_layout l = {.inner = 2, .per_group = 2, .rows_per_group = 1, .channels = 2};
		bnf_verify_case vc = {.layer = BNF_VL_CONV, .group = 1, .alpha = 1, .beta = 1, .bias = bias, .bias_len = 2,
				      .op = BNF_VOP_BN, .gamma = gamma, .bn_b = beta, .mean = mean, .var = var, .eps = 1,
				      .channels = 2, .pad_axis = -1, .folded_alpha = 1, .folded_beta = 1};
		wt w;
		bnf_plan p;

		weight_f32(&w, wv, 3, dims);
		vc.weight = &w.v;
		plan_of(&p, &w, &l, scale, nb, 2);
		OK(bnf_verify_run(&vc, &p, -1, NULL, &v, NULL) == 0 && v.ok && !v.problem, "exact conv_bn fold passes");
		OK(v.outputs == 6 && v.terms == 2, "2 channels x 3 probes (zero + 2 random), 2 terms each (got %zu, %zu)",
		   v.outputs, v.terms);
		NEAR(v.max_abs_err, 0, 1e-14, "exact fold: max_abs_err is double rounding only");
		NEAR(v.tolerance, ldexp(1, -23) + 10 * ldexp(1, -52), 0, "default float32 tolerance for n = 2");

		/* A wrong bias: b'[1] = 0.25 instead of 0.  The zero probe sees
		 * exactly 0.25 against S = |s| (|b| + |mean|) + |B| = 6 + 2 + 4 = 12
		 * (plus 3 float32 smallest normals). */
		nb[1] = 0.25;
		OK(bnf_verify_run(&vc, &p, -1, NULL, &v, NULL) == 0 && !v.ok, "a bias off by 0.25 is caught");
		NEAR(v.max_abs_err, 0.25, 1e-14, "max_abs_err = 0.25");
		NEAR(v.max_rel_err, 0.25 / 12, 1e-15, "max_rel_err = 0.25 / 12 from the zero probe");
		OK(v.worst_channel == 1, "worst channel is 1");
		nb[1] = 0;

		/* A wrong scale: channel 0 scaled by 1 + 2^-10, a relative error
		 * of the weight terms far above float32 rounding. */
		scale[0] = 1 + ldexp(1, -10);
		OK(bnf_verify_run(&vc, &p, -1, NULL, &v, NULL) == 0 && !v.ok && v.worst_channel == 0,
		   "a weight scale off by 2^-10 is caught on channel 0 (max_rel_err %.3g)", v.max_rel_err);
		scale[0] = 1;

		/* A tolerance given by the caller is used and reported as is. */
		OK(bnf_verify_run(&vc, &p, 0.5, NULL, &v, NULL) == 0 && v.ok && v.tolerance == 0.5, "tolerance 0.5 is used as given");
		nb[1] = 0.25;
		OK(bnf_verify_run(&vc, &p, 0.05, NULL, &v, NULL) == 0 && v.ok, "with tolerance 0.05 the 0.25/12 bias error passes");
		OK(bnf_verify_run(&vc, &p, 0.02, NULL, &v, NULL) == 0 && !v.ok, "with tolerance 0.02 it does not");
		nb[1] = 0;

		/* The same channels described with runs of one element (the
		 * channel of element i is i / 2 either way): same verdict, and
		 * the wrong bias is still caught. */
		p.transform.layout = (bnf_layout){.inner = 1, .per_group = 1, .rows_per_group = 2, .channels = 2};
		OK(bnf_verify_run(&vc, &p, -1, NULL, &v, NULL) == 0 && v.ok, "an equivalent layout of one-element runs passes");
		nb[1] = 0.25;
		OK(bnf_verify_run(&vc, &p, -1, NULL, &v, NULL) == 0 && !v.ok && fabs(v.max_rel_err - 0.25 / 12) < 1e-15,
		   "... and catches the wrong bias alike");
		nb[1] = 0;
		p.transform.layout = l;

		/* The weight in raw_data (read in place) instead of float_data. */
		{
			uint8_t raw[16];
			Onnx__TensorProto t;
			bnf_tview rv;
			OK(raw_copy(&w, raw, &t, &rv), "raw_data weight view");
			vc.weight = &rv;
			p.weight.view = rv;
			OK(bnf_verify_run(&vc, &p, -1, NULL, &v, NULL) == 0 && v.ok, "raw_data: the exact fold passes");
			NEAR(v.max_abs_err, 0, 1e-14, "raw_data: max_abs_err is double rounding only");
			scale[0] = 1 + ldexp(1, -10);
			OK(bnf_verify_run(&vc, &p, -1, NULL, &v, NULL) == 0 && !v.ok && v.worst_channel == 0,
			   "raw_data: a weight scale off by 2^-10 is caught");
			scale[0] = 1;
			vc.weight = &w.v;
			p.weight.view = w.v;
		}

		/* A weight filled with one value (ConstantOfShape): 1.5 everywhere,
		 * W' = {1.5, 1.5, -1.5, -1.5}, b' as before. */
		{
			bnf_tview uv = w.v;
			uv.uniform = true;
			uv.fill = 1.5;
			uv.tensor = NULL;
			vc.weight = &uv;
			p.weight.view = uv;
			OK(bnf_verify_run(&vc, &p, -1, NULL, &v, NULL) == 0 && v.ok, "uniform weight: the exact fold passes");
			NEAR(v.max_abs_err, 0, 1e-14, "uniform weight: max_abs_err is double rounding only");
			scale[1] = -1 - ldexp(1, -10);
			OK(bnf_verify_run(&vc, &p, -1, NULL, &v, NULL) == 0 && !v.ok && v.worst_channel == 1,
			   "uniform weight: a scale off by 2^-10 is caught on channel 1");
			scale[1] = -1;
			vc.weight = &w.v;
			p.weight.view = w.v;
		}

		/* A plan whose layout reaches past its channels (element i to
		 * channel i) cannot be read: a problem, never a pass. */
		p.transform.layout = (bnf_layout){.inner = 1, .per_group = 1, .rows_per_group = 1, .channels = 2};
		OK(bnf_verify_run(&vc, &p, -1, NULL, &v, NULL) == 0 && !v.ok && v.problem && isinf(v.max_rel_err),
		   "a layout past the channels is a problem (%s)", v.problem ? v.problem : "none");
		p.transform.layout = l;

		/* Mul after the Conv: k = {2, -0.5}: W' = W k, b' = b k = {10, -3}. */
		{
			double k[2] = {2, -0.5}, nbm[2] = {10, -3};
			bnf_verify_case vm = vc;
			vm.op = BNF_VOP_MUL;
			vm.k = k;
			vm.k_len = 2;
			p.scale = k;
			p.transform.scale = k;
			p.new_bias = nbm;
			OK(bnf_verify_run(&vm, &p, -1, NULL, &v, NULL) == 0 && v.ok, "conv_mul with b' = b k passes");
			nbm[1] = 6; /* the bias left as it was */
			OK(bnf_verify_run(&vm, &p, -1, NULL, &v, NULL) == 0 && !v.ok && v.worst_channel == 1,
			   "conv_mul that leaves the bias unscaled is caught");
			NEAR(v.max_abs_err, 9, 1e-12, "... off by 6 - (-3) = 9");
			p.scale = scale;
			p.transform.scale = scale;
			p.new_bias = nb;
		}

		/* Add after the Conv: the weight stays, b' = b + k. */
		{
			double k[2] = {0.25, 1}, one[2] = {1, 1}, nba[2] = {5.25, 7};
			bnf_verify_case va = vc;
			bnf_plan pa = p;
			va.op = BNF_VOP_ADD;
			va.k = k;
			va.k_len = 2;
			pa.scale_weight = false;
			pa.scale = one;
			pa.transform.scale = one;
			pa.new_bias = nba;
			OK(bnf_verify_run(&va, &pa, -1, NULL, &v, NULL) == 0 && v.ok, "conv_add with b' = b + k passes");
			NEAR(v.max_abs_err, 0, 1e-14, "... exactly, up to double rounding");
			nba[0] = 0.25; /* the old bias dropped */
			OK(bnf_verify_run(&va, &pa, -1, NULL, &v, NULL) == 0 && !v.ok, "conv_add that drops the old bias is caught");
			NEAR(v.max_abs_err, 5, 1e-12, "... off by 5");
		}
	}

	/* ConvTranspose group 2, W [C_in = 4, C_out/group = 3, k = 2], C_out = 6:
	 * rows 0-1 feed channels 0-2, rows 2-3 channels 3-5. */
	{
		float wv[24];
		const int64_t dims[3] = {4, 3, 2};
		double gamma[6], beta[6], mean[6], var[6], scale[6], nb[6];
		bnf_layout right = {.inner = 2, .per_group = 3, .rows_per_group = 2, .channels = 6};
		bnf_layout no_groups = {.inner = 2, .per_group = 3, .rows_per_group = 4, .channels = 6};
		bnf_verify_case vc = {.layer = BNF_VL_CONVTRANSPOSE, .group = 2, .alpha = 1, .beta = 1, .op = BNF_VOP_BN,
				      .gamma = gamma, .bn_b = beta, .mean = mean, .var = var, .eps = 1e-5, .channels = 6,
				      .pad_axis = -1, .folded_alpha = 1, .folded_beta = 1};
		wt w;
		bnf_plan p;

		for (int i = 0; i < 24; i++)
			wv[i] = (float)(0.1 * (i + 1) - 1.3);
		for (int c = 0; c < 6; c++) {
			gamma[c] = 0.5 + 0.3 * c;
			beta[c] = 0.1 * c - 0.2;
			mean[c] = 0.05 * c;
			var[c] = 1.0 + 0.25 * c;
			scale[c] = gamma[c] / sqrt(var[c] + 1e-5);
			nb[c] = (0 - mean[c]) * scale[c] + beta[c];
		}
		weight_f32(&w, wv, 3, dims);
		vc.weight = &w.v;
		plan_of(&p, &w, &right, scale, nb, 6);
		OK(bnf_verify_run(&vc, &p, -1, NULL, &v, NULL) == 0 && v.ok && v.terms == 4,
		   "convtranspose_bn group 2 with the right layout passes (n = C_in/group * k = 4)");
		OK(v.max_rel_err <= u32, "... within one float32 rounding unit (max_rel_err %.3g <= 2^-24)", v.max_rel_err);
		p.transform.layout = no_groups;
		OK(bnf_verify_run(&vc, &p, -1, NULL, &v, NULL) == 0 && !v.ok,
		   "a layout that ignores the groups (rows 2-3 scaled as channels 0-2) is caught");
		p.transform.layout = right;

		/* epsilon left out: s = gamma / sqrt(var), a relative slip of
		 * about eps / (2 var) = 5e-6, caught by the default tolerance
		 * (about 2^-23), though a tolerance of 1e-5 would let it through. */
		{
			double s_noeps[6], nb_noeps[6];
			for (int c = 0; c < 6; c++) {
				s_noeps[c] = gamma[c] / sqrt(var[c]);
				nb_noeps[c] = (0 - mean[c]) * s_noeps[c] + beta[c];
			}
			p.scale = s_noeps;
			p.transform.scale = s_noeps;
			p.new_bias = nb_noeps;
			OK(bnf_verify_run(&vc, &p, -1, NULL, &v, NULL) == 0 && !v.ok && v.max_rel_err > 1e-6 && v.max_rel_err < 1e-5,
			   "a fold that forgets epsilon is caught (max_rel_err %.3g)", v.max_rel_err);
			OK(bnf_verify_run(&vc, &p, 1e-5, NULL, &v, NULL) == 0 && v.ok, "... which a tolerance of 1e-5 would miss");
		}
	}

	/* Gemm, B [K = 3, N = 2] (transB = 0), C {1, -2}, alpha 0.5, beta 2:
	 * s = {2/sqrt(3+1), 3/sqrt(0+1)} = {1, 3},
	 * B' = B s per column, C' = (beta C - mean) s + B_bn = {(2-1) 1 + 0, (-4-0) 3 + 1} = {1, -11},
	 * and the folded Gemm has beta 1. */
	{
		float wv[6] = {1, 2, 3, 4, 5, 6};
		const int64_t dims[2] = {3, 2};
		double c[2] = {1, -2}, gamma[2] = {2, 3}, beta[2] = {0, 1}, mean[2] = {1, 0}, var[2] = {3, 0};
		double scale[2] = {1, 3}, nb[2] = {1, -11};
		bnf_layout l = {.inner = 1, .per_group = 2, .rows_per_group = 3, .channels = 2};
		bnf_verify_case vc = {.layer = BNF_VL_GEMM, .alpha = 0.5, .beta = 2, .bias = c, .bias_len = 2,
				      .op = BNF_VOP_BN, .gamma = gamma, .bn_b = beta, .mean = mean, .var = var, .eps = 1,
				      .channels = 2, .pad_axis = -1, .folded_alpha = 0.5, .folded_beta = 1};
		wt w;
		bnf_plan p;

		weight_f32(&w, wv, 2, dims);
		vc.weight = &w.v;
		plan_of(&p, &w, &l, scale, nb, 2);
		OK(bnf_verify_run(&vc, &p, -1, NULL, &v, NULL) == 0 && v.ok && v.terms == 3, "gemm_bn (alpha 0.5, beta 2) passes");
		NEAR(v.max_abs_err, 0, 1e-14, "... exactly, up to double rounding");
		/* the layout of B [N, K] (rows scale) applied to B [K, N]: elements
		 * 0-2 scaled by s[0] and 3-5 by s[1], where columns should be */
		p.transform.layout = (bnf_layout){.inner = 3, .per_group = 2, .rows_per_group = 1, .channels = 2};
		OK(bnf_verify_run(&vc, &p, -1, NULL, &v, NULL) == 0 && !v.ok && !v.problem, "gemm_bn scaled by rows instead of columns is caught");
		p.transform.layout = (bnf_layout){.inner = 1, .per_group = 2, .rows_per_group = 1, .channels = 2};
		OK(bnf_verify_run(&vc, &p, -1, NULL, &v, NULL) == 0 && !v.ok && v.problem, "a Gemm layout past its channels is a problem");
		p.transform.layout = l;
		vc.folded_beta = 2; /* Gemm beta left at 2 */
		OK(bnf_verify_run(&vc, &p, -1, NULL, &v, NULL) == 0 && !v.ok, "a folded Gemm that keeps beta 2 is caught");
		vc.folded_beta = 1;
		vc.trans_b = true; /* the same numbers read as B [N, K]: a different layer */
		OK(bnf_verify_run(&vc, &p, -1, NULL, &v, NULL) == 0 && !v.ok && v.problem,
		   "transB with [3, 2] has 3 channels, not 2: a problem");
	}

	/* BN -> Conv, W [C_out = 1, C_in = 2, 1, 2], no bias; BN on the input
	 * channels with s = {1, -1}, t = B - mean s = {0.5 - 1, 4 + 2} = {-0.5, 6}:
	 *   W'[0, i, :] = W[0, i, :] s[i] = {1, 2, -3, -4},
	 *   b' = sum W t = (1 + 2)(-0.5) + (3 + 4) 6 = 40.5. */
	{
		float wv[4] = {1, 2, 3, 4};
		const int64_t dims[4] = {1, 2, 1, 2};
		double gamma[2] = {2, -3}, beta[2] = {0.5, 4}, mean[2] = {1, 2}, var[2] = {3, 8};
		double scale[2] = {1, -1}, nb[1] = {40.5};
		bnf_layout l = {.inner = 2, .per_group = 2, .rows_per_group = 1, .channels = 2};
		bnf_verify_case vc = {.layer = BNF_VL_CONV, .group = 1, .alpha = 1, .beta = 1, .op = BNF_VOP_BN,
				      .bn_before = true, .gamma = gamma, .bn_b = beta, .mean = mean, .var = var, .eps = 1,
				      .channels = 2, .pad_axis = -1, .folded_alpha = 1, .folded_beta = 1};
		wt w;
		bnf_plan p;

		weight_f32(&w, wv, 4, dims);
		vc.weight = &w.v;
		plan_of(&p, &w, &l, scale, nb, 1);
		OK(bnf_verify_run(&vc, &p, -1, NULL, &v, NULL) == 0 && v.ok && v.outputs == 3 && v.terms == 4,
		   "bn_conv without padding passes (3 probes, n = 4)");
		NEAR(v.max_abs_err, 0, 1e-13, "... exactly, up to double rounding");
		/* The same fold is wrong when the Conv pads: at the border, the
		 * padded taps (here the first tap of the width axis) read 0 after
		 * the BN, so b' must not hold their W t:
		 * the border output is off by W[0,0,0,0] t0 + W[0,1,0,0] t1 = -0.5 + 18 = 17.5. */
		vc.pad_axis = 1;
		OK(bnf_verify_run(&vc, &p, -1, NULL, &v, NULL) == 0 && !v.ok && v.outputs == 4,
		   "bn_conv into a Conv that pads is caught by the border probe");
		NEAR(v.max_abs_err, 17.5, 1e-12, "... off by 1 (-0.5) + 3 (6) = 17.5");
		vc.pad_at_end = true; /* padding at the end: the last tap, W[.,.,0,1] */
		OK(bnf_verify_run(&vc, &p, -1, NULL, &v, NULL) == 0 && !v.ok, "padding at the end is caught too");
		NEAR(v.max_abs_err, 23, 1e-12, "... off by 2 (-0.5) + 4 (6) = 23");
	}

	/* float16: W' = W s rounded to binary16.  The rounding error stays
	 * within one unit (2^-11) of the terms' magnitude. */
	{
		uint8_t raw[16];
		double gamma[2] = {0.7, -1.3}, beta[2] = {0.1, 0.2}, mean[2] = {0.3, -0.4}, var[2] = {0.9, 1.7};
		double scale[2], nb[2];
		bnf_layout l = {.inner = 4, .per_group = 2, .rows_per_group = 1, .channels = 2};
		bnf_verify_case vc = {.layer = BNF_VL_CONV, .group = 1, .alpha = 1, .beta = 1, .op = BNF_VOP_BN,
				      .gamma = gamma, .bn_b = beta, .mean = mean, .var = var, .eps = 1e-5, .channels = 2,
				      .pad_axis = -1, .folded_alpha = 1, .folded_beta = 1};
		Onnx__TensorProto t = ONNX__TENSOR_PROTO__INIT;
		int64_t d[3] = {2, 2, 2};
		bnf_tview tv;
		bnf_plan p;
		char err[200];
		wt w;

		for (int i = 0; i < 8; i++) {
			uint16_t h = bnf_f16_from_double(0.37 * (i + 1) - 1.1);
			raw[2 * i] = (uint8_t)h;
			raw[2 * i + 1] = (uint8_t)(h >> 8);
		}
		t.n_dims = 3;
		t.dims = d;
		t.has_data_type = 1;
		t.data_type = BNF_DT_FLOAT16;
		t.has_raw_data = 1;
		t.raw_data.data = raw;
		t.raw_data.len = sizeof(raw);
		OK(bnf_tview_from_tensor(&t, &tv, err, sizeof(err)) == BNF_TENSOR_OK, "float16 weight view");
		for (int c = 0; c < 2; c++) {
			scale[c] = gamma[c] / sqrt(var[c] + 1e-5);
			nb[c] = (0 - mean[c]) * scale[c] + beta[c];
		}
		w.v = tv;
		vc.weight = &tv;
		plan_of(&p, &w, &l, scale, nb, 2);
		OK(bnf_verify_run(&vc, &p, -1, NULL, &v, NULL) == 0 && v.ok, "float16 conv_bn passes (max_rel_err %.3g)", v.max_rel_err);
		OK(v.max_rel_err <= u16 && v.max_rel_err > ldexp(1, -30),
		   "... with a real rounding error, within 2^-11 (max_rel_err %.3g)", v.max_rel_err);
		OK(bnf_verify_run(&vc, &p, ldexp(1, -30), NULL, &v, NULL) == 0 && !v.ok,
		   "float16 rounding does not pass a float32-sized tolerance");
	}
	/* The float32 weight read from raw_data goes two elements at a time;
	 * from float_data one at a time.  Conv W [3, 1, 7] (7 elements per
	 * channel: an odd run), values with real rounding: both readings give
	 * the same verdict and errors within one float32 rounding; a scale
	 * that pushes one folded element past float's range is judged the
	 * same way too (the stored value would be inf: the check fails). */
	{
		enum { C = 3, K = 7, N = C * K };
		float wv[N];
		uint8_t raw[4 * N];
		const int64_t dims[3] = {C, 1, K};
		double bias[C] = {0.1, -0.2, 0.3}, gamma[C] = {1.1, -0.7, 2.3}, beta[C] = {0.01, 0.02, -0.03};
		double mean[C] = {0.3, -0.1, 0.2}, var[C] = {0.9, 1.7, 0.05}, scale[C], nb[C], lane_abs, lane_rel;
		bnf_layout l = {.inner = K, .per_group = C, .rows_per_group = 1, .channels = C};
		bnf_verify_case vc = {.layer = BNF_VL_CONV, .group = 1, .alpha = 1, .beta = 1, .bias = bias, .bias_len = C,
				      .op = BNF_VOP_BN, .gamma = gamma, .bn_b = beta, .mean = mean, .var = var, .eps = 1e-5,
				      .channels = C, .pad_axis = -1, .folded_alpha = 1, .folded_beta = 1};
		Onnx__TensorProto t;
		bnf_tview rv;
		wt w;
		bnf_plan p;

		for (int i = 0; i < N; i++)
			wv[i] = (float)(0.37 * sin(1.3 * i + 0.2) + (i % 3) * 0.011);
		for (int c = 0; c < C; c++) {
			scale[c] = gamma[c] / sqrt(var[c] + 1e-5);
			nb[c] = (bias[c] - mean[c]) * scale[c] + beta[c];
		}
		weight_f32(&w, wv, 3, dims);
		OK(raw_copy(&w, raw, &t, &rv), "raw_data [3, 1, 7] weight view");
		vc.weight = &rv;
		plan_of(&p, &w, &l, scale, nb, C);
		p.weight.view = rv;
		OK(bnf_verify_run(&vc, &p, -1, NULL, &v, NULL) == 0 && v.ok && v.max_rel_err > 0 && v.max_rel_err <= u32,
		   "raw_data, odd runs: passes with a rounding error within 2^-24 (max_rel_err %.3g)", v.max_rel_err);
		lane_abs = v.max_abs_err;
		lane_rel = v.max_rel_err;
		vc.weight = &w.v;
		p.weight.view = w.v;
		OK(bnf_verify_run(&vc, &p, -1, NULL, &v, NULL) == 0 && v.ok, "float_data, odd runs: passes");
		NEAR(v.max_abs_err, lane_abs, 1e-15, "... with the same max_abs_err as raw_data (%.3g, %.3g)", v.max_abs_err,
		     lane_abs);
		NEAR(v.max_rel_err, lane_rel, 1e-15, "... and the same max_rel_err");

		wv[2 * K + 3] = 1e38f; /* channel 2, element 3: |1e38 * s2| > FLT_MAX */
		weight_f32(&w, wv, 3, dims);
		OK(raw_copy(&w, raw, &t, &rv), "raw_data [3, 1, 7] weight view with 1e38");
		for (int pass = 0; pass < 2; pass++) {
			vc.weight = pass ? &w.v : &rv;
			p.weight.view = pass ? w.v : rv;
			OK(bnf_verify_run(&vc, &p, -1, NULL, &v, NULL) == 0 && !v.ok && v.worst_channel == 2 && isinf(v.max_rel_err),
			   "%s: a folded element beyond float's range fails on channel 2 (max_rel_err %g)",
			   pass ? "float_data" : "raw_data", v.max_rel_err);
		}
	}
	/* A weight larger than verify's unit of work (262144 elements), summed
	 * in two sets of units, even and odd (perhaps by two threads): Conv W
	 * [80, 1, 4096] ends with channels 64..79 in the second unit.  A faithful
	 * fold passes; a scale off by 2^-10 in channel 79, or in channel 0, is
	 * caught there: both units are read.  Raw bytes, so the lanes are used. */
	{
		enum { C = 80, K = 4096, N = C * K };
		float *wv = malloc(N * sizeof(float));
		uint8_t *raw = malloc(4 * (size_t)N);
		const int64_t dims[3] = {C, 1, K};
		double bias[C], gamma[C], beta[C], mean[C], var[C], scale[C], nb[C];
		bnf_layout l = {.inner = K, .per_group = C, .rows_per_group = 1, .channels = C};
		bnf_verify_case vc = {.layer = BNF_VL_CONV, .group = 1, .alpha = 1, .beta = 1, .bias = bias, .bias_len = C,
				      .op = BNF_VOP_BN, .gamma = gamma, .bn_b = beta, .mean = mean, .var = var, .eps = 1e-5,
				      .channels = C, .pad_axis = -1, .folded_alpha = 1, .folded_beta = 1};
		Onnx__TensorProto t;
		bnf_tview rv;
		wt w;
		bnf_plan p;

		for (int i = 0; i < N; i++)
			wv[i] = (float)(0.5 * sin(0.01 * i) + 0.001 * (i % 7));
		for (int c = 0; c < C; c++) {
			bias[c] = 0.01 * c, gamma[c] = 1 + 0.01 * c, beta[c] = -0.02 * c, mean[c] = 0.03 * c;
			var[c] = 0.5 + 0.01 * c;
			scale[c] = gamma[c] / sqrt(var[c] + 1e-5);
			nb[c] = (bias[c] - mean[c]) * scale[c] + beta[c];
		}
		weight_f32(&w, wv, 3, dims);
		OK(raw_copy(&w, raw, &t, &rv), "raw_data [80, 1, 4096] weight view");
		vc.weight = &rv;
		plan_of(&p, &w, &l, scale, nb, C);
		p.weight.view = rv;
		OK(bnf_verify_run(&vc, &p, -1, NULL, &v, NULL) == 0 && v.ok && v.outputs == 3 * C,
		   "two units of work: the faithful fold passes over all 80 channels (max_rel_err %.3g)", v.max_rel_err);
		/* One thread or two, lanes with AVX2 or without: the same bits. */
		{
			const bnf_verify_config cfg[3] = {{.threads = 1}, {.no_simd = true}, {.no_simd = true, .threads = 1}};
			double abs0 = v.max_abs_err, rel0 = v.max_rel_err;
			for (int k = 0; k < 3; k++)
				OK(bnf_verify_run(&vc, &p, -1, &cfg[k], &v, NULL) == 0 && v.ok && v.max_abs_err == abs0 &&
				   v.max_rel_err == rel0, "config no_simd %d, threads %d: the same max_abs_err and max_rel_err",
				   cfg[k].no_simd, cfg[k].threads);
		}
		for (int c = 0; c < C; c += C - 1) {
			double keep = scale[c];
			scale[c] *= 1 + ldexp(1, -10);
			OK(bnf_verify_run(&vc, &p, -1, NULL, &v, NULL) == 0 && !v.ok && v.worst_channel == (size_t)c,
			   "two units of work: a scale off by 2^-10 in channel %d is caught there (worst channel %zu)", c,
			   v.worst_channel);
			scale[c] = keep;
		}
		free(wv);
		free(raw);
	}
	return tap_done();
}
